// A persistent map: each version is immutable, and a version that changes a
// few keys of a large map shares the rest with its parent instead of copying
// it. A version is a shared base plus a small overlay of its own changes; the
// overlay is folded into a new base once it grows past about the square root
// of the base, so an update costs O(sqrt n) amortized and a lookup two Map
// reads, while iteration stays as cheap as a Map's.

const GONE = Symbol('gone');
type Slot<V> = V | typeof GONE;

export class PMap<K, V> implements ReadonlyMap<K, V> {
  private constructor(
    private readonly base: ReadonlyMap<K, V>,
    private readonly overlay: ReadonlyMap<K, Slot<V>>,
    readonly size: number,
  ) {}

  static empty<K, V>(): PMap<K, V> {
    return new PMap(new Map(), new Map(), 0);
  }

  /** Takes ownership of `m`: the caller must not change it afterwards. */
  static adopt<K, V>(m: Map<K, V>): PMap<K, V> {
    return new PMap(m, new Map(), m.size);
  }

  get(key: K): V | undefined {
    const o = this.overlay.get(key);
    if (o !== undefined) return o === GONE ? undefined : o;
    return this.base.get(key);
  }

  has(key: K): boolean {
    const o = this.overlay.get(key);
    if (o !== undefined) return o !== GONE;
    return this.base.has(key);
  }

  /** A new version with `changes` applied (undefined removes); this one is untouched. Returns this when nothing changed. */
  with(changes: Iterable<readonly [K, V | undefined]>): PMap<K, V> {
    let overlay: Map<K, Slot<V>> | undefined;
    let size = this.size;
    for (const [k, v] of changes) {
      const o = (overlay ?? this.overlay).get(k);
      const current = o !== undefined ? (o === GONE ? undefined : o) : this.base.get(k);
      if (current === v) continue;
      overlay ??= new Map(this.overlay);
      const inBase = this.base.has(k);
      if (v === undefined) {
        if (inBase) overlay.set(k, GONE);
        else overlay.delete(k);
        size--;
      } else {
        // Back to what the base holds: the overlay need not remember it.
        if (inBase && this.base.get(k) === v) overlay.delete(k);
        else overlay.set(k, v);
        if (current === undefined) size++;
      }
    }
    if (!overlay) return this;
    if (overlay.size * overlay.size > 16 * Math.max(64, this.base.size)) {
      const flat = new Map(this.base);
      for (const [k, v] of overlay) v === GONE ? flat.delete(k) : flat.set(k, v);
      return new PMap(flat, new Map(), flat.size);
    }
    return new PMap(this.base, overlay, size);
  }

  set(key: K, value: V): PMap<K, V> {
    return this.with([[key, value]]);
  }

  delete(key: K): PMap<K, V> {
    return this.with([[key, undefined]]);
  }

  *entries(): IterableIterator<[K, V]> {
    for (const [k, v] of this.base) if (!this.overlay.has(k)) yield [k, v];
    for (const [k, v] of this.overlay) if (v !== GONE) yield [k, v];
  }

  *keys(): IterableIterator<K> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  forEach(f: (value: V, key: K, map: ReadonlyMap<K, V>) => void): void {
    for (const [k, v] of this.entries()) f(v, k, this);
  }
}
