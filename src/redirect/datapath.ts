// Loads bpf/sock_lb.o, attaches its programs to a cgroup through pinned links,
// and adopts what a previous agent left pinned instead of attaching twice.
import { closeSync, existsSync, mkdirSync, openSync, readSync, readdirSync, rmSync, statfsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addon, BpfMap } from './bpf.js';
import { config, SIZES } from './maps.js';
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

const BPF_FS_MAGIC = 0xcafe4a11;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/**
 * The filesystem type of `path`, or of its nearest existing ancestor when it
 * is yet to be created: what the kernel says, so that a tmpfs mounted inside a
 * bpffs mount, or a mount point whose name /proc/mounts escapes, is judged right.
 */
function fsType(path: string): number {
  let p = resolve(path);
  while (!existsSync(p) && p !== dirname(p)) p = dirname(p);
  return statfsSync(p).type;
}

function isElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    closeSync(fd);
  }
}

/** Clear start-up errors for what the datapath needs from the machine, before anything is created. */
export function preflight(opts: SockLbOptions): void {
  const object = opts.objectPath ?? SOCK_LB_OBJECT;
  if (fsType(opts.pinDir) !== BPF_FS_MAGIC) throw new Error(`${opts.pinDir} is not on a bpffs mount; mount one first: mount -t bpf bpf /sys/fs/bpf`);
  if (fsType(opts.cgroupDir) !== CGROUP2_SUPER_MAGIC)
    throw new Error(`${opts.cgroupDir} is not in a cgroup v2 hierarchy; mount one: mount -t cgroup2 none /sys/fs/cgroup/unified`);
  const cgroup = statSync(opts.cgroupDir, { throwIfNoEntry: false });
  if (!cgroup) throw new Error(`${opts.cgroupDir} does not exist; create the cgroup first: mkdir ${opts.cgroupDir}`);
  if (!cgroup.isDirectory()) throw new Error(`${opts.cgroupDir} is not a cgroup directory`);
  const file = statSync(object, { throwIfNoEntry: false });
  if (!file) throw new Error(`${object} is missing; run scripts/setup.sh`);
  if (!file.isFile() || !isElf(object)) throw new Error(`${object} is not a BPF object (not an ELF file); run scripts/setup.sh to rebuild it`);
}

export class SockLb {
  private constructor(
    private readonly handle: number,
    readonly maps: SockLbMaps & Record<keyof SockLbMaps, BpfMap>,
    private readonly configMap: BpfMap,
    /** Programs whose pinned link was already there and now runs this object's program. */
    readonly adopted: string[],
  ) {}

  static open(opts: SockLbOptions): SockLb {
    preflight(opts);
    const links = join(opts.pinDir, 'links');
    mkdirSync(links, { recursive: true });
    const bpf = addon();
    const object = opts.objectPath ?? SOCK_LB_OBJECT;
    let handle: number;
    try {
      handle = bpf.openObject(object, opts.pinDir);
    } catch (e) {
      throw new Error(`loading the BPF object ${object} failed: ${(e as Error).message}`);
    }
    try {
      const adopted = SOCK_LB_PROGRAMS.filter((p) => bpf.attachCgroup(handle, p, opts.cgroupDir, join(links, p)));
      const map = (name: string, k: number, v: number) => new BpfMap(name, bpf.mapFd(handle, name), k, v);
      const maps = {
        services: map('sluice_services', SIZES.svcKey, SIZES.svcVal),
        backends: map('sluice_backends', SIZES.backendId, SIZES.backend),
        maglev: map('sluice_maglev', SIZES.maglevKey, SIZES.maglevVal),
        affinity: map('sluice_affinity', SIZES.affinityKey, SIZES.affinityVal),
      };
      return new SockLb(handle, maps, map('sluice_config', 4, SIZES.config), adopted);
    } catch (e) {
      bpf.closeObject(handle);
      throw e;
    }
  }

  /** Where L7-redirected connections go: Envoy's listeners on these node addresses. */
  setProxyAddresses(v4: string, v6: string): void {
    this.configMap.update(Buffer.alloc(4), config(v4, v6));
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
