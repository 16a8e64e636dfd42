// Translation kept up to date by model deltas. Indexes say which units read
// an object: a Service (and through its EndpointSlices, their Service) the
// configs naming it in spec.services/backendServices; this node's labels the
// configs with a nodeSelector; NodePorts every config's listeners. Only those
// units translate again. HTTPRoutes are translated together (a Service port's
// listener merges every route attached to it), so any change a route reads
// (a route, a ReferenceGrant, a Pod, a Service or slice a route names) runs
// the route translator again; units it returns unchanged keep their identity.
import type { Model } from '../model/model.js';
import { PMap } from '../model/pmap.js';
import type { CiliumClusterwideEnvoyConfig, CiliumEnvoyConfig, EndpointSlice, Kind, Service } from '../model/objects.js';
import { objectKey } from '../model/objects.js';
import type { TranslateContext } from './context.js';
import { translateEnvoyConfig } from './envoy-config.js';
import { translateHttpRoutes } from './httproute-mesh.js';
import { addUse, nodePortsOf, portsTaken } from './listener-ports.js';
import type { ObjectTranslation } from './output.js';
import { unitOrder, unitOrderIn } from './unit-order.js';

type EnvoyConfig = CiliumEnvoyConfig | CiliumClusterwideEnvoyConfig;
const CONFIG_KINDS = ['CiliumEnvoyConfig', 'CiliumClusterwideEnvoyConfig'] as const;

/** The units that changed, by object: the new unit (undefined: gone) and its assembly order. */
export type UnitChanges = Map<string, readonly [ObjectTranslation | undefined, string]>;

const sliceService = (s: EndpointSlice) => `${s.metadata.namespace}/${s.metadata.labels?.['kubernetes.io/service-name']}`;

function servicesOf(cec: EnvoyConfig): string[] {
  const ns = cec.metadata.namespace ?? 'default';
  return [...(cec.spec.services ?? []), ...(cec.spec.backendServices ?? [])].map((s) => `${s.namespace ?? ns}/${s.name}`);
}

export class IncrementalTranslation {
  private model: Model | undefined;
  private units = PMap.empty<string, ObjectTranslation>();
  private readonly deps = new Map<string, string[]>();
  private readonly bySvc = new Map<string, Set<string>>();
  private readonly selective = new Set<string>();
  private nodePorts = new Map<number, Set<string>>();
  private taken = new Map<number, string>();
  private routeServices = new Set<string>();
  private routeUnits = new Set<string>();

  /** Forgets everything: the next update translates every object again (e.g. after a proxy port shortage ended). */
  invalidate(): void {
    this.model = undefined;
  }

  /** The current units by object. */
  current(): PMap<string, ObjectTranslation> {
    return this.units;
  }

  update(model: Model, ctx: TranslateContext): UnitChanges {
    const prev = this.model;
    this.model = model;
    const out: UnitChanges = new Map();
    if (!prev) return this.full(model, ctx, out);
    if (prev === model) return out;
    const changes = model.changesSince(prev);
    const configs = new Map<string, Kind>();
    for (const kind of CONFIG_KINDS) for (const key of changes.get(kind) ?? []) configs.set(key, kind);
    const services = new Set(changes.get('Service') ?? []);
    for (const key of changes.get('EndpointSlice') ?? [])
      for (const s of [prev.get('EndpointSlice', key), model.get('EndpointSlice', key)]) if (s) services.add(sliceService(s));
    for (const svc of services) for (const id of this.bySvc.get(svc) ?? []) configs.set(id.slice(id.indexOf(' ') + 1), id.slice(0, id.indexOf(' ')) as Kind);
    let all = false;
    if (changes.get('Node')?.has(ctx.nodeName)) {
      const labels = (m: Model) => JSON.stringify(m.node(ctx.nodeName)?.metadata.labels ?? {});
      if (labels(prev) !== labels(model)) for (const id of this.selective) configs.set(id.slice(id.indexOf(' ') + 1), id.slice(0, id.indexOf(' ')) as Kind);
    }
    if (changes.has('Service')) {
      for (const key of changes.get('Service')!) {
        for (const [port, use] of nodePortsOf(prev.get('Service', key) ?? EMPTY_SERVICE)) this.nodePorts.get(port)?.delete(use);
        for (const [port, use] of nodePortsOf(model.get('Service', key) ?? EMPTY_SERVICE)) addUse(this.nodePorts, port, use);
      }
      const taken = portsTaken(ctx, this.nodePorts);
      if (!sameMap(taken, this.taken)) ((this.taken = taken), (all = true));
    }
    const edits: [string, ObjectTranslation | undefined][] = [];
    if (all) for (const kind of CONFIG_KINDS) for (const c of model.list(kind)) configs.set(objectKey(c), kind);
    for (const [key, kind] of configs) this.config(model, ctx, kind, key, out, edits);
    const routesRead = changes.has('HTTPRoute') || changes.has('ReferenceGrant') || changes.has('Pod') || [...services].some((s) => this.routeServices.has(s));
    if (routesRead) this.routes(model, ctx, out, edits);
    this.units = this.units.with(edits);
    return out;
  }

