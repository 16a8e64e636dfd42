// Host sockets that listeners bind. Envoy refuses a listener whose address
// another listener holds, so two objects asking for one socket are settled
// here, in assembly order, rather than by a NACK that blames whichever came last.
import { unpackAny } from '../proto/any.js';
import { TypeUrl } from '../resources/types.js';
import type { XdsResource } from '../resources/resource.js';

interface SocketAddress {
  protocol?: number;
  address?: string;
  portValue?: number;
}
interface ListenerMessage {
  address?: { socketAddress?: SocketAddress };
  additionalAddresses?: { address?: { socketAddress?: SocketAddress } }[];
}

const wildcard = (a: string) => a === '' || a === '0.0.0.0' || a === '::';

function sockets(r: XdsResource): SocketAddress[] {
  const m = unpackAny<ListenerMessage>(r.any).message;
  return [m.address?.socketAddress, ...(m.additionalAddresses ?? []).map((a) => a.address?.socketAddress)].filter((s): s is SocketAddress => !!s?.portValue);
}

/** The keys under which a listener's sockets can clash with another's (protocol and port). */
export function socketKeys(r: XdsResource): string[] {
  return r.typeUrl === TypeUrl.Listener ? sockets(r).map((s) => `${s.protocol ?? 0}/${s.portValue}`) : [];
}

export class ListenerBindings {
  private readonly byPort = new Map<string, { address: string; owner: string }[]>();

  /**
   * Records the sockets of a listener for `owner`; if one is already held by
   * another listener, records nothing and says who holds it and where.
   */
  claim(r: XdsResource, owner: string): string | undefined {
    if (r.typeUrl !== TypeUrl.Listener) return undefined;
    const held = sockets(r);
    for (const s of held) {
      const holder = this.byPort.get(`${s.protocol ?? 0}/${s.portValue}`)?.find((h) => h.address === s.address || wildcard(h.address) || wildcard(s.address ?? ''));
      if (holder) return `${holder.owner} already listens on ${holder.address || '*'}:${s.portValue}`;
    }
    for (const s of held) {
      const key = `${s.protocol ?? 0}/${s.portValue}`;
      this.byPort.set(key, [...(this.byPort.get(key) ?? []), { address: s.address ?? '', owner }]);
    }
    return undefined;
  }
}
