// A Workload API client through the generated grpc-js code, run as its own
// process so the test can place it in a pod's cgroup. argv: socket path, then
// a JSON step:
//   {"op":"watch"}  streams FetchX509SVID, one JSON line per response
//                   ({spiffeId, serial}), until killed;
//   {"op":"jwt", "audience":[...], "spiffeId"?, "noHeader"?}  FetchJWTSVID;
//   {"op":"validate", "audience", "svid"}  ValidateJWTSVID.
// A gRPC error prints {code, details} (code as the status name) and exits 0:
// the test asserts on it.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { SpiffeWorkloadAPIClient } from '../../src/gen/spiffe/workload.js';

const [socketPath, stepJson] = process.argv.slice(2);
const step = JSON.parse(stepJson);
const client = new SpiffeWorkloadAPIClient(`unix://${socketPath}`, grpc.credentials.createInsecure());
const md = new grpc.Metadata();
if (!step.noHeader) md.set('workload.spiffe.io', 'true');
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const failed = (err) => {
  print({ code: grpc.status[err.code], details: err.details });
  process.exit(0);
};

if (step.op === 'watch') {
  const s = client.fetchX509Svid({}, md);
  s.on('data', (res) => {
    for (const svid of res.svids) print({ spiffeId: svid.spiffeId, serial: new X509Certificate(svid.x509Svid).serialNumber.toLowerCase() });
  });
  s.on('error', failed);
} else if (step.op === 'jwt') {
  client.fetchJwtsvid({ audience: step.audience, spiffeId: step.spiffeId ?? '' }, md, (err, res) => {
    if (err) return failed(err);
    print({ svids: res.svids.map((s) => ({ spiffeId: s.spiffeId, svid: s.svid })) });
    process.exit(0);
  });
} else if (step.op === 'validate') {
  client.validateJwtsvid({ audience: step.audience, svid: step.svid }, md, (err, res) => {
    if (err) return failed(err);
    print({ spiffeId: res.spiffeId, claims: res.claims });
    process.exit(0);
  });
} else throw new Error(`unknown op ${step.op}`);
