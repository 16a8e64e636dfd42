#!/usr/bin/env node
// sluice's xDS serving against go-control-plane's (v0.14.0, snapshot cache, ADS),
// both serving the same N Clusters + N ClusterLoadAssignments read from one
// directory of proto3 JSON files, to M simulated proxies (bench/go/cmd/xds-load:
// one connection and stream per proxy, all with node id "sluice-node", SotW or
// delta, ACKing like Envoy). Per (M, N, mode) it measures:
//   initial sync: stream open -> every cluster and CLA received and ACKed, per proxy;
//   change -> proxy: for sluice, the clock read just before a CLA file is written;
//     for go-control-plane, the clock read right before SetSnapshot (its peer
//     re-reads the same file first, untimed) -> that CLA reaching each proxy;
//   peak RSS (VmHWM, reset before each mode) and CPU seconds of each server
//     while serving that mode.
//
//   bench/go/build.sh                     # builds the Go programs (cached; cold ~2.5 min)
//   node bench/xds-peer.mjs [--quick] [--changes 20] [--sizes 1x10000,100x1000,1000x100]
//        [--modes sotw,delta] [--servers sluice,gcp] [--dist dist] [--cpu-prof DIR]
//
// --cpu-prof writes a V8 CPU profile of each sluice agent run into DIR.
// Servers listen on unix sockets only. Needs dist/ built (npm run build).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createInterface } from 'node:readline';
import { flags, machine, root } from './lib.mjs';

const opts = flags({ quick: false, changes: '', sizes: '', modes: 'sotw,delta', servers: 'sluice,gcp', dist: 'dist', 'cpu-prof': '' });
const quick = opts.quick !== false;
const sizes = (opts.sizes || (quick ? '1x1000,50x100' : '1x10000,100x1000,1000x100')).split(',').map((s) => s.split('x').map(Number));
const changes = Number(opts.changes || (quick ? 5 : 20));
const modes = opts.modes.split(',');
const servers = opts.servers.split(',');
const dist = resolve(root, opts.dist);
const NODE = 'sluice-node';
const CHANGE_BASE = 20000;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));

const binDir = execFileSync(join(root, 'bench/go/build.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
if (!existsSync(join(dist, 'cli.js'))) throw new Error(`${dist}/cli.js is missing; run npm run build`);

/** Wall clock in ns, comparable with Go's time.Now().UnixNano(). */
const wallNs = () => (performance.timeOrigin + performance.now()) * 1e6;

const T = 'type.googleapis.com/envoy.config.';
const cluster = (i) => ({
  '@type': `${T}cluster.v3.Cluster`,
  name: `c${i}`,
  type: 'EDS',
  connect_timeout: '1s',
  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
});
/** `seq` > 0 marks the CLA as change number `seq` (xds-load reads it from the port). */
const cla = (i, seq = 0) => ({
  '@type': `${T}endpoint.v3.ClusterLoadAssignment`,
  cluster_name: `c${i}`,
  endpoints: [
    {
      lb_endpoints: [0, 1, 2].map((k) => ({
        endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: k === 0 && seq ? CHANGE_BASE + seq : 10000 + k } } },
      })),
    },
  ],
});

function writeAtomic(dir, file, doc) {
  const tmp = join(dir, `.${file}.tmp`);
  writeFileSync(tmp, JSON.stringify(doc));
  renameSync(tmp, join(dir, file));
}

function generate(dir, n) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    writeFileSync(join(dir, `cluster-c${i}.json`), JSON.stringify(cluster(i)));
    writeFileSync(join(dir, `cla-c${i}.json`), JSON.stringify(cla(i)));
  }
}

function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
const hwmMiB = (pid) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
/** Resets VmHWM to the current RSS, so each mode's peak is its own. */
const resetPeak = (pid) => writeFileSync(`/proc/${pid}/clear_refs`, '5');

