import type { DiscoveryRequest, DiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery.js';
import { AdsStream, CONTROL_PLANE_ID, newTypeState, type RequestKind, type Send, type TypeState } from './ads-stream.js';
import { isFullStateType, type XdsTypeUrl } from '../resources/types.js';
import type { Snapshot } from './snapshot.js';
import type { XdsResource } from '../resources/resource.js';
import { EncodedResources, withEncodedResources } from './encoded-resources.js';

/** Shared by every stream: the key names the content, so any stream may reuse another's bytes. */
const encoded = new EncodedResources();

interface SotwState extends TypeState {
  wildcard: boolean;
  names: Set<string>;
  sentKey: string | undefined;
  sent: ReadonlyMap<string, XdsResource>;
  /** What the subscription selects from `of`, kept until either changes: a bare ACK reuses it. */
  selected: { of: Snapshot; resources: Selection; key: string } | undefined;
}

type Selection = ReadonlyMap<string, XdsResource>;

function sameNames(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const n of a) if (!b.has(n)) return false;
  return true;
}

function keyOf(resources: Selection): string {
  let key = '';
  for (const r of resources.values()) key += `${r.name}\u0000${r.version}\u0001`;
  return key;
}

/** State-of-the-world ADS: every response for a type carries all the client should have of it. */
export class SotwStream extends AdsStream<DiscoveryRequest, DiscoveryResponse, SotwState> {
  protected newState(): SotwState {
    return { ...newTypeState(), wildcard: false, names: new Set(), sentKey: undefined, sent: new Map(), selected: undefined };
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
    const wildcard = isFullStateType(req.typeUrl) && (names.length === 0 || names.includes('*'));
    const wanted = new Set(names.filter((n) => n !== '*'));
    if (wildcard !== st.wildcard || !sameNames(wanted, st.names)) st.selected = undefined;
    st.wildcard = wildcard;
    st.names = wanted;
  }

  private select(snapshot: Snapshot, typeUrl: XdsTypeUrl, st: SotwState): { resources: Selection; key: string } {
    if (st.selected?.of === snapshot) return st.selected;
    const all = snapshot.get(typeUrl);
    let resources: Selection = all;
    if (!st.wildcard) {
      const out = new Map<string, XdsResource>();
      for (const n of st.names) {
        const r = all.get(n);
        if (r) out.set(n, r);
      }
      resources = out;
    }
    st.selected = { of: snapshot, resources, key: keyOf(resources) };
    return st.selected;
  }

  protected upserts(typeUrl: XdsTypeUrl, st: SotwState, snapshot: Snapshot): Send | undefined {
    const { resources: desired, key } = this.select(snapshot, typeUrl, st);
    if (key === st.sentKey) return undefined;
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
    const { resources: desired, key } = this.select(snapshot, typeUrl, st);
    if (key === st.sentKey) return undefined;
    return (v) => this.sendSotw(typeUrl, st, desired, v);
  }

  private sendSotw(typeUrl: XdsTypeUrl, st: SotwState, resources: Selection, version: number): void {
    const key = st.selected?.resources === resources ? st.selected.key : keyOf(resources);
    st.sentKey = key;
    st.sent = resources;
    const names = [...resources.keys()];
    const bytes = encoded.get(`${typeUrl}\u0002${key}`, () => [...resources.values()].map((r) => r.any));
    this.send(st, version, names, (nonce) =>
      withEncodedResources({ versionInfo: String(version), resources: [], canary: false, typeUrl, nonce, controlPlane: { identifier: CONTROL_PLANE_ID } }, bytes),
    );
    this.log.debug({ node: this.nodeId, type: typeUrl, version, count: names.length, nonce: st.nonce }, 'sent');
  }
}
