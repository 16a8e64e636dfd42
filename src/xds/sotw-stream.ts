import type { DiscoveryRequest, DiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery.js';
import { AdsStream, CONTROL_PLANE_ID, newTypeState, type RequestKind, type TypeState } from './ads-stream.js';
import { APPLY_ORDER, isFullStateType, REMOVE_ORDER, type XdsTypeUrl } from './resource-types.js';
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

  protected reconcile({ version, snapshot }: { version: number; snapshot: Snapshot }): void {
    const finals = new Map<XdsTypeUrl, Selection>();
    // Upserts first, in dependency order. For full-state types a removal has to
    // wait until the types that reference the resource have moved off it, so
    // phase one keeps the old resources alongside the new ones.
    for (const typeUrl of APPLY_ORDER) {
      const st = this.types.get(typeUrl);
      if (!st) continue;
      const desired = this.select(snapshot, typeUrl, st);
      if (keyOf(desired) === st.sentKey) continue;
      const removes = isFullStateType(typeUrl) && [...st.sent.keys()].some((n) => !desired.has(n));
      if (!removes) {
        this.sendSotw(typeUrl, st, desired, version);
        continue;
      }
      finals.set(typeUrl, desired);
      const union = new Map(st.sent);
      for (const [n, r] of desired) union.set(n, r);
      if (keyOf(union) !== st.sentKey) this.sendSotw(typeUrl, st, union, version);
    }
    for (const typeUrl of REMOVE_ORDER) {
      const desired = finals.get(typeUrl);
      if (desired) this.sendSotw(typeUrl, this.types.get(typeUrl)!, desired, version);
    }
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
