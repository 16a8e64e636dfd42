// Shared plumbing for the benches: the agent and a real Envoy as child
// processes, the agent's JSON log as the clock for publishes and ACKs.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';

export const root = new URL('..', import.meta.url).pathname;
export const envoyBin = process.env.SLUICE_ENVOY ?? `${process.env.SLUICE_CACHE ?? '/var/cache/sluice'}/bin/envoy`;

export function checkPrerequisites() {
  if (!existsSync(envoyBin)) throw new Error(`no Envoy at ${envoyBin}; run scripts/setup.sh`);
  if (!existsSync(join(root, 'dist/cli.js'))) throw new Error('dist/ is not built; run scripts/setup.sh');
}

/** --name=value or --name value flags, and bare --name switches. */
export function flags(defaults) {
  const out = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(argv[i]);
    // A bare flag (the last, or followed by another flag) is a switch: "true".
    if (m) out[m[1]] = m[2] ?? (argv[i + 1] === undefined || argv[i + 1].startsWith('--') ? 'true' : argv[++i]);
  }
  return out;
}

export function machine() {
  return `node ${process.version}, ${cpus()[0].model.trim()}, ${cpus().length} cores`;
}

export function writeYaml(dir, file, docs) {
  const tmp = join(dir, `.${file}.tmp`);
  writeFileSync(tmp, docs.map((d) => stringify(d)).join('---\n'));
  renameSync(tmp, join(dir, file));
}

/**
 * The names a netns bench `name` works under, after checking it can run (root,
 * the build, cgroup v2): the node netns (pods are `${ns}-<pod>`), a cgroup of
 * its own, and a temp dir holding the bpffs mount point and the agent's source.
 */
