import type { ObjectTranslation } from './output.js';

/**
 * Remembers each object's translation with the exact inputs it read. When a
 * source hands back the same object instances (unchanged files, unchanged
 * informer cache entries), the translation is reused instead of redone, so
 * one edit among thousands of objects costs one translation.
 */
export class TranslationMemo {
  private entries = new Map<string, { inputs: readonly unknown[]; unit: ObjectTranslation }>();
  private seen = new Set<string>();

  get(key: string, inputs: readonly unknown[], translate: () => ObjectTranslation): ObjectTranslation {
    this.seen.add(key);
    const hit = this.entries.get(key);
    if (hit && hit.inputs.length === inputs.length && hit.inputs.every((x, i) => x === inputs[i])) return hit.unit;
    const unit = translate();
    this.entries.set(key, { inputs, unit });
    return unit;
  }

  /** Forgets everything, e.g. translations that met a shortage which has since ended. */
  clear(): void {
    this.entries.clear();
  }

  /** Forgets objects not asked for since the last sweep. */
  sweep(): void {
    for (const k of this.entries.keys()) if (!this.seen.has(k)) this.entries.delete(k);
    this.seen = new Set();
  }
}
