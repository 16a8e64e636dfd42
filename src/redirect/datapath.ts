// Loads bpf/sock_lb.o, attaches its programs to a cgroup through pinned links,
// and adopts what a previous agent left pinned instead of attaching twice. A map
// whose definition changed since (an upgrade) is replaced without a gap: the old
// programs keep serving from the old map until the new one is filled, then every
// link moves to the new program in place and the new map takes over the pin.
import { closeSync, existsSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addon, BpfMap } from './bpf.js';
import { removePins } from './cleanup.js';
import { BPF_FS_MAGIC, CGROUP2_SUPER_MAGIC, ensureBpffs, fsType, isInside, resolveCgroup2 } from './host.js';
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
  /** The cgroup v2 directory whose processes get service load balancing; found in /proc/self/mountinfo when unset. */
  cgroupDir?: string;
  /** A bpffs mount point to create when it is missing, if pinDir is inside it (e.g. /sys/fs/bpf). */
  bpfRoot?: string;
  objectPath?: string;
}

/**
 * The maps userspace fills from desired state (the config map with the proxy
 * addresses among them); the others are caches the programs write.
 */
const DESIRED_MAPS = { services: 'sluice_services', backends: 'sluice_backends', maglev: 'sluice_maglev', config: 'sluice_config' } as const;

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
export function preflight(opts: SockLbOptions & { cgroupDir: string }): void {
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
  /** Programs whose pinned link was already there and now runs this object's program. */
  readonly adopted: string[] = [];
  private switched = false;

  private constructor(
    private readonly handle: number,
    readonly maps: SockLbMaps & Record<keyof SockLbMaps, BpfMap>,
    private readonly configMap: BpfMap,
    readonly pinDir: string,
    readonly cgroupDir: string,
    /** Maps made fresh because the pinned ones no longer fit this object; they take the pins at commit(). */
    readonly replaced: readonly string[],
    /** Of those, the ones whose contents came across from the pinned map. */
    readonly carried: readonly string[],
  ) {}

  static open(opts: SockLbOptions): SockLb {
    const cgroupDir = resolveCgroup2(opts.cgroupDir);
    if (opts.bpfRoot && isInside(opts.pinDir, opts.bpfRoot)) ensureBpffs(opts.bpfRoot);
    preflight({ ...opts, cgroupDir });
    mkdirSync(join(opts.pinDir, 'links'), { recursive: true });
    const bpf = addon();
    const object = opts.objectPath ?? SOCK_LB_OBJECT;
    let handle: number;
    try {
      handle = bpf.openObject(object, opts.pinDir, true);
    } catch (e) {
      throw new Error(`loading the BPF object ${object} failed: ${(e as Error).message}`);
    }
    try {
      const map = (name: string, k: number, v: number) => new BpfMap(name, bpf.mapFd(handle, name), k, v);
      const maps = {
        services: map(DESIRED_MAPS.services, SIZES.svcKey, SIZES.svcVal),
        backends: map(DESIRED_MAPS.backends, SIZES.backendId, SIZES.backend),
        maglev: map(DESIRED_MAPS.maglev, SIZES.maglevKey, SIZES.maglevVal),
        affinity: map('sluice_affinity', SIZES.affinityKey, SIZES.affinityVal),
      };
      const replaced = bpf.replacedMaps(handle);
      const carried = replaced.filter((name) => carry(handle, opts.pinDir, name));
      const lb = new SockLb(handle, maps, map(DESIRED_MAPS.config, 4, SIZES.config), opts.pinDir, cgroupDir, replaced, carried);
      // Until a desired-state map that could not be carried is filled, the old programs keep serving.
      if (!lb.awaitingFill.length) lb.commit();
      return lb;
    } catch (e) {
      bpf.closeObject(handle);
      throw e;
    }
  }

  /** Replaced maps the caller must fill (from desired state) before commit(); the old programs serve until then. */
  get awaitingFill(): string[] {
    const desired: string[] = Object.values(DESIRED_MAPS);
    return this.switched ? [] : this.replaced.filter((m) => desired.includes(m) && !this.carried.includes(m));
  }

  /**
   * Moves every hook onto this object's programs (a pinned link is updated in
   * place, so a hook is never empty) and puts replaced maps in their pins.
   * Idempotent.
   */
  commit(): void {
    if (this.switched) return;
    const bpf = addon();
    // The caches the old programs wrote since open() come across too, just before they stop writing.
    const desired: string[] = Object.values(DESIRED_MAPS);
    for (const name of this.carried) if (!desired.includes(name)) carry(this.handle, this.pinDir, name);
    // Pinned beside the old ones first, so that a failure here leaves the old version whole.
    // (bpffs refuses names with a dot in them.)
    const staged = this.replaced.map((name) => [join(this.pinDir, `${name}_next`), join(this.pinDir, name)]);
    for (const [i, [next]] of staged.entries()) {
      rmSync(next, { force: true });
      bpf.objPin(bpf.mapFd(this.handle, this.replaced[i]), next);
    }
    const links = join(this.pinDir, 'links');
    for (const p of SOCK_LB_PROGRAMS) if (bpf.attachCgroup(this.handle, p, this.cgroupDir, join(links, p))) this.adopted.push(p);
    // Renaming over the old pin swaps the map a reader finds by name in one step; the old map goes with its last user.
    for (const [next, pin] of staged) renameSync(next, pin);
    this.switched = true;
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
    removePins(pinDir);
  }
}

/**
 * Copies the map pinned under `name` into the object's replacement for it when
 * their keys and values are laid out alike (only the size or flags changed).
 * Returns whether it could.
 */
function carry(handle: number, pinDir: string, name: string): boolean {
  const bpf = addon();
  const old = bpf.objGet(join(pinDir, name));
  if (old < 0) return false;
  const fresh = bpf.mapFd(handle, name);
  const to = bpf.mapInfo(fresh);
  try {
    const from = bpf.mapInfo(old);
    if (from.keySize !== to.keySize || from.valueSize !== to.valueSize) return false;
    bpf.mapCopy(old, fresh, to.keySize, to.valueSize);
    return true;
  } catch {
    // More entries than the new map holds: empty it again, so the caller's fill finds room.
    const keys = bpf.mapKeys(fresh, to.keySize);
    for (let o = 0; o < keys.length; o += to.keySize) bpf.mapDelete(fresh, keys.subarray(o, o + to.keySize));
    return false;
  } finally {
    bpf.closeFd(old);
  }
}
