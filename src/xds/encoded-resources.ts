// SotW responses of one selection carry the same resources to every stream
// that selects it (1,000 proxies sharing a node id, say): those bytes are
// encoded once and spliced behind each stream's own header fields. Protobuf
// lets a message's fields come in any order, so header ++ resources decodes
// to the full response.
import type { Any } from '../gen/google/protobuf/any.js';
import { DiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery.js';

const RESOURCES = Symbol('encoded resources');

type Tagged = DiscoveryResponse & { [RESOURCES]?: Uint8Array };

/** Encoded resource fields by content key; bounded, since keys of past snapshots are never asked for again. */
export class EncodedResources {
  private readonly byKey = new Map<string, Uint8Array>();

  constructor(private readonly max = 256) {}

  /** `key` must name the content exactly (type, names and content versions in order). */
  get(key: string, resources: () => Any[]): Uint8Array {
    let bytes = this.byKey.get(key);
    if (bytes) {
      // Most recently used last, so the oldest goes first.
      this.byKey.delete(key);
    } else {
      bytes = DiscoveryResponse.encode(DiscoveryResponse.fromPartial({ resources: resources() })).finish();
      if (this.byKey.size >= this.max) this.byKey.delete(this.byKey.keys().next().value!);
    }
    this.byKey.set(key, bytes);
    return bytes;
  }
}

/** A response whose resources are the already encoded `bytes`. */
export function withEncodedResources(head: DiscoveryResponse, bytes: Uint8Array): DiscoveryResponse {
  return Object.assign({ ...head, resources: [] }, { [RESOURCES]: bytes });
}

export function serializeDiscoveryResponse(res: DiscoveryResponse): Buffer {
  const head = DiscoveryResponse.encode(res).finish();
  const bytes = (res as Tagged)[RESOURCES];
  return bytes ? Buffer.concat([head, bytes]) : Buffer.from(head);
}
