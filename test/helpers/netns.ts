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

const CGROUP2 = process.env.SLUICE_CGROUP2 ?? '/sys/fs/cgroup/unified';
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
}

export async function netnsWorld(t: Teardown, addresses: string[]): Promise<NetnsWorld> {
  if (process.getuid?.() !== 0) throw new Error('datapath tests need root');
  if (!readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === CGROUP2 && l.split(' ')[2] === 'cgroup2'))
    throw new Error(`no cgroup v2 mount at ${CGROUP2} (set SLUICE_CGROUP2)`);
  const id = `${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
  const ns = `sluice-t-${id}`;
  const cgroupDir = join(CGROUP2, `sluice-test-${id}`);
  const bpffs = mkdtempSync(join(tmpdir(), 'sluice-bpffs-'));
  const pinDir = join(bpffs, 'sluice');
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    rmSync(pinDir, { recursive: true, force: true });
    try {
      execFileSync('umount', [bpffs]);
    } catch {
      /* not mounted */
    }
    rmSync(bpffs, { recursive: true, force: true });
    if (existsSync(cgroupDir)) rmdirSync(cgroupDir);
    try {
      execFileSync('ip', ['netns', 'delete', ns]);
    } catch {
      /* never created */
    }
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
    client: (plan) => {
      const script = `echo $$ > ${cgroupDir}/cgroup.procs && exec ${process.execPath} ${join(here, 'netns-client.mjs')} '${JSON.stringify(plan)}'`;
      return JSON.parse(sh('sh', ['-c', script]));
    },
  };
}