export function netnsBench(name) {
  if (process.getuid() !== 0) throw new Error(`bench/${name}.mjs needs root (network namespaces, cgroups, BPF)`);
  if (!existsSync(join(root, 'dist/cli.js')) || !existsSync(join(root, 'build/bpf/policy.o'))) throw new Error('run scripts/setup.sh first');
  const cg2 = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((p) => execFileSync('stat', ['-f', '-c', '%T', p], { encoding: 'utf8' }).trim() === 'cgroup2fs');
  if (!cg2) throw new Error('no cgroup v2 mount');
  const ns = `sluice-${name}-${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), `sluice-bench-${name}-`));
  return { ns, cgroup: join(cg2, ns), dir, bpf: join(dir, 'bpf'), src: join(dir, 'src') };
}

/**
 * Makes the node netns of `bench` (netnsBench's), its cgroup and directories,
 * and pods as a routing CNI wires them: pod i+1 is netns `${node}-${name}` with
 * `ip`/32 on eth0, its peer lxc(i+1) in the node with a /32 route, 169.254.1.1
 * the pods' gateway. `sh` runs one command (argv).
 */
export function routedNode(sh, bench, pods) {
  const node = bench.ns;
  sh(['ip', 'netns', 'add', node]);
  sh(['ip', '-n', node, 'link', 'set', 'lo', 'up']);
  sh(['ip', 'netns', 'exec', node, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  for (const d of [bench.cgroup, bench.bpf, bench.src]) mkdirSync(d);
  pods.forEach(([name, ip], i) => {
    const ns = `${node}-${name}`;
    const lxc = `lxc${i + 1}`;
    sh(['ip', 'netns', 'add', ns]);
    sh(['ip', '-n', node, 'link', 'add', lxc, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh(['ip', '-n', node, 'addr', 'add', '169.254.1.1/32', 'dev', lxc]);
    sh(['ip', '-n', node, 'link', 'set', lxc, 'up']);
    sh(['ip', '-n', node, 'route', 'add', `${ip}/32`, 'dev', lxc]);
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    sh(['ip', '-n', ns, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
    sh(['ip', '-n', ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
    sh(['ip', '-n', ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
  });
}

/**
 * Tears down what a netns bench made, each step whether or not the one before
 * worked: its children (SIGKILL, by PID), `pins` then the bpffs mount `bpf`,
 * the netns (pods before the node), the cgroup once empty, the temp dir.
 */
export async function removeBenchNode(sh, { children, pins, bpf, netns, cgroup, dir }) {
  for (const c of children) if (c.exitCode === null && !c.signalCode) c.kill('SIGKILL');
  await sleep(300);
  const steps = [...(pins ? [['rm', '-rf', pins]] : []), ['umount', bpf], ...netns.map((n) => ['ip', 'netns', 'delete', n])];
  for (const step of steps)
    try {
      sh(step);
    } catch {
      /* not there */
    }
  for (let i = 0; i < 50 && existsSync(cgroup); i++)
    try {
      sh(['rmdir', cgroup]);
    } catch {
      await sleep(100);
    }
  rmSync(dir, { recursive: true, force: true });
}

export function rssMiB(pid, field = 'VmRSS') {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Spawns `cmd` and hands each line of its stderr to `onLine`. */
export function spawnLines(cmd, argv, onLine) {
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let buf = '';
  child.stderr.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine?.(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs`: stops a child this bench started, by its PID. */
export async function stop(child, graceMs = 3000) {
  const alive = () => child.exitCode === null && !child.signalCode;
  if (!alive()) return;
  child.kill('SIGTERM');
  for (let i = 0; i < graceMs / 50 && alive(); i++) await sleep(50);
  if (alive()) child.kill('SIGKILL');
}

export async function until(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Writes Envoy's bootstrap for node "bench" on `ads` (sotw or delta) over the agent's socket. */
export async function writeBootstrap(file, ads, socket) {
  const out = await new Promise((res, rej) => {
    let s = '';
    const p = spawn(process.execPath, [join(root, 'bin/sluice.js'), 'bootstrap', '-o', 'json', '--node', 'bench', '--ads', ads, '--socket', socket, '--health-port', '0']);
    p.stdout.on('data', (d) => (s += d));
    p.on('exit', (c) => (c === 0 ? res(s) : rej(new Error('sluice bootstrap failed'))));
  });
  writeFileSync(file, out);
}

/**
 * Runs the agent (with `agentArgs`) and an Envoy on `ads`, calls `body` with a
 * handle, and stops both by PID afterwards, whatever happens.
 */
export async function withAgentAndEnvoy({ ads, agentArgs, setup }, body) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-'));
  const data = join(dir, 'data');
  mkdirSync(data);
  await setup(data);
  const socket = join(dir, 'xds.sock');
  const acked = new Map();
  const published = [];
  const agent = spawnLines(
    process.execPath,
    [join(root, 'bin/sluice.js'), 'agent', ...agentArgs(data), '--node', 'bench', '--socket', socket, '--state-dir', join(dir, 'state'), '--log-level', 'debug'],
    (line) => {
      let l;
      try {
        l = JSON.parse(line);
      } catch {
        return;
      }
      if (l.msg === 'ACK') acked.set(l.type, Math.max(acked.get(l.type) ?? 0, l.version));
      else if (l.msg === 'snapshot published') published.push({ version: l.version, at: performance.now() });
      else if (l.level >= 50) process.stderr.write(`agent: ${line}\n`);
    },
  );
  let envoy;
  try {
    await until(() => existsSync(socket) && published.length > 0, 120_000, 'agent start');
    const bootstrap = join(dir, 'bootstrap.json');
    await writeBootstrap(bootstrap, ads, socket);
    const h = {
      data,
      published,
      latestVersion: () => published.at(-1).version,
      /** ACKed at least `version` for every type in `types`. */
      ackedAll: (version, types) => types.every((t) => (acked.get(`type.googleapis.com/${t}`) ?? 0) >= version),
      agentPid: () => agent.pid,
      envoyPid: () => envoy.pid,
      startEnvoy: () => {
        envoy = spawnLines(envoyBin, ['-c', bootstrap, '--use-dynamic-base-id', '--concurrency', '1', '--log-level', 'error', '--admin-address-path', join(dir, 'admin')]);
      },
      /**
       * Writes, waits for the agent to publish, then for Envoy to ACK `types`; returns ms from
       * the start of the write to the publish and to the ACK, and from `written`, when the
       * write says when it took effect (an API call's return), to the ACK.
       */
      async change(write, types, timeoutMs = 60_000) {
        const before = published.length;
        const start = performance.now();
        const { written = start } = (await write()) ?? {};
        await until(() => published.length > before, timeoutMs, 'the agent to publish');
        const p = published.at(-1);
        await until(() => h.ackedAll(p.version, types), timeoutMs, `Envoy to ACK version ${p.version}`);
        const end = performance.now();
        return { ms: end - start, publishMs: p.at - start, fromWrittenMs: end - written, writeMs: written - start };
      },
    };
    return await body(h);
  } finally {
    if (envoy) await stop(envoy);
    await stop(agent);
    rmSync(dir, { recursive: true, force: true });
  }
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** The nearest-rank percentile: with fewer than 100 samples p99 is the largest. */
export const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil((p / 100) * xs.length) - 1)];
export const col = (x, w, d = 0) => (typeof x === 'number' ? x.toFixed(d) : String(x)).padStart(w);

/**
 * The measurement both benches make: start Envoy, time its initial sync of
 * `types`, then time `changes` edits (each `edit(c)` returns the file write
 * and the types to wait for), and read memory.
 */
