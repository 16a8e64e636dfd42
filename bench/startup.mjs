#!/usr/bin/env node
// Start-up at scale: S Services (each with an EndpointSlice) and C CECs, read
// from YAML files and from a real kube-apiserver (informers). Times from the
// agent's spawn to its first published snapshot, to Envoy's first ACK of
// every type, and (root, --datapath) to the socket-LB maps being filled, and
// reads the agent's peak RSS there. --profile runs the agent under
// node --cpu-prof and prints where the CPU went: top self-time functions and
// a breakdown by phase.
//
//   node bench/startup.mjs [--services 10000] [--cecs 5000] [--sources file,kube] [--ads sotw] [--datapath] [--profile] [--top 20]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startKubeCluster } from '../test/helpers/kube-cluster.mjs';
import { objects, TYPES, writeFiles } from './cec-objects.mjs';
import { createObjects, prepareCluster } from './kube.mjs';
import { checkPrerequisites, col, envoyBin, flags, machine, root, rssMiB, spawnLines, stop, until, writeBootstrap } from './lib.mjs';
import { phaseTable, readProfile, topFunctions } from './profile.mjs';

const opts = flags({ services: '10000', cecs: '5000', sources: 'file,kube', ads: 'sotw', datapath: 'false', profile: 'false', top: '20' });
const services = Number(opts.services);
const cecs = Math.min(services, Number(opts.cecs));
const datapath = opts.datapath !== 'false';
const profile = opts.profile !== 'false';
const CGROUP2 = process.env.SLUICE_CGROUP2 ?? '/sys/fs/cgroup/unified';
checkPrerequisites();
if (datapath && process.getuid?.() !== 0) throw new Error('--datapath needs root');

/**
 * A cgroup of its own (no process in it, so the socket programs attached there
 * touch nothing) and a private bpffs for the pins; the agent runs with loopback
 * proxy addresses, so nothing is added to the machine's lo. Removed by `remove`.
 */
function datapathWorld() {
  const id = `${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
  const cgroupDir = join(CGROUP2, `sluice-bench-${id}`);
  const bpffs = mkdtempSync(join(tmpdir(), 'sluice-bench-bpffs-'));
  const pinDir = join(bpffs, 'sluice');
  execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
  mkdirSync(pinDir);
  mkdirSync(cgroupDir);
  return {
    args: ['--datapath', '--bpf-dir', pinDir, '--cgroup-dir', cgroupDir, '--proxy-address', '127.0.0.1,::1'],
    async remove() {
      for (const step of [() => rmSync(pinDir, { recursive: true, force: true }), () => execFileSync('umount', [bpffs]), () => rmSync(bpffs, { recursive: true, force: true })])
        try {
          step();
        } catch (e) {
          process.stderr.write(`bench: cleanup: ${e.message}\n`);
        }
      for (let i = 0; existsSync(cgroupDir); i++)
        try {
          rmdirSync(cgroupDir);
        } catch (e) {
          if (i >= 50) throw e;
          await sleep(100);
        }
    },
  };
}

/** Spawns the agent on `sourceArgs`, starts Envoy once the socket is there, and times the milestones. */
async function run(label, sourceArgs) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-startup-'));
  const socket = join(dir, 'xds.sock');
  const bootstrap = join(dir, 'bootstrap.json');
  await writeBootstrap(bootstrap, opts.ads, socket);
  const world = datapath ? datapathWorld() : undefined;
  const m = {};
  let firstVersion;
  const acked = new Map();
  const nodeArgs = profile ? ['--cpu-prof', '--cpu-prof-dir', join(dir, 'prof')] : [];
  const argv = [...nodeArgs, join(root, 'bin/sluice.js'), 'agent', ...sourceArgs, '--node', 'bench', '--socket', socket, '--state-dir', join(dir, 'state'), '--proxy-ports', '15000-19999', '--log-level', 'debug', ...(world?.args ?? [])];
  let agent;
  let envoy;
  try {
    const t0 = Date.now();
    // The agent's own log time stamps (epoch ms) are the clock: this process's event loop may lag behind.
    agent = spawnLines(process.execPath, argv, (line) => {
      let l;
      try {
        l = JSON.parse(line);
      } catch {
        // Not the JSON log: a crash's stack trace, say.
        process.stderr.write(`agent: ${line}\n`);
        return;
      }
      const at = l.time - t0;
      if (l.msg === 'starting') m.started ??= at;
      else if (l.msg === 'snapshot published') {
        m.published ??= at;
        firstVersion ??= l.version;
        m.resources ??= l.resources;
      } else if (l.msg === 'datapath updated') {
        m.maps ??= at;
        m.services ??= l.services;
      } else if (l.msg === 'ACK') {
        acked.set(l.type, Math.max(acked.get(l.type) ?? 0, l.version));
        if (firstVersion !== undefined && m.acked === undefined && TYPES.every((t) => (acked.get(`type.googleapis.com/${t}`) ?? 0) >= firstVersion)) m.acked = at;
      } else if (l.level >= 50) process.stderr.write(`agent: ${line}\n`);
    });
    await until(() => existsSync(socket) || agent.exitCode !== null, 300_000, 'the agent socket');
    envoy = spawnLines(envoyBin, ['-c', bootstrap, '--use-dynamic-base-id', '--concurrency', '1', '--log-level', 'error', '--admin-address-path', join(dir, 'admin')]);
    await until(() => (m.acked !== undefined && (!datapath || m.maps !== undefined)) || agent.exitCode !== null, 300_000, `${label}: Envoy's first ACK${datapath ? ' and the filled maps' : ''}`);
    if (agent.exitCode !== null) throw new Error(`${label}: the agent exited (${agent.exitCode})`);
    m.peak = rssMiB(agent.pid, 'VmHWM');
    m.envoyRss = rssMiB(envoy.pid);
  } finally {
    // SIGTERM: the agent stops and exits, which is when --cpu-prof writes its profile.
    if (agent) {
      const t = performance.now();
      await stop(agent, 60_000);
      m.stopMs = performance.now() - t;
    }
    if (envoy) await stop(envoy);
    await world?.remove();
    if (profile) {
      const prof = join(dir, 'prof');
      const file = existsSync(prof) ? readdirSync(prof).find((f) => f.endsWith('.cpuprofile')) : undefined;
      m.profile = file ? readProfile(join(prof, file)) : undefined;
    }
    rmSync(dir, { recursive: true, force: true });
  }
  return { label, ...m };
}

