// A private world for datapath tests: a network namespace (only loopback, so
// nothing can leave the machine), a cgroup v2 directory, and a private bpffs
// mount for pins. All of it is removed at teardown, pass or fail.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const CGROUP2 = process.env.SLUICE_CGROUP2 ?? '/sys/fs/cgroup/unified';
const here = new URL('.', import.meta.url).pathname;

export interface NetnsWorld {
  ns: string;
  cgroupDir: string;
  pinDir: string;
  /** Runs a command in the namespace. */
  sh(cmd: string, args: string[]): string;
  /** Starts the servers of netns-server.mjs in the namespace; resolves once they listen. */
  servers(cfg: object): Promise<ChildProcess>;
  /** Runs netns-client.mjs in the namespace, inside the cgroup; returns its results. */
  client(plan: object[]): any[][];
  /** The namespace's cookie, what bpf_get_netns_cookie() returns for its sockets (SO_NETNS_COOKIE). */
  netnsCookie(): bigint;
  /**
   * Another network namespace whose only link is a veth pair into this one
   * (10.250.K.2 and fd00:250:K::2 there, 10.250.K.1 and fd00:250:K::1 here,
   * default routes through it): a pod of the node this namespace plays, with
   * its own netns cookie. Removed at teardown.
   */
  peer(): PeerNetns;
}

export interface PeerNetns {
  ns: string;
  /** Its addresses on the veth. */
  ip4: string;
  ip6: string;
  /** Runs netns-client.mjs in the peer namespace, inside the world's cgroup. */
  client(plan: object[]): any[][];
  netnsCookie(): bigint;
}

// SO_NETNS_COOKIE (Linux 5.14+) is 71; Node has no getsockopt, python3 (a Debian base package) does.
const COOKIE_PY = 'import socket; s = socket.socket(); print(int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 71, 8), "little"))';

/** Throws, naming what is missing, unless this process is root with cgroup v2 at CGROUP2: datapath tests fail rather than skip. */
export function requireDatapathPrerequisites(): void {
  if (process.getuid?.() !== 0) throw new Error('datapath tests need root');
  if (!readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === CGROUP2 && l.split(' ')[2] === 'cgroup2'))
    throw new Error(`no cgroup v2 mount at ${CGROUP2} (set SLUICE_CGROUP2)`);
}

/** SIGKILLs a child the test started (by its PID) and waits for it to be gone. */
export async function stopChild(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGKILL');
  await gone;
}

/** Removes an (empty or emptying) cgroup directory: a cgroup empties a moment after its last process exits. */
export async function removeCgroup(dir: string): Promise<void> {
  for (let i = 0; existsSync(dir); i++)
    try {
      rmdirSync(dir);
    } catch (e) {
      if (i >= 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
}

export async function netnsWorld(t: Teardown, addresses: string[]): Promise<NetnsWorld> {
  requireDatapathPrerequisites();
  const id = `${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
  const ns = `sluice-t-${id}`;
  const cgroupDir = join(CGROUP2, `sluice-test-${id}`);
  const bpffs = mkdtempSync(join(tmpdir(), 'sluice-bpffs-'));
  const pinDir = join(bpffs, 'sluice');
  const children: ChildProcess[] = [];
  const peers: string[] = [];
  t.teardown(async () => {
    await Promise.all(children.map(stopChild));
    // Every step on its own: one that fails (a cgroup still busy, say) must not leave the rest behind.
    const steps: (() => void)[] = [
      () => rmSync(pinDir, { recursive: true, force: true }),
      () => execFileSync('umount', [bpffs], { stdio: 'ignore' }),
      () => rmSync(bpffs, { recursive: true, force: true }),
      ...peers.map((p) => () => execFileSync('ip', ['netns', 'delete', p], { stdio: 'ignore' })),
      () => execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' }),
    ];
    for (const step of steps)
      try {
        step();
      } catch {
        /* not there, or not ours to fix: the next step still runs */
      }
    await removeCgroup(cgroupDir);
  });
  execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
  mkdirSync(pinDir);
  mkdirSync(cgroupDir);
  execFileSync('ip', ['netns', 'add', ns]);
  // nsenter enters only the network namespace; `ip netns exec` would also remount /sys and hide the cgroup tree.
  const enter = ['--net=/var/run/netns/' + ns];
  const sh = (cmd: string, args: string[]) => execFileSync('nsenter', [...enter, cmd, ...args], { encoding: 'utf8' });
  sh('ip', ['link', 'set', 'lo', 'up']);
  for (const a of addresses) sh('ip', ['addr', 'add', a.includes(':') ? `${a}/128` : `${a}/32`, 'dev', 'lo']);
  const clientIn = (netns: string, plan: object[]) => {
    const script = `echo $$ > ${cgroupDir}/cgroup.procs && exec ${process.execPath} ${join(here, 'netns-client.mjs')} '${JSON.stringify(plan)}'`;
    return JSON.parse(execFileSync('nsenter', [`--net=/var/run/netns/${netns}`, 'sh', '-c', script], { encoding: 'utf8' }));
  };
  const cookieOf = (netns: string) => BigInt(execFileSync('nsenter', [`--net=/var/run/netns/${netns}`, 'python3', '-c', COOKIE_PY], { encoding: 'utf8' }).trim());
  return {
    ns,
    cgroupDir,
    pinDir,
    sh,
    servers: (cfg) =>
      new Promise((resolve, reject) => {
        const c = spawn('nsenter', [...enter, process.execPath, join(here, 'netns-server.mjs'), JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
        children.push(c);
        c.stdout!.on('data', (d) => String(d).includes('ready') && resolve(c));
        c.on('exit', (code) => reject(new Error(`servers exited with ${code}`)));
      }),
    client: (plan) => clientIn(ns, plan),
    netnsCookie: () => cookieOf(ns),
    peer: () => {
      const k = peers.length + 1;
      const name = `${ns}-p${k}`;
      execFileSync('ip', ['netns', 'add', name]);
      peers.push(name);
      const psh = (cmd: string, args: string[]) => execFileSync('nsenter', [`--net=/var/run/netns/${name}`, cmd, ...args], { encoding: 'utf8' });
      // Created from inside the world, its other end moved straight into the peer: nothing touches the host namespace.
      sh('ip', ['link', 'add', `vw${k}`, 'type', 'veth', 'peer', 'name', `vp${k}`, 'netns', name]);
      sh('ip', ['addr', 'add', `10.250.${k}.1/24`, 'dev', `vw${k}`]);
      // nodad: usable at once, not after duplicate address detection's second or two.
      sh('ip', ['addr', 'add', `fd00:250:${k}::1/64`, 'dev', `vw${k}`, 'nodad']);
      sh('ip', ['link', 'set', `vw${k}`, 'up']);
      psh('ip', ['link', 'set', 'lo', 'up']);
      psh('ip', ['addr', 'add', `10.250.${k}.2/24`, 'dev', `vp${k}`]);
      psh('ip', ['addr', 'add', `fd00:250:${k}::2/64`, 'dev', `vp${k}`, 'nodad']);
      psh('ip', ['link', 'set', `vp${k}`, 'up']);
      psh('ip', ['route', 'add', 'default', 'via', `10.250.${k}.1`]);
      psh('ip', ['-6', 'route', 'add', 'default', 'via', `fd00:250:${k}::1`]);
      return { ns: name, ip4: `10.250.${k}.2`, ip6: `fd00:250:${k}::2`, client: (plan) => clientIn(name, plan), netnsCookie: () => cookieOf(name) };
    },
  };
}
