// Loads bpf/sock_lb.o, attaches its programs to a cgroup through pinned links,
// and adopts what a previous agent left pinned instead of attaching twice.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addon, BpfMap } from './bpf.js';
import { SIZES } from './maps.js';
import type { SockLbMaps } from './apply.js';

export const SOCK_LB_OBJECT = fileURLToPath(new URL('../../build/bpf/sock_lb.o', import.meta.url));
export const SOCK_LB_PROGRAMS = [
  'sluice_connect4',
  'sluice_connect6',
  'sluice_sendmsg4',
  'sluice_sendmsg6',
  'sluice_recvmsg4',
  'sluice_recvmsg6',
  'sluice_getpeername4',
  'sluice_getpeername6',
] as const;

export interface SockLbOptions {
  /** A directory on a bpffs mount, e.g. /sys/fs/bpf/sluice. */
  pinDir: string;
  /** The cgroup v2 directory whose processes get service load balancing. */
  cgroupDir: string;
  objectPath?: string;
}

function mountsOfType(type: string): string[] {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[2] === type)
    .map((f) => f[1]);
}

const under = (path: string, mounts: string[]) => mounts.some((m) => resolve(path) === m || resolve(path).startsWith(`${m}/`));

/** Clear start-up errors for what the datapath needs from the machine. */
export function preflight(opts: SockLbOptions): void {
  if (!under(opts.pinDir, mountsOfType('bpf')))
    throw new Error(`${opts.pinDir} is not on a bpffs mount; mount one first: mount -t bpf bpf /sys/fs/bpf`);
  if (!under(opts.cgroupDir, mountsOfType('cgroup2')))
    throw new Error(`${opts.cgroupDir} is not in a cgroup v2 hierarchy; mount one: mount -t cgroup2 none /sys/fs/cgroup/unified`);
  if (!existsSync(opts.objectPath ?? SOCK_LB_OBJECT)) throw new Error(`${opts.objectPath ?? SOCK_LB_OBJECT} is missing; run scripts/setup.sh`);
}

export class SockLb {
  private constructor(
    private readonly handle: number,
    readonly maps: SockLbMaps,
    /** Programs whose pinned link was already there and now runs this object's program. */
    readonly adopted: string[],
  ) {}

  static open(opts: SockLbOptions): SockLb {
    preflight(opts);
    const links = join(opts.pinDir, 'links');
    mkdirSync(links, { recursive: true });
    const bpf = addon();
    const handle = bpf.openObject(opts.objectPath ?? SOCK_LB_OBJECT, opts.pinDir);
    try {
      const adopted = SOCK_LB_PROGRAMS.filter((p) => bpf.attachCgroup(handle, p, opts.cgroupDir, join(links, p)));
      const map = (name: string, k: number, v: number) => new BpfMap(name, bpf.mapFd(handle, name), k, v);
      const maps = {
        services: map('sluice_services', SIZES.svcKey, SIZES.svcVal),
        backends: map('sluice_backends', SIZES.backendId, SIZES.backend),
        maglev: map('sluice_maglev', SIZES.maglevKey, SIZES.maglevVal),
      };
      return new SockLb(handle, maps, adopted);
    } catch (e) {
      bpf.closeObject(handle);
      throw e;
    }
  }

  /** Lets go of the object; the pinned links and maps keep the datapath running without us. */
  close(): void {
    addon().closeObject(this.handle);
  }

  /** Detaches everything and removes the pins: uninstall. */
  static remove(pinDir: string): void {
    const links = join(pinDir, 'links');
    if (existsSync(links)) for (const l of readdirSync(links)) rmSync(join(links, l));
    for (const m of existsSync(pinDir) ? readdirSync(pinDir) : []) if (m.startsWith('sluice_')) rmSync(join(pinDir, m));
    rmSync(pinDir, { recursive: true, force: true });
  }
}
