#!/usr/bin/env node
// Network policy costs, on the real kernel and a real Envoy in test network
// namespaces (root): a node netns with `sluice agent --datapath` and its
// Envoy, a client and a server pod joined by veths.
//  1. Request latency, p50 and p99, through the L7 redirect (the server's
//     port 80 has an HTTP rule: sk_assign into Envoy) and direct (port 8080,
//     allowed at L3/L4 in the kernel), interleaved in one run, keep-alive and
//     a new connection per request.
//  2. The cost of a policy change with --pods pods on the node and --policies
//     policies (a tenth with L7 rules): from the YAML write to the policy
//     maps written, and to Envoy's ACK of the version.
//
//   sudo node bench/policy.mjs [--requests 1000] [--pods 1000] [--policies 200] [--changes 5]
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { col, envoyBin, flags, machine, netnsBench, removeBenchNode, root, routedNode, until, writeYaml } from './lib.mjs';

const opts = flags({ requests: '1000', pods: '1000', policies: '200', changes: '5' });
const REQUESTS = Number(opts.requests);
const bench = netnsBench('policy');
const { ns: NS, cgroup: CG, dir, bpf, src } = bench;
const C = '10.0.9.10';
const S = '10.0.9.11';
const children = [];
const sh = (args) => execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inNs = (ns, args) => sh(['nsenter', `--net=/var/run/netns/${ns}`, ...args]);

const cleanup = () => removeBenchNode(sh, { children, bpf, netns: [`${NS}-c`, `${NS}-s`, NS], cgroup: CG, dir });

const labels = (i) => ({ app: `app-${i % 250}`, tier: `t${i % 7}` });
function pod(name, ip, l) {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: l }, spec: { nodeName: 'bench-node' }, status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } };
}
const cnp = (name, spec) => ({ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name, namespace: 'default' }, spec });
const ports = (...ps) => [{ ports: ps.map((p) => ({ port: String(p), protocol: 'TCP' })) }];
const benchPolicy = cnp('bench', {
  endpointSelector: { matchLabels: { app: 's' } },
  ingress: [
    { fromEndpoints: [{ matchLabels: { app: 'c' } }], toPorts: ports(8080) },
    { fromEndpoints: [{ matchLabels: { app: 'c' } }], toPorts: [{ ...ports(80)[0], rules: { http: [{ method: 'GET', path: '/.*' }] } }] },
  ],
});
function scalePolicy(i, port) {
  const peer = { matchLabels: { app: `app-${(i * 7) % 250}` } };
  const toPorts = i % 10 === 0 ? [{ ...ports(port)[0], rules: { http: [{ method: 'GET', path: `/api/v${i}/.*` }] } }] : ports(port);
  return cnp(`p-${i}`, { endpointSelector: { matchLabels: { app: `app-${i % 250}` } }, ingress: [{ fromEndpoints: [peer], toPorts }] });
}

let log = [];
function startAgent() {
  const args = [join(root, 'dist/cli.js'), 'agent', '--source', `dir:${src}`, '--node', 'bench-node', '--socket', join(dir, 'xds.sock'), '--state-dir', join(dir, 'state'), '--proxy-ports', '20900-21199', '--datapath', '--bpf-root', bpf, '--cgroup-dir', CG, '--log-level', 'debug'];
  const p = spawn('nsenter', [`--net=/var/run/netns/${NS}`, process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let buf = '';
  p.stderr.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      try {
        log.push(JSON.parse(buf.slice(0, nl)));
      } catch {
        /* not JSON */
      }
      buf = buf.slice(nl + 1);
    }
  });
  children.push(p);
  return p;
}

/** Runs a request loop in the client pod: keep-alive or a new connection each, to port 80 (L7) and 8080 (direct), interleaved. */
function latencies(keepAlive) {
  const script = `
    const http = require('http');
    const agent = new http.Agent({ keepAlive: ${keepAlive}, maxSockets: 1 });
    const one = (port) => new Promise((res, rej) => { const t = process.hrtime.bigint();
      http.get({ host: '${S}', port, path: '/x', agent }, (r) => { r.resume(); r.on('end', () => res(Number(process.hrtime.bigint() - t) / 1e3)); }).on('error', rej); });
    (async () => { const out = { 80: [], 8080: [] };
      for (let i = 0; i < 50; i++) { await one(80); await one(8080); }
      for (let i = 0; i < ${REQUESTS}; i++) { out[80].push(await one(80)); out[8080].push(await one(8080)); }
      console.log(JSON.stringify(out)); agent.destroy(); })().catch((e) => { console.error(e.message); process.exit(1); });`;
  return JSON.parse(inNs(`${NS}-c`, [process.execPath, '-e', script]));
}
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];

