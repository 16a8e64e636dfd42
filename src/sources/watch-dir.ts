import { readdirSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';

function subdirs(dir: string): string[] {
  const out = [dir];
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory() && !e.name.startsWith('.')) out.push(...subdirs(join(dir, e.name)));
  } catch {
    /* vanished meanwhile */
  }
  return out;
}

/**
 * Calls `onChange` once a burst of changes below `dir` has settled, so an editor's
 * write-rename-chmod sequence or a `cp -r` costs one reload, not dozens.
 *
 * Each directory is watched on its own: Node 20's recursive mode on Linux follows
 * files by inode and goes deaf to a file that has been replaced by a rename.
 */
export function watchDir(dir: string, onChange: () => void, settleMs = 50): () => void {
  let timer: NodeJS.Timeout | undefined;
  const watchers = new Map<string, FSWatcher>();
  const rescan = () => {
    const live = new Set(subdirs(dir));
    for (const [d, w] of watchers) if (!live.has(d)) (w.close(), watchers.delete(d));
    for (const d of live) {
      if (watchers.has(d)) continue;
      try {
        watchers.set(d, watch(d, fire));
      } catch {
        /* removed between listing and watching */
      }
    }
  };
  const fire = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      rescan();
      onChange();
    }, settleMs);
  };
  rescan();
  return () => {
    clearTimeout(timer);
    for (const w of watchers.values()) w.close();
    watchers.clear();
  };
}
