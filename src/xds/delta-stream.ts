import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource } from '../gen/envoy/service/discovery/v3/discovery.js';
import { AdsStream, CONTROL_PLANE_ID, newTypeState, type Send, type TypeState } from './ads-stream.js';
import { unpackAny } from '../proto/any.js';
import { edsNameOfCluster, isFullStateType, TypeUrl, type XdsTypeUrl } from '../resources/types.js';
import type { Snapshot } from './snapshot.js';
import type { XdsResource } from '../resources/resource.js';

interface DeltaState extends TypeState {
  wildcard: boolean;
  names: Set<string>;
  /** What the client holds, name -> version, as it told us or as we sent it. */
  known: Map<string, string>;
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

/** Incremental ADS: only changed resources and explicit removals travel. */
export class DeltaStream extends AdsStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse, DeltaState> {
  protected newState(): DeltaState {
    return { ...newTypeState(), wildcard: false, names: new Set(), known: new Map() };
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

  private wants(st: DeltaState, name: string): boolean {
    return st.wildcard || st.names.has(name);
  }

  protected upserts(typeUrl: XdsTypeUrl, st: DeltaState, snapshot: Snapshot): Send | undefined {
    const all = snapshot.get(typeUrl);
    const candidates = st.wildcard ? all.values() : [...st.names].map((n) => all.get(n)).filter((r) => r !== undefined);
    const upserts: XdsResource[] = [];
    for (const r of candidates) if (st.known.get(r.name) !== r.version) upserts.push(r);
    // The first response of a type goes out even if empty: the client waits for it.
    if (upserts.length === 0 && st.responded) return undefined;
    return (v) => {
      for (const r of upserts) st.known.set(r.name, r.version);
      this.sendDelta(typeUrl, st, v, upserts, []);
      if (typeUrl === TypeUrl.Cluster) this.rewarmEndpoints(upserts);
    };
  }

  protected removals(typeUrl: XdsTypeUrl, st: DeltaState, snapshot: Snapshot): Send | undefined {
    const all = snapshot.get(typeUrl);
    const removed = [...st.known.keys()].filter((n) => !all.has(n) || !this.wants(st, n));
    if (removed.length === 0) return undefined;
    return (v) => {
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
    for (const c of clusters) {
      const name = edsNameOfCluster(unpackAny<Parameters<typeof edsNameOfCluster>[0]>(c.any).message);
      if (name) eds.known.delete(name);
    }
  }

  private sendDelta(typeUrl: XdsTypeUrl, st: DeltaState, version: number, upserts: XdsResource[], removed: string[]): void {
    const names = upserts.length ? upserts.map((r) => r.name) : removed;
    this.send(st, version, names, (nonce) => ({
      systemVersionInfo: String(version),
      resources: upserts.map(toDeltaResource),
      typeUrl,
      removedResources: removed,
      removedResourceNames: [],
      nonce,
      controlPlane: { identifier: CONTROL_PLANE_ID },
    }));
    this.log.debug({ node: this.nodeId, type: typeUrl, version, upserts: upserts.length, removed: removed.length }, 'sent delta');
  }
}