  private full(model: Model, ctx: TranslateContext, out: UnitChanges): UnitChanges {
    const old = this.units;
    this.units = PMap.empty();
    this.deps.clear();
    this.bySvc.clear();
    this.selective.clear();
    this.routeUnits = new Set();
    this.nodePorts = new Map();
    for (const svc of model.services()) for (const [port, use] of nodePortsOf(svc)) addUse(this.nodePorts, port, use);
    this.taken = portsTaken(ctx, this.nodePorts);
    const edits: [string, ObjectTranslation | undefined][] = [];
    for (const kind of CONFIG_KINDS) for (const c of model.list(kind)) this.config(model, ctx, kind, objectKey(c), out, edits);
    this.routes(model, ctx, out, edits);
    this.units = this.units.with(edits);
    for (const object of old.keys()) if (!this.units.has(object)) out.set(object, [undefined, unitOrder(object)]);
    return out;
  }

  private config(model: Model, ctx: TranslateContext, kind: Kind, key: string, out: UnitChanges, edits: [string, ObjectTranslation | undefined][]): void {
    const id = `${kind} ${key}`;
    for (const svc of this.deps.get(id) ?? []) this.bySvc.get(svc)?.delete(id);
    this.deps.delete(id);
    this.selective.delete(id);
    const cec = model.get(kind, key) as EnvoyConfig | undefined;
    if (!cec) {
      edits.push([id, undefined]);
      out.set(id, [undefined, unitOrder(id)]);
      return;
    }
    const deps = servicesOf(cec);
    this.deps.set(id, deps);
    for (const svc of deps) {
      let s = this.bySvc.get(svc);
      if (!s) this.bySvc.set(svc, (s = new Set()));
      s.add(id);
    }
    if (cec.spec.nodeSelector) this.selective.add(id);
    const labels = model.node(ctx.nodeName)?.metadata.labels ?? {};
    const unit = translateEnvoyConfig(model, ctx, cec, labels, this.taken);
    edits.push([id, unit]);
    out.set(id, [unit, unitOrder(id, model.originOf(cec))]);
  }

  private routes(model: Model, ctx: TranslateContext, out: UnitChanges, edits: [string, ObjectTranslation | undefined][]): void {
    const units = translateHttpRoutes(model, ctx);
    const fresh = new Set<string>();
    this.routeServices = new Set();
    for (const r of model.httpRoutes()) {
      const ns = r.metadata.namespace ?? 'default';
      for (const p of r.spec.parentRefs ?? []) this.routeServices.add(`${p.namespace ?? ns}/${p.name}`);
      for (const rule of r.spec.rules ?? []) for (const b of rule.backendRefs ?? []) this.routeServices.add(`${b.namespace ?? ns}/${b.name}`);
    }
    for (const u of units) {
      fresh.add(u.object);
      const old = this.units.get(u.object);
      const order = unitOrderIn(model, u.object);
      // A unit translated again to the same thing keeps its identity, so assembly skips it.
      if (old && sameUnit(old, u) && this.orderOf.get(u.object) === order) continue;
      this.orderOf.set(u.object, order);
      edits.push([u.object, u]);
      out.set(u.object, [u, order]);
    }
    for (const object of this.routeUnits)
      if (!fresh.has(object)) {
        this.orderOf.delete(object);
        edits.push([object, undefined]);
        out.set(object, [undefined, unitOrder(object)]);
      }
    this.routeUnits = fresh;
  }

  private readonly orderOf = new Map<string, string>();
}

const EMPTY_SERVICE = { spec: {} } as Service;

function sameMap<K, V>(a: ReadonlyMap<K, V>, b: ReadonlyMap<K, V>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** The same resources (by bytes), redirects, issues and standing. */
function sameUnit(a: ObjectTranslation, b: ObjectTranslation): boolean {
  if (a.resources.length !== b.resources.length) return false;
  for (let i = 0; i < a.resources.length; i++) {
    const x = a.resources[i];
    const y = b.resources[i];
    if (x.typeUrl !== y.typeUrl || Buffer.compare(x.value, y.value) !== 0) return false;
  }
  const rest = (u: ObjectTranslation) => JSON.stringify([u.redirects, u.issues, u.authored, u.clusterScoped, u.allocated, u.rejected]);
  return rest(a) === rest(b);
}

