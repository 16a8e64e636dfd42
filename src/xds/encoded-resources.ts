// SotW responses of one selection carry the same resources to every stream
// that selects it (1,000 proxies sharing a node id, say): those bytes are
// encoded once and spliced behind each stream's own header fields. Delta
// responses splice each resource's field, encoded once per resource. Protobuf
// lets a message's fields come in any order, so header ++ resources decodes
// to the full response.
import type { Any } from '../gen/google/protobuf/any.js';
import { DeltaDiscoveryResponse, DiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery.js';

const RESOURCES = Symbol('encoded resources');

/**
 * Encoded resource fields by content key, least recently used first. Bounded in
 * bytes, since keys of past snapshots are never asked for again and a full
 * set of clusters can run to megabytes.
 */
export class EncodedResources {
  private readonly byKey = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private readonly maxBytes = 32 << 20) {}

  /** `key` must name the content exactly (type, names and content versions in order). */
  get(key: string, resources: () => Any[]): Uint8Array {
    const known = this.byKey.get(key);
    if (known) {
      this.byKey.delete(key);
      this.byKey.set(key, known);
      return known;
    }
    const bytes = DiscoveryResponse.encode(DiscoveryResponse.fromPartial({ resources: resources() })).finish();
    if (bytes.length > this.maxBytes) return bytes;
    for (const [k, b] of this.byKey) {
      if (this.bytes + bytes.length <= this.maxBytes) break;
      this.byKey.delete(k);
      this.bytes -= b.length;
    }
    this.byKey.set(key, bytes);
    this.bytes += bytes.length;
    return bytes;
  }
}

/**
 * A response whose resources are the already encoded `bytes` (one run of
 * resources fields, or several spliced in order).
 */
export function withEncodedResources<T extends { resources: unknown[] }>(head: T, bytes: Uint8Array | readonly Uint8Array[]): T {
  return Object.assign({ ...head, resources: [] }, { [RESOURCES]: bytes });
}

function splicing<T>(codec: { encode(message: T): { finish(): Uint8Array } }): (res: T) => Buffer {
  return (res) => {
    const head = codec.encode(res).finish();
    const bytes = (res as { [RESOURCES]?: Uint8Array | readonly Uint8Array[] })[RESOURCES];
    if (!bytes) return Buffer.from(head);
    return Buffer.concat(bytes instanceof Uint8Array ? [head, bytes] : [head, ...bytes]);
  };
}

export const serializeDiscoveryResponse = splicing(DiscoveryResponse);
export const serializeDeltaDiscoveryResponse = splicing(DeltaDiscoveryResponse);
