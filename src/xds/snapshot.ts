import type { Any } from '../proto/any.js';
import { SERVED_TYPES, type XdsTypeUrl } from '../resources/types.js';
import { toXdsResource, type XdsResource } from '../resources/resource.js';

export class SnapshotError extends Error {}

/** An immutable set of resources for one node, indexed by type then name. */
export class Snapshot {
  private constructor(private readonly byType: ReadonlyMap<XdsTypeUrl, ReadonlyMap<string, XdsResource>>) {}

  static empty(): Snapshot {
    return new Snapshot(new Map());
  }

  static fromResources(resources: Iterable<XdsResource>): Snapshot {
    const byType = new Map<XdsTypeUrl, Map<string, XdsResource>>();
    for (const r of resources) {
      let m = byType.get(r.typeUrl);
      if (!m) byType.set(r.typeUrl, (m = new Map()));
      if (m.has(r.name)) throw new SnapshotError(`duplicate ${r.typeUrl} named "${r.name}"`);
      m.set(r.name, r);
    }
    return new Snapshot(byType);
  }

  /** A snapshot of per-type maps the caller will not change: unchanged types can be shared between versions. */
  static fromTypes(byType: ReadonlyMap<XdsTypeUrl, ReadonlyMap<string, XdsResource>>): Snapshot {
    return new Snapshot(byType);
  }

  static fromAnys(anys: Iterable<Any>): Snapshot {
    return Snapshot.fromResources([...anys].map(toXdsResource));
  }

  get(typeUrl: string): ReadonlyMap<string, XdsResource> {
    return this.byType.get(typeUrl as XdsTypeUrl) ?? EMPTY;
  }

  *all(): Iterable<XdsResource> {
    for (const t of SERVED_TYPES) yield* this.get(t).values();
  }

  get size(): number {
    let n = 0;
    for (const m of this.byType.values()) n += m.size;
    return n;
  }
}

const EMPTY: ReadonlyMap<string, XdsResource> = new Map();
