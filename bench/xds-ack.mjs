#!/usr/bin/env node
// Time from a change in the agent's Envoy resource directory to the node's
// Envoy ACKing it, for N EDS clusters (each with its ClusterLoadAssignment),
// over SotW and delta ADS; plus the agent's and Envoy's resident memory.
//
//   node bench/xds-ack.mjs [--sizes 10,1000,10000] [--changes 7]
//
// Everything runs on loopback and a unix socket; endpoints carry no traffic.
import { checkPrerequisites, col, flags, machine, median, rssMiB, until, withAgentAndEnvoy, writeYaml } from './lib.mjs';

const opts = flags({ sizes: '10,1000,10000', changes: '7' });
const sizes = opts.sizes.split(',').map(Number);
const changes = Number(opts.changes);
const PER_FILE = 100;
const T = 'type.googleapis.com/';
const TYPES = ['envoy.config.cluster.v3.Cluster', 'envoy.config.endpoint.v3.ClusterLoadAssignment'];
checkPrerequisites();

const cluster = (i, timeout = '1s') => ({
  '@type': `${T}envoy.config.cluster.v3.Cluster`,
  name: `svc-${i}`,
  type: 'EDS',
  connect_timeout: timeout,
  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
});
const cla = (i, port = 10000 + (i % 50000)) => ({
  '@type': `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`,
  cluster_name: `svc-${i}`,
  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
});

function writeFile(dir, f, n, tweak) {
  const docs = [];
  for (let i = f * PER_FILE; i < Math.min(n, (f + 1) * PER_FILE); i++) {
    const t = tweak?.(i);
    docs.push(cluster(i, t?.timeout), cla(i, t?.port));
  }
  writeYaml(dir, `f${f}.yaml`, docs);
}

async function run(ads, n) {
  return withAgentAndEnvoy(
    {
      ads,
      agentArgs: (data) => ['--resources', data],
      setup: (data) => {
        for (let f = 0; f < Math.ceil(n / PER_FILE); f++) writeFile(data, f, n);
      },
    },
    async (h) => {
      const v1 = h.latestVersion();
      const t0 = performance.now();
      h.startEnvoy();
      await until(() => h.ackedAll(v1, TYPES), 300_000, `initial sync of ${n} clusters`);
      const initial = performance.now() - t0;
      const times = [];
      for (let c = 0; c < changes; c++) {
        const target = (c * 7919) % n;
        const tweak = (i) => (i === target ? { timeout: `${2 + c}s`, port: 9000 + c } : undefined);
        times.push(await h.change(() => writeFile(h.data, Math.floor(target / PER_FILE), n, tweak), TYPES));
        await new Promise((r) => setTimeout(r, 100));
      }
      return { ads, n, initial, p50: median(times), max: Math.max(...times), agentRss: rssMiB(h.agentPid()), agentPeak: rssMiB(h.agentPid(), 'VmHWM'), envoyRss: rssMiB(h.envoyPid()) };
    },
  );
}

const rows = [];
for (const n of sizes)
  for (const ads of ['sotw', 'delta']) {
    process.stderr.write(`bench: ${ads} with ${n} clusters...\n`);
    rows.push(await run(ads, n));
  }

console.log(`\nxDS change -> Envoy ACK (${changes} changes of one cluster + its endpoints each; ${machine()})`);
console.log('ads     clusters  initial-sync-ms  change-p50-ms  change-max-ms  agent-rss-MiB  agent-peak-MiB  envoy-rss-MiB');
for (const r of rows)
  console.log(`${r.ads.padEnd(6)} ${col(r.n, 9)} ${col(r.initial, 16)} ${col(r.p50, 14, 1)} ${col(r.max, 14, 1)} ${col(r.agentRss, 14, 1)} ${col(r.agentPeak, 15, 1)} ${col(r.envoyRss, 14, 1)}`);
console.log('\nratios, delta / sotw (below 1: delta is faster or smaller)');
console.log(' clusters  initial-sync  change-p50  agent-rss');
for (const n of sizes) {
  const s = rows.find((r) => r.n === n && r.ads === 'sotw');
  const d = rows.find((r) => r.n === n && r.ads === 'delta');
  console.log(`${col(n, 9)} ${col(d.initial / s.initial, 13, 2)} ${col(d.p50 / s.p50, 11, 2)} ${col(d.agentRss / s.agentRss, 10, 2)}`);
}
