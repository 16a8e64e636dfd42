#!/usr/bin/env node
// Initial sync of N SotW clients sharing one node id (a simulated proxy fleet)
// against the in-process xDS server, while the agent waits for a version the
// node has not taken yet (as it does under churn): each client asks for
// clusters and listeners and ACKs both responses.
//
//   node bench/xds-fanin.mjs [--sizes 300,1000] [--runs 3] [--before /work/main/dist]
//
// --before names another build (e.g. main's) to compare against dist/; runs
// alternate between the two and the median per size is shown. Unix socket only.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { flags, machine } from './lib.mjs';

const opts = flags({ sizes: '300,1000', runs: '3', before: '' });

async function build(dist) {
  const load = (p) => import(pathToFileURL(resolve(dist, p)).href);
  return {
    ...(await load('xds/snapshot-cache.js')),
    ...(await load('xds/snapshot.js')),
    ...(await load('xds/server.js')),
    ...(await load('proto/any.js')),
    ...(await load('log.js')),
    ...(await load('gen/envoy/service/discovery/v3/ads.js')),
    ...(await load('gen/envoy/service/discovery/v3/discovery.js')),
  };
}

const T = 'type.googleapis.com/envoy.config.';
const CDS = `${T}cluster.v3.Cluster`;
const LDS = `${T}listener.v3.Listener`;
const docs = [];
for (let i = 0; i < 20; i++) {
  docs.push({ '@type': CDS, name: `c${i}`, type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } } });
  docs.push({ '@type': LDS, name: `l${i}`, address: { socket_address: { address: '127.0.0.1', port_value: 20000 + i } } });
}
const PER_CHANNEL = 100;

const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function run(n, { SnapshotCache, Snapshot, XdsServer, anyFromJson, silentLogger, AggregatedDiscoveryServiceClient, DiscoveryRequest }) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-fanin-'));
  const socketPath = join(dir, 'xds.sock');
  const cache = new SnapshotCache();
  const server = new XdsServer({ cache, log: silentLogger, socketPath });
  await server.start();
  const version = cache.setSnapshot('proxy', Snapshot.fromAnys(docs.map((d) => anyFromJson(d))));
  cache.waitForAck('proxy', version + 1, 120_000).catch(() => undefined);
  let acks = 0;
  let allAcked;
  const done = new Promise((r) => (allAcked = r));
  cache.on('ack', () => ++acks === 2 * n && allAcked());
  const channels = [];
  const calls = [];
  const times = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    if (i % PER_CHANNEL === 0) channels.push(new AggregatedDiscoveryServiceClient(`unix:${socketPath}`, grpc.credentials.createInsecure()));
    const call = channels.at(-1).streamAggregatedResources();
    calls.push(call);
    const begun = performance.now();
    const got = new Set();
    call.on('data', (r) => {
      call.write(DiscoveryRequest.fromPartial({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce }));
      got.add(r.typeUrl);
      if (got.size === 2) times.push(performance.now() - begun);
    });
    call.on('error', () => undefined);
    const node = { id: 'proxy' };
    call.write(DiscoveryRequest.fromPartial({ node, typeUrl: CDS }));
    call.write(DiscoveryRequest.fromPartial({ node, typeUrl: LDS }));
  }
  await done;
  const total = performance.now() - start;
  for (const c of calls) c.cancel();
  for (const c of channels) c.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
  times.sort((a, b) => a - b);
  return { p50: pct(times, 50), p99: pct(times, 99), total };
}

const builds = { after: await build('dist') };
if (opts.before) builds.before = await build(opts.before);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${Math.round(x)} ms`;
console.log(`initial sync of N SotW clients sharing one node id (CDS+LDS, 20 each), median of ${opts.runs} runs; ${machine()}`);
console.log(['N', 'build', 'p50', 'p99', 'all ACKed', ...(opts.before ? ['p99 before/after'] : [])].join('\t'));
for (const n of opts.sizes.split(',').map(Number)) {
  const results = Object.fromEntries(Object.keys(builds).map((k) => [k, []]));
  for (let i = 0; i < Number(opts.runs); i++) for (const [k, b] of Object.entries(builds)) results[k].push(await run(n, b));
  const row = (k) => ({ p50: median(results[k].map((r) => r.p50)), p99: median(results[k].map((r) => r.p99)), total: median(results[k].map((r) => r.total)) });
  const after = row('after');
  if (opts.before) {
    const before = row('before');
    console.log([n, 'before', ms(before.p50), ms(before.p99), ms(before.total), ''].join('\t'));
    console.log([n, 'after', ms(after.p50), ms(after.p99), ms(after.total), `${(before.p99 / after.p99).toFixed(2)}x`].join('\t'));
  } else console.log([n, 'after', ms(after.p50), ms(after.p99), ms(after.total)].join('\t'));
}
process.exit(0);
