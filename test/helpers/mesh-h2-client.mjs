// Runs inside a test network namespace: opens mTLS to a node's mesh port with
// the given certificate, sends one HTTP/2 CONNECT and prints what came back
// (the status, the first bytes through the tunnel, or the error) as JSON.
import { connect } from 'node:http2';

const cfg = JSON.parse(process.argv[2]);
const done = (r) => {
  console.log(JSON.stringify(r));
  process.exit(0);
};
setTimeout(() => done({ error: 'timeout' }), 5000);
const session = connect(`https://${cfg.host}:${cfg.port}`, {
  servername: cfg.servername,
  cert: cfg.cert,
  key: cfg.key,
  ca: cfg.ca,
  // The server's SVID names a SPIFFE ID, not this host: the check that matters here is the server's of us.
  checkServerIdentity: () => undefined,
});
session.on('error', (e) => done({ error: e.message, code: e.code }));
const req = session.request({ ':method': 'CONNECT', ':authority': cfg.authority });
req.on('error', (e) => done({ error: e.message, code: e.code }));
req.on('close', () => done({ error: 'stream closed', rstCode: req.rstCode }));
req.on('response', (h) => {
  const status = h[':status'];
  if (status !== 200) return done({ status });
  if (cfg.send) req.write(cfg.send);
  let data = '';
  req.on('data', (d) => {
    data += d;
    if (!cfg.send || data.includes('\r\n\r\n')) done({ status, data });
  });
  if (!cfg.send) done({ status });
});