const sources = opts.sources.split(',');
const rows = [];
if (sources.includes('file')) {
  const data = mkdtempSync(join(tmpdir(), 'sluice-startup-data-'));
  try {
    writeFiles(data, services, cecs);
    process.stderr.write(`bench: agent from ${services} Services + ${cecs} CECs in YAML files...\n`);
    rows.push(await run('files', ['--source', `dir:${data}`]));
  } finally {
    rmSync(data, { recursive: true, force: true });
  }
}
if (sources.includes('kube')) {
  const teardowns = [];
  try {
    const cluster = await startKubeCluster({ teardown: (fn) => teardowns.push(fn) }, { baseDir: '/dev/shm' });
    await prepareCluster(cluster, 'bench');
    const t0 = performance.now();
    const docs = [];
    for (let i = 0; i < services; i++) docs.push(...objects(i, undefined, true).slice(0, i < cecs ? 3 : 2));
    await createObjects(cluster, docs);
    process.stderr.write(`bench: created ${docs.length} objects in ${((performance.now() - t0) / 1000).toFixed(1)} s; agent from the kube-apiserver...\n`);
    rows.push(await run('kube-apiserver', ['--source', 'kube', '--kubeconfig', cluster.kubeconfig]));
  } finally {
    for (const fn of teardowns.reverse()) await fn();
  }
}

console.log(`\nStart-up: ${services} Services (+ EndpointSlices) + ${cecs} CECs, ${opts.ads}, ms from the agent's spawn (${machine()})`);
console.log(`source          node-start  first-publish  envoy-ack  ${datapath ? 'maps-filled  ' : ''}resources  agent-peak-MiB  envoy-rss-MiB`);
for (const r of rows)
  console.log(
    `${r.label.padEnd(15)} ${col(r.started, 10)} ${col(r.published, 14)} ${col(r.acked, 10)} ${datapath ? `${col(r.maps, 12)} ` : ''}${col(r.resources, 10)} ${col(r.peak, 15, 1)} ${col(r.envoyRss, 14, 1)}`,
  );
if (rows.length === 2) console.log(`ratio kube-apiserver / files: first-publish ${(rows[1].published / rows[0].published).toFixed(2)}, envoy-ack ${(rows[1].acked / rows[0].acked).toFixed(2)}`);
if (profile)
  for (const r of rows) {
    if (!r.profile) {
      console.log(`\n${r.label}: no CPU profile was written`);
      continue;
    }
    console.log(`\n${r.label}: CPU by phase (self time, attributed to the innermost sluice or library frame)`);
    console.log(phaseTable(r.profile));
    console.log(`\n${r.label}: top ${opts.top} functions by self time`);
    console.log(topFunctions(r.profile, Number(opts.top)));
  }
