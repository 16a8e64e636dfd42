#!/usr/bin/env node
// Time from a change in the agent's resource directory to the node's Envoy
// ACKing it, for N EDS clusters (each with its ClusterLoadAssignment), over
// SotW and delta ADS; plus the agent's and Envoy's resident memory.
//
//   node bench/xds-ack.mjs [--sizes 10,1000,10000] [--changes 7]
//
// Everything runs on loopback / a unix socket; endpoints point at 127.0.0.1
// and carry no traffic. Needs scripts/setup.sh to have run.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';

const root = new URL('..', import.meta.url).pathname;
const args = Object.fromEntries(process.argv.slice(2).join('=').split('--').filter(Boolean).map((a) => a.replace(/=$/, '').split('=')));
const sizes = (args.sizes ?? '10,1000,10000').split(',').map(Number);
const changes = Number(args.changes ?? 7);
const envoyBin = process.env.SLUICE_ENVOY ?? `${process.env.SLUICE_CACHE ?? '/var/cache/sluice'}/bin/envoy`;
if (!existsSync(envoyBin)) throw new Error(`no Envoy at ${envoyBin}; run scripts/setup.sh`);
if (!existsSync(join(root, 'dist/cli.js'))) throw new Error('dist/ is not built; run scripts/setup.sh');
const PER_FILE = 100;
const T = 'type.googleapis.com/';

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

function writeFile(dir, fileIndex, n, tweak) {
  const docs = [];
  for (let i = fileIndex * PER_FILE; i < Math.min(n, (fileIndex + 1) * PER_FILE); i++) {
    const t = tweak?.(i);
    docs.push(cluster(i, t?.timeout), cla(i, t?.port));
  }
  const tmp = join(dir, `.f${fileIndex}.tmp`);
  writeFileSync(tmp, docs.map((d) => stringify(d)).join('---\n'));
  renameSync(tmp, join(dir, `f${fileIndex}.yaml`));
}

const rssMiB = (pid, field = 'VmRSS') => {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
};

function spawnTracked(cmd, argv, onLine) {
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let buf = '';
  child.stderr.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      onLine?.(line);
    }
  });
  return child;
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode) return;
  child.kill('SIGTERM');
  for (let i = 0; i < 60 && child.exitCode === null && !child.signalCode; i++) await sleep(50);
  if (child.exitCode === null && !child.signalCode) child.kill('SIGKILL');
}

async function until(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

async function run(ads, n) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const resources = join(dir, 'resources');
  mkdirSync(resources);
  const files = Math.ceil(n / PER_FILE);
  for (let f = 0; f < files; f++) writeFile(resources, f, n);
  const socket = join(dir, 'xds.sock');
  const acked = { Cluster: 0, ClusterLoadAssignment: 0 };
  const published = [];
  const agent = spawnTracked(process.execPath, [join(root, 'bin/sluice.js'), 'agent', '--resources', resources, '--socket', socket, '--log-level', 'debug'], (line) => {
    let l;
    try {
      l = JSON.parse(line);
    } catch {
      return;
    }
    if (l.msg === 'ACK') {
      const type = l.type.split('.').pop();
      if (type in acked) acked[type] = Math.max(acked[type], l.version);
    } else if (l.msg === 'snapshot published') published.push({ version: l.version, at: performance.now() });
    else if (l.level >= 40) process.stderr.write(`agent: ${line}\n`);
  });
  let envoy;
  try {
    await until(() => existsSync(socket) && published.length > 0, 60_000, 'agent start');
    const bootstrapOut = await new Promise((res, rej) => {
      let out = '';
      const p = spawn(process.execPath, [join(root, 'bin/sluice.js'), 'bootstrap', '-o', 'json', '--node', 'bench', '--ads', ads, '--socket', socket, '--admin-port', '0']);
      p.stdout.on('data', (d) => (out += d));
      p.on('exit', (c) => (c === 0 ? res(out) : rej(new Error('bootstrap failed'))));
    });
    writeFileSync(join(dir, 'bootstrap.json'), bootstrapOut);
    const v1 = published.at(-1).version;
    const t0 = performance.now();
    envoy = spawnTracked(envoyBin, ['-c', join(dir, 'bootstrap.json'), '--use-dynamic-base-id', '--concurrency', '1', '--log-level', 'error', '--admin-address-path', join(dir, 'admin')]);
    await until(() => acked.Cluster >= v1 && acked.ClusterLoadAssignment >= v1, 300_000, `initial sync of ${n} clusters`);
    const initial = performance.now() - t0;

    const times = [];
    for (let c = 0; c < changes; c++) {
      const target = (c * 7919) % n;
      const before = published.length;
      const start = performance.now();
      writeFile(resources, Math.floor(target / PER_FILE), n, (i) => (i === target ? { timeout: `${2 + c}s`, port: 9000 + c } : undefined));
      await until(() => published.length > before, 60_000, 'reload');
      const v = published.at(-1).version;
      await until(() => acked.Cluster >= v && acked.ClusterLoadAssignment >= v, 60_000, `ACK of version ${v}`);
      times.push(performance.now() - start);
      await sleep(100);
    }
    times.sort((a, b) => a - b);
    return {
      ads,
      n,
      initial,
      p50: times[Math.floor(times.length / 2)],
      max: times.at(-1),
      agentRss: rssMiB(agent.pid),
      agentPeak: rssMiB(agent.pid, 'VmHWM'),
      envoyRss: rssMiB(envoy.pid),
    };
  } finally {
    if (envoy) await stop(envoy);
    await stop(agent);
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = [];
for (const n of sizes) for (const ads of ['sotw', 'delta']) {
  process.stderr.write(`bench: ${ads} with ${n} clusters...\n`);
  rows.push(await run(ads, n));
}

const f = (x, d = 0) => x.toFixed(d).padStart(9);
console.log(`\nxDS change -> Envoy ACK (${changes} changes of one cluster + its endpoints each; node ${process.version}, ${(await import('node:os')).cpus()[0].model.trim()}, ${(await import('node:os')).cpus().length} cores)`);
console.log('ads     clusters  initial-sync-ms  change-p50-ms  change-max-ms  agent-rss-MiB  agent-peak-MiB  envoy-rss-MiB');
for (const r of rows)
  console.log(`${r.ads.padEnd(6)} ${String(r.n).padStart(9)} ${f(r.initial).padStart(16)} ${f(r.p50, 1).padStart(14)} ${f(r.max, 1).padStart(14)} ${f(r.agentRss, 1).padStart(14)} ${f(r.agentPeak, 1).padStart(15)} ${f(r.envoyRss, 1).padStart(14)}`);
console.log('\nratios, delta / sotw (below 1: delta is faster or smaller)');
console.log(' clusters  initial-sync  change-p50  agent-rss');
for (const n of sizes) {
  const s = rows.find((r) => r.n === n && r.ads === 'sotw');
  const d = rows.find((r) => r.n === n && r.ads === 'delta');
  console.log(`${String(n).padStart(9)} ${f(d.initial / s.initial, 2).padStart(13)} ${f(d.p50 / s.p50, 2).padStart(11)} ${f(d.agentRss / s.agentRss, 2).padStart(10)}`);
}
