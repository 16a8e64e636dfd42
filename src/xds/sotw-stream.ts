import type { DiscoveryRequest, DiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery.js';
import { AdsStream, CONTROL_PLANE_ID, newTypeState, type RequestKind, type Send, type TypeState } from './ads-stream.js';
import { isFullStateType, type XdsTypeUrl } from './resource-types.js';
import type { Snapshot, XdsResource } from './snapshot.js';

interface SotwState extends TypeState {
  wildcard: boolean;
  names: Set<string>;
  sentKey: string | undefined;
  sent: ReadonlyMap<string, XdsResource>;
}

type Selection = ReadonlyMap<string, XdsResource>;

function keyOf(resources: Selection): string {
  let key = '';
  for (const r of resources.values()) key += `${r.name}\u0000${r.version}\u0001`;
  return key;
}

/** State-of-the-world ADS: every response for a type carries all the client should have of it. */
export class SotwStream extends AdsStream<DiscoveryRequest, DiscoveryResponse, SotwState> {
  protected newState(): SotwState {
    return { ...newTypeState(), wildcard: false, names: new Set(), sentKey: undefined, sent: new Map() };
  }

  protected describe(req: DiscoveryRequest): object {
    return { version: req.versionInfo, names: req.resourceNames, error: req.errorDetail?.message };
  }

  protected subscribe(req: DiscoveryRequest, st: SotwState, _fresh: boolean, kind: RequestKind): void {
    // An answer to a superseded response says nothing about what the client wants now.
    if (kind === 'stale') return;
    // A client asking afresh gets an answer even if nothing changed since the last one.
    if (kind === 'request') st.sentKey = undefined;
    const names = req.resourceNames;
    st.wildcard = isFullStateType(req.typeUrl) && (names.length === 0 || names.includes('*'));
    st.names = new Set(names.filter((n) => n !== '*'));
  }

  private select(snapshot: Snapshot, typeUrl: XdsTypeUrl, st: SotwState): Selection {
    const all = snapshot.get(typeUrl);
    if (st.wildcard) return all;
    const out = new Map<string, XdsResource>();
    for (const n of st.names) {
      const r = all.get(n);
      if (r) out.set(n, r);
    }
    return out;
  }

  protected upserts(typeUrl: XdsTypeUrl, st: SotwState, snapshot: Snapshot): Send | undefined {
    const desired = this.select(snapshot, typeUrl, st);
    if (keyOf(desired) === st.sentKey) return undefined;
    // A full-state response omitting a resource removes it, so while types that
    // reference it may not have moved off it yet, the old ones stay alongside the new.
    if (!isFullStateType(typeUrl) || [...st.sent.keys()].every((n) => desired.has(n))) return (v) => this.sendSotw(typeUrl, st, desired, v);
    const union = new Map(st.sent);
    for (const [n, r] of desired) union.set(n, r);
    if (keyOf(union) === st.sentKey) return undefined;
    return (v) => this.sendSotw(typeUrl, st, union, v);
  }

  protected removals(typeUrl: XdsTypeUrl, st: SotwState, snapshot: Snapshot): Send | undefined {
    if (!isFullStateType(typeUrl)) return undefined;
    const desired = this.select(snapshot, typeUrl, st);
    if (keyOf(desired) === st.sentKey) return undefined;
    return (v) => this.sendSotw(typeUrl, st, desired, v);
  }

  private sendSotw(typeUrl: XdsTypeUrl, st: SotwState, resources: Selection, version: number): void {
    st.sentKey = keyOf(resources);
    st.sent = resources;
    const names = [...resources.keys()];
    this.send(st, version, names, (nonce) => ({
      versionInfo: String(version),
      resources: [...resources.values()].map((r) => r.any),
      canary: false,
      typeUrl,
      nonce,
      controlPlane: { identifier: CONTROL_PLANE_ID },
    }));
    this.log.debug({ node: this.nodeId, type: typeUrl, version, count: names.length, nonce: st.nonce }, 'sent');
  }
}
