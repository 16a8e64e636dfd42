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
 * write-rename-chmod sequence or a `cp -r` costs one reload, not dozens. It gets
 * the absolute paths that changed, or undefined when the watcher could not say
 * (an event without a name): then the reader must look at everything.
 *
 * Each directory is watched on its own: Node 20's recursive mode on Linux follows
 * files by inode and goes deaf to a file that has been replaced by a rename.
 */
export function watchDir(dir: string, onChange: (changed: ReadonlySet<string> | undefined) => void, settleMs = 10): () => void {
  let timer: NodeJS.Timeout | undefined;
  let changed: Set<string> | undefined = new Set();
  const watchers = new Map<string, FSWatcher>();
  const rescan = () => {
    const live = new Set(subdirs(dir));
    for (const [d, w] of watchers) if (!live.has(d)) (w.close(), watchers.delete(d));
    for (const d of live) {
      if (watchers.has(d)) continue;
      try {
        const w = watch(d, (_event, name) => fire(d, name));
        // An error says events may be lost: only a full rescan is safe then.
        w.on('error', () => fire(d, null));
        watchers.set(d, w);
      } catch {
        /* removed between listing and watching */
      }
    }
  };
  const fire = (d: string, name: string | Buffer | null) => {
    if (name === null || typeof name !== 'string') changed = undefined;
    else changed?.add(join(d, name));
    clearTimeout(timer);
    timer = setTimeout(() => {
      const batch = changed;
      changed = new Set();
      rescan();
      onChange(batch);
    }, settleMs);
  };
  rescan();
  return () => {
    clearTimeout(timer);
    for (const w of watchers.values()) w.close();
    watchers.clear();
  };
}
