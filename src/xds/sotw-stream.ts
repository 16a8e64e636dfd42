import type { DiscoveryRequest, DiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery.js';
import { AdsStream, CONTROL_PLANE_ID, newTypeState, type RequestKind, type Send, type TypeState } from './ads-stream.js';
import { isFullStateType, type XdsTypeUrl } from '../resources/types.js';
import type { Snapshot } from './snapshot.js';
import type { XdsResource } from '../resources/resource.js';
import { EncodedResources, withEncodedResources } from './encoded-resources.js';

/** Shared by every stream: the key names the content, so any stream may reuse another's bytes. */
const encoded = new EncodedResources();

type Selection = ReadonlyMap<string, XdsResource>;

/**
 * What one subscription selects from one snapshot's resources of a type, with
 * its content key and, once sent, its encoding. Shared by every stream whose
 * subscription has the same key (a fleet of proxies asks for the same names),
 * so a snapshot costs one selection per distinct subscription, not per stream.
 */
interface Selected {
  readonly resources: Selection;
  readonly key: string;
  bytes?: Uint8Array;
}

/** By a snapshot's map of one type (immutable, so the entries live as long as it does), then subscription key. */
const selections = new WeakMap<Selection, Map<string, Selected>>();

interface SotwState extends TypeState {
  wildcard: boolean;
  names: Set<string>;
  /** Names the subscription: equal keys select equal resources from any snapshot. */
  subscription: string;
  sentKey: string | undefined;
  sent: Selection;
  /** What the subscription selects from `of`, kept until either changes: a bare ACK reuses it. */
  selected: { of: Snapshot; shared: Selected } | undefined;
}

/** The request asks for exactly the subscribed names; no allocation, as every ACK repeats them. */
function sameNames(requested: readonly string[], subscribed: ReadonlySet<string>): boolean {
  let n = 0;
  for (const name of requested) {
    if (name === '*') continue;
    if (!subscribed.has(name)) return false;
    n++;
  }
  return n === subscribed.size;
}

function keyOf(resources: Selection): string {
  let key = '';
  for (const r of resources.values()) key += `${r.name}\u0000${r.version}\u0001`;
  return key;
}

function includesAll(desired: Selection, names: Iterable<string>): boolean {
  for (const n of names) if (!desired.has(n)) return false;
  return true;
}

/** State-of-the-world ADS: every response for a type carries all the client should have of it. */
export class SotwStream extends AdsStream<DiscoveryRequest, DiscoveryResponse, SotwState> {
  protected newState(): SotwState {
    return { ...newTypeState(), wildcard: false, names: new Set(), subscription: '', sentKey: undefined, sent: new Map(), selected: undefined };
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
    if (wildcard === st.wildcard && sameNames(names, st.names)) return;
    st.wildcard = wildcard;
    st.names = new Set(names.filter((n) => n !== '*'));
    st.subscription = wildcard ? '*' : JSON.stringify([...st.names]);
    st.selected = undefined;
  }

  private select(snapshot: Snapshot, typeUrl: XdsTypeUrl, st: SotwState): Selected {
    if (st.selected?.of === snapshot) return st.selected.shared;
    const all = snapshot.get(typeUrl);
    let bySubscription = selections.get(all);
    if (!bySubscription) selections.set(all, (bySubscription = new Map()));
    let selected = bySubscription.get(st.subscription);
    if (!selected) {
      let resources: Selection = all;
      if (!st.wildcard) {
        const out = new Map<string, XdsResource>();
        for (const n of st.names) {
          const r = all.get(n);
          if (r) out.set(n, r);
        }
        resources = out;
      }
      selected = { resources, key: keyOf(resources) };
      bySubscription.set(st.subscription, selected);
    }
    st.selected = { of: snapshot, shared: selected };
    return selected;
  }

  protected upserts(typeUrl: XdsTypeUrl, st: SotwState, snapshot: Snapshot): Send | undefined {
    const selected = this.select(snapshot, typeUrl, st);
    const { resources: desired, key } = selected;
    if (key === st.sentKey) return undefined;
    // A full-state response omitting a resource removes it, so while types that
    // reference it may not have moved off it yet, the old ones stay alongside the new.
    if (!isFullStateType(typeUrl) || includesAll(desired, st.sent.keys())) return (v) => this.sendSotw(typeUrl, st, selected, v);
    const union = new Map(st.sent);
    for (const [n, r] of desired) union.set(n, r);
    const unionKey = keyOf(union);
    if (unionKey === st.sentKey) return undefined;
    return (v) => this.sendSotw(typeUrl, st, { resources: union, key: unionKey }, v);
  }

  protected removals(typeUrl: XdsTypeUrl, st: SotwState, snapshot: Snapshot): Send | undefined {
    if (!isFullStateType(typeUrl)) return undefined;
    const selected = this.select(snapshot, typeUrl, st);
    if (selected.key === st.sentKey) return undefined;
    return (v) => this.sendSotw(typeUrl, st, selected, v);
  }

  private sendSotw(typeUrl: XdsTypeUrl, st: SotwState, selected: Selected, version: number): void {
    const { resources, key } = selected;
    st.sentKey = key;
    st.sent = resources;
    const names = [...resources.keys()];
    // The selection shared by streams carries its bytes; the cache finds those of a union again.
    const bytes = (selected.bytes ??= encoded.get(`${typeUrl}\u0002${key}`, () => [...resources.values()].map((r) => r.any)));
    this.send(st, version, names, (nonce) =>
      withEncodedResources({ versionInfo: String(version), resources: [], canary: false, typeUrl, nonce, controlPlane: { identifier: CONTROL_PLANE_ID } }, bytes),
    );
    this.log.debug({ node: this.nodeId, type: typeUrl, version, count: names.length, nonce: st.nonce }, 'sent');
  }
}