try {
  // The node, a client and a server pod, as a routing CNI wires them.
  routedNode(sh, bench, [['c', C], ['s', S]]);
  const server = `require('http').createServer((q, s) => s.end('ok')).listen(80, '${S}'); require('http').createServer((q, s) => s.end('ok')).listen(8080, '${S}');`;
  children.push(spawn('nsenter', [`--net=/var/run/netns/${NS}-s`, process.execPath, '-e', server], { stdio: 'ignore' }));

  writeYaml(src, 'pods.yaml', [pod('c', C, { app: 'c' }), pod('s', S, { app: 's' })]);
  writeYaml(src, 'bench.yaml', [benchPolicy]);
  startAgent();
  await until(() => existsSync(join(dir, 'xds.sock')), 30_000, 'the agent');
  const boot = join(dir, 'bootstrap.yaml');
  execFileSync('sh', ['-c', `node ${join(root, 'bin/sluice.js')} bootstrap --node bench-node --socket ${join(dir, 'xds.sock')} --health-port 0 > ${boot}`]);
  children.push(spawn('nsenter', [`--net=/var/run/netns/${NS}`, envoyBin, '-c', boot, '--use-dynamic-base-id', '--concurrency', '1', '--log-level', 'error'], { stdio: 'ignore' }));
  // Through Envoy once it answers port 80 with its own header.
  const viaEnvoy = () => {
    try {
      return /x-envoy-upstream-service-time/i.test(inNs(`${NS}-c`, ['curl', '-s', '-m', '2', '-D', '-', '-o', '/dev/null', `http://${S}/x`]));
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 60 && !viaEnvoy(); i++) await sleep(500);
  if (!viaEnvoy()) throw new Error('port 80 is not redirected into Envoy');

  console.log(`# bench/policy.mjs on ${machine()}`);
  console.log(`\n## Request latency, µs (${REQUESTS} requests each, interleaved, one client, sequential)\n`);
  console.log('| connection   | path                 |   p50 |   p99 | p50 ratio | p99 ratio |');
  console.log('|--------------|----------------------|-------|-------|-----------|-----------|');
  for (const keepAlive of [true, false]) {
    const r = latencies(keepAlive);
    const [d50, d99, l50, l99] = [pct(r[8080], 50), pct(r[8080], 99), pct(r[80], 50), pct(r[80], 99)];
    const conn = keepAlive ? 'keep-alive' : 'new each';
    console.log(`| ${conn.padEnd(12)} | direct (L3/L4, BPF)  | ${col(d50, 5)} | ${col(d99, 5)} | ${col(1, 9, 2)} | ${col(1, 9, 2)} |`);
    console.log(`| ${conn.padEnd(12)} | L7 redirect (Envoy)  | ${col(l50, 5)} | ${col(l99, 5)} | ${col(l50 / d50, 9, 2)} | ${col(l99 / d99, 9, 2)} |`);
  }

  // A node with many pods and policies: one policy changes at a time.
  const POD_N = Number(opts.pods);
  const POL_N = Number(opts.policies);
  const pods = Array.from({ length: POD_N }, (_, i) => pod(`p-${i}`, `10.1.${i >> 8}.${i & 255}`, labels(i)));
  writeYaml(src, 'scale-pods.yaml', pods);
  writeYaml(src, 'scale-policies.yaml', Array.from({ length: POL_N }, (_, i) => scalePolicy(i, 8000 + (i % 50))));
  const entered = log.length;
  await until(() => log.slice(entered).some((l) => l.msg === 'policy datapath updated' && l.endpoints >= POD_N), 120_000, 'the scaled state in the maps');
  await sleep(2000);
  const rows = [];
  for (let c = 0; c < Number(opts.changes); c++) {
    const from = log.length;
    const t0 = Date.now();
    // One policy with L7 rules changes its port: a listener goes, one comes, entries move.
    writeYaml(src, 'scale-policies.yaml', Array.from({ length: POL_N }, (_, i) => scalePolicy(i, i === 0 ? 9000 + c : 8000 + (i % 50))));
    await until(() => log.slice(from).some((l) => l.msg === 'snapshot published'), 60_000, 'the publish');
    const version = log.slice(from).find((l) => l.msg === 'snapshot published').version;
    await until(() => log.slice(from).some((l) => l.msg === 'policy datapath updated'), 60_000, 'the maps');
    await until(() => log.slice(from).some((l) => l.msg === 'ACK' && String(l.type).endsWith('Listener') && Number(l.version) >= version), 60_000, "Envoy's ACK");
    await until(() => log.slice(from).filter((l) => l.msg === 'policy datapath updated').length >= 2, 10_000, 'the redirect written after the ACK').catch(() => undefined);
    const at = (pred) => log.slice(from).find(pred)?.time;
    const maps = at((l) => l.msg === 'policy datapath updated') - t0;
    const ack = at((l) => l.msg === 'ACK' && String(l.type).endsWith('Listener') && Number(l.version) >= version) - t0;
    const redirect = log.slice(from).filter((l) => l.msg === 'policy datapath updated')[1]?.time - t0;
    rows.push({ maps, ack, redirect });
    await sleep(500);
  }
  const med = (k) => [...rows.map((r) => r[k])].sort((a, b) => a - b)[rows.length >> 1];
  console.log(`\n## A policy change at ${POD_N} pods and ${POL_N} policies (${POL_N / 10} with L7 rules), ms from the YAML write, median of ${rows.length}\n`);
  console.log('| step                                               |    ms |');
  console.log('|----------------------------------------------------|-------|');
  console.log(`| policy maps written (L3/L4 and the redirect gated) | ${col(med('maps'), 5)} |`);
  console.log(`| Envoy ACKed the version with the new listener      | ${col(med('ack'), 5)} |`);
  console.log(`| the redirect into it written after the ACK         | ${col(med('redirect'), 5)} |`);
  console.log(`| ratio ACK / maps                                   | ${col(med('ack') / med('maps'), 5, 2)} |`);
} finally {
  await cleanup();
}
