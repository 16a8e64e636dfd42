// What the datapath needs mounted on the node: a BPF filesystem to pin into
// and the cgroup v2 hierarchy to attach to. Found, or (bpffs) mounted, at start,
// so the defaults work on a fresh machine and on hybrid cgroup v1/v2 hosts.
import { existsSync, mkdirSync, readFileSync, statfsSync } from 'node:fs';
import { dirname, join, relative, resolve, isAbsolute } from 'node:path';
import { addon } from './bpf.js';

export const BPF_FS_MAGIC = 0xcafe4a11;
export const CGROUP2_SUPER_MAGIC = 0x63677270;
export const DEFAULT_BPF_ROOT = '/sys/fs/bpf';
/** Where cgroup v2 is looked for first: a unified host, then a hybrid one. */
const CGROUP2_PLACES = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'];

/**
 * The filesystem type of `path`, or of its nearest existing ancestor when it
 * is yet to be created: what the kernel says, so that a tmpfs mounted inside a
 * bpffs mount, or a mount point whose name /proc/mounts escapes, is judged right.
 */
export function fsType(path: string): number {
  let p = resolve(path);
  while (!existsSync(p) && p !== dirname(p)) p = dirname(p);
  return statfsSync(p).type;
}

export function isInside(path: string, dir: string): boolean {
  const r = relative(resolve(dir), resolve(path));
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/** The mount points of cgroup v2 hierarchies in /proc/self/mountinfo text. */
export function cgroup2Mounts(mountinfo: string): string[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    // Optional fields before the " - " separator vary in number; the filesystem type follows it.
    const sep = f.indexOf('-', 6);
    if (sep > 0 && f[sep + 1] === 'cgroup2') out.push(unescape(f[4]));
  }
  return out;
}

/**
 * The cgroup v2 directory to attach to. A requested directory on cgroup v2 is
 * used as it is; one that holds a hybrid host's v2 mount at unified/ (the
 * host's /sys/fs/cgroup, mounted into a pod) means that mount. With none
 * requested: /sys/fs/cgroup, then /sys/fs/cgroup/unified, then any v2 mount.
 * What cannot be resolved is returned as given, for preflight to name.
 */
export function resolveCgroup2(requested: string | undefined, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string {
  const mounts = cgroup2Mounts(mountinfo);
  if (requested !== undefined) {
    if (!existsSync(requested) || fsType(requested) === CGROUP2_SUPER_MAGIC) return requested;
    const unified = join(resolve(requested), 'unified');
    return mounts.includes(unified) ? unified : requested;
  }
  const found = CGROUP2_PLACES.find((p) => mounts.includes(p)) ?? mounts[0];
  if (!found) throw new Error('no cgroup v2 hierarchy is mounted; mount one: mount -t cgroup2 none /sys/fs/cgroup/unified, or give --cgroup-dir');
  return found;
}

/**
 * Mounts a BPF filesystem at `root` unless one is there already, as the node's
 * /sys/fs/bpf may not be on a fresh machine. Returns whether it mounted.
 */
export function ensureBpffs(root: string): boolean {
  if (existsSync(root) && fsType(root) === BPF_FS_MAGIC) return false;
  try {
    mkdirSync(root, { recursive: true });
    addon().mountBpffs(root);
  } catch (e) {
    throw new Error(`${root} is not a bpffs mount and mounting one failed (${(e as Error).message}); mount one first: mount -t bpf bpf ${root}`);
  }
  return true;
}