export async function measureSyncAndEdits(h, { types, changes, edit, label }) {
  const v1 = h.latestVersion();
  const t0 = performance.now();
  h.startEnvoy();
  await until(() => h.ackedAll(v1, types), 600_000, `initial sync of ${label}`);
  const initial = performance.now() - t0;
  const runs = [];
  for (let c = 0; c < changes; c++) {
    const { write, waitFor } = edit(c);
    runs.push(await h.change(write, waitFor));
    await sleep(100);
  }
  const times = runs.map((r) => r.ms);
  const of = (k) => runs.map((r) => r[k]);
  return {
    initial,
    p50: median(times),
    p99: percentile(times, 99),
    max: Math.max(...times),
    publishP50: median(of('publishMs')),
    fromWrittenP50: median(of('fromWrittenMs')),
    fromWrittenP99: percentile(of('fromWrittenMs'), 99),
    writeP50: median(of('writeMs')),
    agentRss: rssMiB(h.agentPid()),
    agentPeak: rssMiB(h.agentPid(), 'VmHWM'),
    envoyRss: rssMiB(h.envoyPid()),
  };
}

/** Runs `run(ads, n)` for every size over SotW then delta. */
export async function matrix(sizes, what, run, modes = ['sotw', 'delta']) {
  const rows = [];
  for (const n of sizes)
    for (const ads of modes) {
      process.stderr.write(`bench: ${ads} with ${n} ${what}...\n`);
      rows.push({ ads, n, ...(await run(ads, n)) });
    }
  return rows;
}

/** Prints the per-run table and the delta/sotw ratio table. */
export function printTables(rows, sizes, { title, what, edit }) {
  console.log(`\n${title} (${machine()})`);
  console.log(`ads    ${what.padStart(9)}  initial-sync-ms  ${edit}-p50-ms  ${edit}-max-ms  agent-rss-MiB  agent-peak-MiB  envoy-rss-MiB`);
  for (const r of rows)
    console.log(`${r.ads.padEnd(6)} ${col(r.n, 9)} ${col(r.initial, 16)} ${col(r.p50, edit.length + 8, 1)} ${col(r.max, edit.length + 8, 1)} ${col(r.agentRss, 14, 1)} ${col(r.agentPeak, 15, 1)} ${col(r.envoyRss, 14, 1)}`);
  console.log(`\nratios: delta / sotw (below 1: delta faster or smaller); growth = ${edit} p50 at N / at N=${sizes[0]}`);
  console.log(`${what.padStart(9)}  initial-sync  ${edit}-p50  agent-rss  sotw-growth  delta-growth`);
  const at = (n, ads) => rows.find((r) => r.n === n && r.ads === ads);
  for (const n of sizes) {
    const s = at(n, 'sotw');
    const d = at(n, 'delta');
    if (!s || !d) continue;
    console.log(`${col(n, 9)} ${col(d.initial / s.initial, 13, 2)} ${col(d.p50 / s.p50, edit.length + 4, 2)} ${col(d.agentRss / s.agentRss, 10, 2)} ${col(s.p50 / at(sizes[0], 'sotw').p50, 12, 2)} ${col(d.p50 / at(sizes[0], 'delta').p50, 13, 2)}`);
  }
}

/** The cgroup v2 mount, where benches make their own cgroups. */
export function cgroup2Root() {
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' '));
  const found = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup'].find((p) => mounts.some((m) => m[1] === p && m[2] === 'cgroup2'));
  if (!found) throw new Error('no cgroup v2 mount');
  return found;
}

export const sh = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
/** Runs a command in a named netns; nsenter enters only the network namespace, so the cgroup tree stays visible. */
export const inNetns = (ns, cmd, args) => sh('nsenter', [`--net=/var/run/netns/${ns}`, cmd, ...args]);
/** The argv that runs node `script` in netns `ns` inside `cgroupDir` (when given); the PID spawned is node's. */
export const nodeInNetns = (ns, cgroupDir, script, args = []) =>
  ['nsenter', `--net=/var/run/netns/${ns}`, 'sh', '-c', `${cgroupDir ? `echo $$ > ${cgroupDir}/cgroup.procs && ` : ''}exec "$0" "$@"`, process.execPath, script, ...args];

/** Removes a cgroup, waiting a while: it empties a moment after its last process exits. */
export async function removeCgroupDir(dir) {
  for (let i = 0; i < 50 && existsSync(dir); i++)
    try {
      rmdirSync(dir);
    } catch {
      await sleep(100);
    }
}

/** Runs `cleanup` once, on normal exit of the caller's try/finally or on SIGINT/SIGTERM. */
export function cleanupOnSignals(cleanup) {
  let done;
  const once = () => (done ??= cleanup());
  for (const sig of ['SIGINT', 'SIGTERM'])
    process.once(sig, () => {
      process.stderr.write(`bench: ${sig}, cleaning up\n`);
      once().finally(() => process.exit(130));
    });
  return once;
}
