#!/usr/bin/env node
// Initial sync of N SotW clients sharing one node id (a simulated proxy fleet)
// against the in-process xDS server, while the agent waits for a version the
// node has not taken yet (as it does under churn): each client asks for
// clusters and listeners and ACKs both responses.
//
//   node bench/xds-fanin.mjs [--sizes 300,1000] [--dist dist] [--label after]
//
// --dist points at another build (e.g. main's) to compare. Unix socket only.
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { flags } from './lib.mjs';

const opts = flags({ sizes: '300,1000', dist: 'dist', label: '' });
const load = (p) => import(pathToFileURL(resolve(opts.dist, p)).href);
const { SnapshotCache } = await load('xds/snapshot-cache.js');
const { Snapshot } = await load('xds/snapshot.js');
const { XdsServer } = await load('xds/server.js');
const { anyFromJson } = await load('proto/any.js');
const { silentLogger } = await load('log.js');
const { AggregatedDiscoveryServiceClient } = await load('gen/envoy/service/discovery/v3/ads.js');
const { DiscoveryRequest } = await load('gen/envoy/service/discovery/v3/discovery.js');

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

async function run(n) {
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
  return { n, p50: pct(times, 50), p99: pct(times, 99), total };
}

for (const n of opts.sizes.split(',').map(Number)) {
  const r = await run(n);
  console.log(JSON.stringify({ label: opts.label, ...r }));
}
process.exit(0);
