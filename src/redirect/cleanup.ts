// Uninstall: takes every program the agent attached off its hook and removes
// every pin (links, maps) under the pin directory, then the directory. Safe
// to repeat; a second run finds nothing.
import { existsSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { addon } from './bpf.js';
import { BPF_FS_MAGIC, fsType } from './host.js';

export interface RemovedPins {
  /** Pinned links that were detached from their hooks, by path. */
  detached: string[];
  /** Every pin removed (links and maps), by path. */
  unpinned: string[];
  /** Whether the pin directory existed (and is now gone). */
  removedDir: boolean;
}

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

export function removePins(pinDir: string): RemovedPins {
  if (!existsSync(pinDir)) return { detached: [], unpinned: [], removedDir: false };
  // Refuse to delete a directory that is not on bpffs: a mistyped --bpf-dir must not empty a real one.
  if (fsType(pinDir) !== BPF_FS_MAGIC) throw new Error(`${pinDir} is not on a bpffs mount; it holds no pins, and nothing was removed`);
  const { files, dirs } = walk(pinDir);
  const bpf = addon();
  // Links first: detaching takes the programs off their hooks even while something still holds a link open.
  const detached = files.filter((f) => bpf.linkDetach(f));
  for (const f of files) rmSync(f);
  for (const d of [...dirs, pinDir]) rmdirSync(d);
  return { detached, unpinned: files, removedDir: true };
}