/** A child whose stdout lines are handed out in order, awaited by predicate. */
function child(cmd, argv, label) {
  const p = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = [];
  let wake;
  let exited = false;
  createInterface({ input: p.stdout }).on('line', (l) => {
    lines.push(l);
    wake?.();
  });
  let err = '';
  p.stderr.on('data', (d) => {
    err += d;
    if (err.length > 20000) err = err.slice(-10000);
  });
  p.on('exit', () => {
    exited = true;
    wake?.();
  });
  return {
    proc: p,
    stderr: () => err,
    /** Resolves with the first unread line `match` accepts (its result), skipping the others. */
    async next(match, timeoutMs, what) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        while (lines.length) {
          const r = match(lines.shift());
          if (r !== undefined) return r;
        }
        if (exited) throw new Error(`${label} exited waiting for ${what}: ${err.slice(-2000)}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}: ${what}`);
        await new Promise((r) => {
          wake = r;
          setTimeout(r, Math.min(left, 1000));
        });
        wake = undefined;
      }
    },
  };
}

async function stop(p, signal = 'SIGTERM') {
  if (p.exitCode !== null || p.signalCode) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill(signal);
  if (await Promise.race([gone.then(() => true), sleep(10_000).then(() => false)])) return;
  p.kill('SIGKILL');
  await gone;
}

const json = (l) => {
  try {
    return JSON.parse(l);
  } catch {
    return undefined;
  }
};

async function startSluice(work, data, label) {
  const socket = join(work, 'sluice.sock');
  const node = opts['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', resolve(opts['cpu-prof']), '--cpu-prof-name', `sluice-${label}.cpuprofile`] : [];
  const c = child(process.execPath, [...node, join(dist, 'cli.js'), 'agent', '--resources', data, '--node', NODE, '--socket', socket, '--state-dir', join(work, 'state'), '--log-level', 'warn'], 'sluice');
  const t0 = performance.now();
  for (;;) {
    if (existsSync(socket)) break;
    if (c.proc.exitCode !== null) throw new Error(`sluice exited: ${c.stderr()}`);
    if (performance.now() - t0 > 300_000) throw new Error('sluice did not start');
    await sleep(20);
  }
  return {
    name: 'sluice',
    c,
    socket,
    startMs: performance.now() - t0,
    /** Writes the file and returns the clock read just before. */
    async change(i, seq) {
      const t = wallNs();
      writeAtomic(data, `cla-c${i}.json`, cla(i, seq));
      return t;
    },
  };
}

