// The mesh's Envoy side for one node: the outbound and inbound listeners and
// their clusters, as translation units. Pure; a MeshMemo carried between calls
// makes an unchanged unit come back as the same object and an unchanged
// resource skip encoding, so pod churn elsewhere costs a comparison.
import type { TranslationIssue } from '../issues/issue.js';
import { meshWorkloads } from '../mesh/membership.js';
import type { Model } from '../model/model.js';
import type { MeshAuthz } from '../policy/mesh-authz.js';
import { anyFromJson, type Any } from '../proto/any.js';
import type { TranslateContext } from './context.js';
import { inboundCluster, inboundListener, inboundRoutes, MESH_INBOUND_LISTENER, MESH_OUTBOUND_LISTENER, outboundCluster, outboundListener } from './mesh-envoy.js';
import { planMesh, type InboundIdentity } from './mesh-plan.js';
import { TranslationMemo } from './memo.js';
import type { ObjectTranslation } from './output.js';

export const MESH_OUTBOUND_UNIT = `Mesh ${MESH_OUTBOUND_LISTENER}`;
export const MESH_INBOUND_UNIT = `Mesh ${MESH_INBOUND_LISTENER}`;

export interface MeshInput {
  model: Model;
  ctx: TranslateContext;
  trustDomain: string;
  authz: MeshAuthz;
}

export class MeshMemo {
  readonly units = new TranslationMemo();
  private previous = new Map<string, Any>();
  private current = new Map<string, Any>();

  /** The encoded resource for `key`, from the last call if it had the same key. */
  resource(key: string, build: () => Record<string, unknown>, what: string): Any {
    const any = this.current.get(key) ?? this.previous.get(key) ?? anyFromJson(build(), what);
    this.current.set(key, any);
    return any;
  }

  /** Carries resources of a unit reused whole into this call, so a later change to the unit re-encodes only what changed. */
  keep(keys: readonly string[]): void {
    for (const k of keys) {
      const any = this.current.get(k) ?? this.previous.get(k);
      if (any) this.current.set(k, any);
    }
  }

  sweep(): void {
    this.previous = this.current;
    this.current = new Map();
    this.units.sweep();
  }
}

export function translateMesh(input: MeshInput, memo = new MeshMemo()): ObjectTranslation[] {
  const { ctx, authz } = input;
  const plan = planMesh(meshWorkloads(input.model, input.trustDomain), ctx.nodeName);
  const units: ObjectTranslation[] = [];
  if (plan.outbound.length > 0) {
    const key = JSON.stringify([plan.outbound, ctx.proxyAddresses]);
    const listenerKey = `out ${key}`;
    const clusterKeys = plan.outbound.map((t) => `cluster ${JSON.stringify(t)}`);
    units.push(
      memo.units.get(MESH_OUTBOUND_UNIT, [key], () => ({
        object: MESH_OUTBOUND_UNIT,
        resources: [
          memo.resource(listenerKey, () => outboundListener(ctx, plan.outbound), 'listener'),
          ...plan.outbound.map((t, i) => memo.resource(clusterKeys[i], () => outboundCluster(t), 'cluster')),
        ],
        redirects: [],
        issues: [],
      })),
    );
    memo.keep([listenerKey, ...clusterKeys]);
  }
  if (plan.inbound.length > 0) {
    const authzOf = (id: InboundIdentity) => id.pods.filter((p) => authz.has(p.pod)).map((p) => [p.pod, authz.get(p.pod)!] as const);
    const listenerKey = `in ${JSON.stringify([plan.nodeAddresses, plan.inbound.map((id) => id.spiffeId)])}`;
    const routeKeys = plan.inbound.map((id) => `routes ${JSON.stringify([id, authzOf(id)])}`);
    units.push(
      memo.units.get(MESH_INBOUND_UNIT, [listenerKey, ...routeKeys], () => ({
        object: MESH_INBOUND_UNIT,
        resources: [
          memo.resource(listenerKey, () => inboundListener(plan.nodeAddresses, plan.inbound), 'listener'),
          ...plan.inbound.map((id, i) => memo.resource(routeKeys[i], () => inboundRoutes(id, new Map(authzOf(id))), 'route')),
          memo.resource('in cluster', inboundCluster, 'cluster'),
        ],
        redirects: [],
        issues: [],
      })),
    );
    memo.keep([listenerKey, ...routeKeys, 'in cluster']);
  }
  const byObject = new Map<string, TranslationIssue[]>();
  for (const i of plan.issues) byObject.set(i.object, [...(byObject.get(i.object) ?? []), i]);
  for (const [object, issues] of byObject) units.push({ object, resources: [], redirects: [], issues });
  memo.sweep();
  return units;
}
