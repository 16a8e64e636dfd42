import { DeltaDiscoveryResponse, type DeltaDiscoveryRequest, type Resource } from '../gen/envoy/service/discovery/v3/discovery.js';
import { AdsStream, CONTROL_PLANE_ID, newTypeState, type Send, type TypeState } from './ads-stream.js';
import { unpackAny } from '../proto/any.js';
import { edsNameOfCluster, isFullStateType, TypeUrl, type XdsTypeUrl } from '../resources/types.js';
import type { Snapshot } from './snapshot.js';
import type { XdsResource } from '../resources/resource.js';
import { withEncodedResources } from './encoded-resources.js';

interface DeltaState extends TypeState {
  wildcard: boolean;
  names: Set<string>;
  /** What the client holds, name -> version, as it told us or as we sent it. */
  known: Map<string, string>;
  /**
   * The resources of the type (a snapshot's map, immutable) that `known` was last
   * found to match exactly, with nothing to add or remove: until the map, the
   * subscription or `known` changes, a request (an ACK, mostly) needs no new scan.
   */
  matches: ReadonlyMap<string, XdsResource> | undefined;
  /** The last scan for upserts against this map found none. */
  noUpsertsIn: ReadonlyMap<string, XdsResource> | undefined;
}

function toDeltaResource(r: XdsResource): Resource {
  return {
    name: r.name,
    resourceName: undefined,
    aliases: [],
    version: r.version,
    resource: r.any,
    ttl: undefined,
    cacheControl: undefined,
    metadata: undefined,
  };
}

/**
 * Each resource's field of a DeltaDiscoveryResponse, encoded once however many
 * streams it goes to. Resources of unchanged objects are the same objects from
 * snapshot to snapshot, so the encoding lives as long as the resource does.
 */
const encodedFields = new WeakMap<XdsResource, Uint8Array>();

function encodedField(r: XdsResource): Uint8Array {
  let bytes = encodedFields.get(r);
  if (!bytes) encodedFields.set(r, (bytes = DeltaDiscoveryResponse.encode(DeltaDiscoveryResponse.fromPartial({ resources: [toDeltaResource(r)] })).finish()));
  return bytes;
}

/** Per cluster resource, the CLA it reads (or null), decoded once rather than per stream. */
const edsNames = new WeakMap<XdsResource, string | null>();

function edsNameOf(cluster: XdsResource): string | null {
  let name = edsNames.get(cluster);
  if (name === undefined) edsNames.set(cluster, (name = edsNameOfCluster(unpackAny<Parameters<typeof edsNameOfCluster>[0]>(cluster.any).message) ?? null));
  return name;
}

/** Incremental ADS: only changed resources and explicit removals travel. */
export class DeltaStream extends AdsStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse, DeltaState> {
  protected newState(): DeltaState {
    return { ...newTypeState(), wildcard: false, names: new Set(), known: new Map(), matches: undefined, noUpsertsIn: undefined };
  }

  protected describe(req: DeltaDiscoveryRequest): object {
    return {
      subscribe: req.resourceNamesSubscribe,
      unsubscribe: req.resourceNamesUnsubscribe,
      initial: Object.keys(req.initialResourceVersions).length,
      error: req.errorDetail?.message,
    };
  }

  protected subscribe(req: DeltaDiscoveryRequest, st: DeltaState, fresh: boolean): void {
    if (fresh || req.resourceNamesSubscribe.length || req.resourceNamesUnsubscribe.length) this.forget(st);
    if (fresh) {
      // An empty first subscription to a full-state type is the legacy wildcard.
      st.wildcard = isFullStateType(req.typeUrl) && req.resourceNamesSubscribe.length === 0;
      for (const [name, version] of Object.entries(req.initialResourceVersions)) st.known.set(name, version);
    }
    for (const n of req.resourceNamesSubscribe) {
      if (n === '*') st.wildcard = true;
      else {
        st.names.add(n);
        // Subscribing again means the client wants it again (Envoy does so for a
        // cluster it rebuilds), unless it just told us which version it holds.
        if (!(fresh && n in req.initialResourceVersions)) st.known.delete(n);
      }
    }
    for (const n of req.resourceNamesUnsubscribe) {
      if (n === '*') st.wildcard = false;
      else {
        st.names.delete(n);
        st.known.delete(n);
      }
    }
  }

  /** What the client holds or wants changed: the next snapshot needs a full scan. */
  private forget(st: DeltaState): void {
    st.matches = st.noUpsertsIn = undefined;
  }

  private wants(st: DeltaState, name: string): boolean {
    return st.wildcard || st.names.has(name);
  }

  protected upserts(typeUrl: XdsTypeUrl, st: DeltaState, snapshot: Snapshot): Send | undefined {
    const all = snapshot.get(typeUrl);
    if (st.matches === all) return undefined;
    // Runs per stream per snapshot over everything subscribed: no intermediate arrays.
    const upserts: XdsResource[] = [];
    if (st.wildcard) {
      for (const r of all.values()) if (st.known.get(r.name) !== r.version) upserts.push(r);
    } else
      for (const n of st.names) {
        const r = all.get(n);
        if (r && st.known.get(n) !== r.version) upserts.push(r);
      }
    // The first response of a type goes out even if empty: the client waits for it.
    if (upserts.length === 0 && st.responded) {
      st.noUpsertsIn = all;
      return undefined;
    }
    return (v) => {
      this.forget(st);
      for (const r of upserts) st.known.set(r.name, r.version);
      this.sendDelta(typeUrl, st, v, upserts, []);
      if (typeUrl === TypeUrl.Cluster) this.rewarmEndpoints(upserts);
    };
  }

  protected removals(typeUrl: XdsTypeUrl, st: DeltaState, snapshot: Snapshot): Send | undefined {
    const all = snapshot.get(typeUrl);
    if (st.matches === all) return undefined;
    const removed: string[] = [];
    for (const n of st.known.keys()) if (!all.has(n) || !this.wants(st, n)) removed.push(n);
    if (removed.length === 0) {
      if (st.noUpsertsIn === all) st.matches = all;
      return undefined;
    }
    return (v) => {
      this.forget(st);
      for (const n of removed) st.known.delete(n);
      this.sendDelta(typeUrl, st, v, [], removed);
    };
  }

  /**
   * Envoy rebuilds a changed EDS cluster and keeps it warming until endpoints
   * arrive, but over delta it does not ask for them again: resend them.
   */
  private rewarmEndpoints(clusters: XdsResource[]): void {
    const eds = this.types.get(TypeUrl.ClusterLoadAssignment);
    if (!eds) return;
    this.forget(eds);
    for (const c of clusters) {
      const name = edsNameOf(c);
      if (name) eds.known.delete(name);
    }
  }

  private sendDelta(typeUrl: XdsTypeUrl, st: DeltaState, version: number, upserts: XdsResource[], removed: string[]): void {
    const names = upserts.length ? upserts.map((r) => r.name) : removed;
    this.send(st, version, names, (nonce) =>
      withEncodedResources(
        { systemVersionInfo: String(version), resources: [], typeUrl, removedResources: removed, removedResourceNames: [], nonce, controlPlane: { identifier: CONTROL_PLANE_ID } },
        upserts.map(encodedField),
      ),
    );
    this.log.debug({ node: this.nodeId, type: typeUrl, version, upserts: upserts.length, removed: removed.length }, 'sent delta');
  }
}