async function startGcp(work, data) {
  const socket = join(work, 'gcp.sock');
  const c = child(join(binDir, 'xds-peer'), ['-dir', data, '-socket', socket, '-node', NODE], 'xds-peer');
  const t0 = performance.now();
  await c.next((l) => (l.startsWith('ready') ? true : undefined), 300_000, 'ready');
  return {
    name: 'gcp',
    c,
    socket,
    startMs: performance.now() - t0,
    async change(i, seq) {
      writeAtomic(data, `cla-c${i}.json`, cla(i, seq));
      c.proc.stdin.write(`${join(data, `cla-c${i}.json`)}\n`);
      return c.next((l) => (l.startsWith('set ') ? Number(l.slice(4)) : undefined), 60_000, `set for change ${seq}`);
    },
  };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

async function measure(server, m, n, mode, seqStart) {
  const pid = server.c.proc.pid;
  resetPeak(pid);
  const cpu0 = cpuSeconds(pid);
  const began = performance.now();
  const load = child(join(binDir, 'xds-load'), ['-addr', `unix://${server.socket}`, '-proxies', String(m), '-n', String(n), '-mode', mode, '-node', NODE], 'xds-load');
  let reopened = 0;
  const onError = (l) => {
    const e = json(l);
    if (e?.event === 'error' && reopened++ < 3) process.stderr.write(`  (${server.name}) proxy ${e.proxy} reopens its stream: ${e.error}\n`);
    return e;
  };
  try {
    const synced = await load.next((l) => (onError(l)?.event === 'synced' ? json(l) : undefined), 180_000, 'initial sync');
    const lat = [];
    for (let k = 0; k < changes; k++) {
      const seq = seqStart + k;
      const i = (seq * 7919) % n;
      const t0 = await server.change(i, seq);
      const seen = await load.next((l) => {
        const e = onError(l);
        return e?.event === 'seen' && e.seq === seq ? e : undefined;
      }, 60_000, `change ${seq} at every proxy`);
      for (const ns of seen.recv_ns) lat.push((ns - t0) / 1e6);
      await sleep(50);
    }
    return { initial: synced.initial_ms, change: lat, rss: hwmMiB(pid), cpu: cpuSeconds(pid) - cpu0, loadCpu: cpuSeconds(load.proc.pid), reopened, secs: (performance.now() - began) / 1000 };
  } finally {
    load.proc.stdin.end();
    await stop(load.proc, 'SIGTERM');
  }
}

const results = [];
const started = performance.now();
for (const [m, n] of sizes) {
  const work = mkdtempSync(join(tmpdir(), 'sluice-xds-peer-'));
  try {
    for (const name of servers) {
      const data = join(work, `res-${name}`);
      generate(data, n);
      process.stderr.write(`bench: ${name} M=${m} N=${n} starting...`);
      const server = name === 'sluice' ? await startSluice(work, data, `${m}x${n}`) : await startGcp(work, data);
      process.stderr.write(` up in ${(server.startMs / 1000).toFixed(1)} s\n`);
      try {
        let seq = 1;
        for (const mode of modes) {
          const r = await measure(server, m, n, mode, seq);
          seq += changes;
          results.push({ m, n, mode, server: name, ...r, startMs: server.startMs });
          process.stderr.write(
            `  ${mode}: initial p50 ${pct(r.initial, 50).toFixed(1)} ms, change p50 ${pct(r.change, 50).toFixed(1)} p99 ${pct(r.change, 99).toFixed(1)} ms, peak ${r.rss.toFixed(0)} MiB, cpu ${r.cpu.toFixed(2)} s (load client ${r.loadCpu.toFixed(2)} s, run ${r.secs.toFixed(1)} s, streams reopened ${r.reopened})\n`,
          );
        }
      } finally {
        server.c.proc.stdin.end();
        await stop(server.c.proc);
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const fmt = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const cell = (s, g) => (s === undefined || g === undefined ? '-' : `${fmt(s)} / ${fmt(g)} = ${(s / g).toFixed(2)}x`).padStart(26);
console.log(`\nxDS serving, sluice / go-control-plane v0.14.0 (${machine()}); ${changes} changes per row; ms unless noted`);
console.log(`${'M'.padStart(5)} ${'N'.padStart(6)} mode  ${['initial p50', 'initial p99', 'change p50', 'change p99', 'peak RSS MiB', 'CPU s'].map((h) => h.padStart(26)).join('')}`);
for (const [m, n] of sizes)
  for (const mode of modes) {
    const s = results.find((r) => r.m === m && r.n === n && r.mode === mode && r.server === 'sluice');
    const g = results.find((r) => r.m === m && r.n === n && r.mode === mode && r.server === 'gcp');
    const both = (f) => cell(s && f(s), g && f(g));
    console.log(
      `${String(m).padStart(5)} ${String(n).padStart(6)} ${mode.padEnd(5)} ${both((r) => pct(r.initial, 50))}${both((r) => pct(r.initial, 99))}${both((r) => pct(r.change, 50))}${both((r) => pct(r.change, 99))}${both((r) => r.rss)}${both((r) => r.cpu)}`,
    );
  }
const reopened = results.filter((r) => r.reopened > 0);
if (reopened.length) console.log(`streams reopened after an error: ${reopened.map((r) => `${r.server} ${r.m}x${r.n} ${r.mode}: ${r.reopened}`).join(', ')}`);
console.log(`(server start, files to serving: ${sizes.map(([m, n]) => `N=${n}: ${servers.map((sv) => `${sv} ${fmt((results.find((r) => r.n === n && r.m === m && r.server === sv)?.startMs ?? NaN) / 1000)} s`).join(', ')}`).join('; ')}; total ${((performance.now() - started) / 1000).toFixed(0)} s)`);
