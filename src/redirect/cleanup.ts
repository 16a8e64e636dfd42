// Uninstall: takes every program the agent attached off its hook and removes
// every pin (links, maps) under the pin directory, then the directory: the
// socket LB's and, in its policy/ folder, the policy TC programs'. Safe to
// repeat; a second run finds nothing.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { addon } from './bpf.js';
import { BPF_FS_MAGIC, fsType } from './host.js';
import { policyPinDir } from './policy-object.js';
import { removeTproxyRoute, type IpRunner } from './tproxy-route.js';

export interface RemovedPins {
  /** Pinned links that were detached from their hooks, by path. */
  detached: string[];
  /** Every pin removed (links and maps), by path. */
  unpinned: string[];
  /** Whether the pin directory existed (and is now gone). */
  removedDir: boolean;
  /** Whether the policy datapath was there, and with it the route that steers redirected flows (now removed). */
  removedPolicyRoute: boolean;
}

const runIp: IpRunner = (args) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function walk(dir: string): { files: string[]; dirs: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      const sub = walk(p);
      files.push(...sub.files);
      dirs.push(...sub.dirs, p);
    } else files.push(p);
  }
  return { files, dirs };
}

export function removePins(pinDir: string, ip: IpRunner = runIp): RemovedPins {
  if (!existsSync(pinDir)) return { detached: [], unpinned: [], removedDir: false, removedPolicyRoute: false };
  // Refuse to delete a directory that is not on bpffs: a mistyped --bpf-dir must not empty a real one.
  if (fsType(pinDir) !== BPF_FS_MAGIC) throw new Error(`${pinDir} is not on a bpffs mount; it holds no pins, and nothing was removed`);
  const { files, dirs } = walk(pinDir);
  const bpf = addon();
  // Links first: detaching takes the programs off their hooks even while something still holds a link open.
  const detached = files.filter((f) => bpf.linkDetach(f));
  for (const f of files) rmSync(f);
  for (const d of [...dirs, pinDir]) rmdirSync(d);
  // Only an agent that enforced policy here added the route; a node without it is left as it is.
  const removedPolicyRoute = dirs.includes(policyPinDir(pinDir));
  if (removedPolicyRoute) removeTproxyRoute(ip);
  return { detached, unpinned: files, removedDir: true, removedPolicyRoute };
}
