import { createHash } from 'node:crypto';
import type { Any } from '../proto/any.js';
import { unpackAny } from '../proto/any.js';
import { isServedType, resourceNameOf, SERVED_TYPES, type XdsTypeUrl } from './resource-types.js';

export interface XdsResource {
  readonly typeUrl: XdsTypeUrl;
  readonly name: string;
  readonly any: Any;
  /** Content hash: equal bytes, equal version, so unchanged resources are never resent. */
  readonly version: string;
}

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

export function contentVersion(any: Any): string {
  return createHash('sha256').update(any.value).digest('base64url').slice(0, 16);
}

// Translations are memoized per object, so the same Any objects come back on
// every publish; decoding and hashing them once is enough.
const described = new WeakMap<Any, XdsResource>();

export function toXdsResource(any: Any): XdsResource {
  const known = described.get(any);
  if (known) return known;
  const r = describeResource(any);
  described.set(any, r);
  return r;
}

function describeResource(any: Any): XdsResource {
  if (!isServedType(any.typeUrl)) throw new SnapshotError(`type ${any.typeUrl} is not served over xDS`);
  const { message } = unpackAny<{ name?: string; clusterName?: string }>(any);
  const name = resourceNameOf(any.typeUrl, message);
  if (!name) throw new SnapshotError(`a ${any.typeUrl} without a name`);
  return { typeUrl: any.typeUrl, name, any, version: contentVersion(any) };
}
