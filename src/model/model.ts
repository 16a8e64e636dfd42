import type {
  CiliumClusterwideEnvoyConfig,
  CiliumEnvoyConfig,
  EndpointSlice,
  HTTPRoute,
  Kind,
  ModelObject,
  Namespace,
  Node,
  Pod,
  ReferenceGrant,
  Service,
  ServiceAccount,
} from './objects.js';
import { objectKey } from './objects.js';
import { PMap } from './pmap.js';

type ByKind = { [K in Kind]: Extract<ModelObject, { kind: K }> };

/** Keys ("ns/name") of the objects added, changed or removed, by kind. */
export type ModelChanges = ReadonlyMap<Kind, ReadonlySet<string>>;

/** Where an object came from, so errors can point at the file and document. */
export interface Origin {
  file?: string;
  index?: number;
}

/** An object to put into a model, or to take out of it (`removed`: kind and "ns/name"). */
export type ModelEdit = { object: ModelObject; origin?: Origin } | { removed: { kind: Kind; key: string } };

/** How far back changesSince follows recorded deltas before it falls back to comparing maps. */
const MAX_CHAIN = 64;

const sliceService = (s: EndpointSlice) => `${s.metadata.namespace}/${s.metadata.labels?.['kubernetes.io/service-name']}`;

/**
 * An immutable view of cluster state: every object sluice reads, by kind then
 * "ns/name". Sources derive each new Model from the last with only what
 * changed (withEdits): unchanged objects keep their identity, unchanged kinds
 * share their maps, a changed kind shares all but the changed entries, and the
 * new model remembers what changed, so changesSince its parent is O(changes).
 */
export class Model {
  private constructor(
    private readonly byKind: ReadonlyMap<Kind, PMap<string, ModelObject>>,
    private readonly origins: PMap<ModelObject, Origin>,
    /** EndpointSlices by "ns/service", kept up to date with each edit. */
    private readonly slices: PMap<string, readonly EndpointSlice[]>,
    private readonly parent?: Model,
    private readonly delta?: ModelChanges,
    private readonly depth = 0,
  ) {}

  static empty(): Model {
    return new Model(new Map(), PMap.empty(), PMap.empty());
  }

  static from(objects: Iterable<{ object: ModelObject; origin?: Origin }>): Model {
    const byKind = new Map<Kind, Map<string, ModelObject>>();
    const origins = new Map<ModelObject, Origin>();
    for (const { object, origin } of objects) {
      let m = byKind.get(object.kind);
      if (!m) byKind.set(object.kind, (m = new Map()));
      m.set(objectKey(object), object);
      if (origin) origins.set(object, origin);
    }
    const slices = new Map<string, EndpointSlice[]>();
    for (const s of (byKind.get('EndpointSlice')?.values() ?? []) as Iterable<EndpointSlice>) {
      const list = slices.get(sliceService(s));
      if (list) list.push(s);
      else slices.set(sliceService(s), [s]);
    }
    return new Model(new Map([...byKind].map(([k, m]) => [k, PMap.adopt(m)])), PMap.adopt(origins), PMap.adopt(slices));
  }

  /**
   * A new model with these objects put in (replacing any of the same kind and
   * key) or taken out. Edits that change nothing (the same object again) are
   * no change; returns this model when nothing changed at all.
   */
  withEdits(edits: Iterable<ModelEdit>): Model {
    const perKind = new Map<Kind, Map<string, ModelObject | undefined>>();
    const origins = new Map<ModelObject, Origin | undefined>();
    const changes = new Map<Kind, Set<string>>();
    const sliceEdits = new Map<string, { drop: Set<EndpointSlice>; add: EndpointSlice[] }>();
    const sliceEdit = (s: EndpointSlice) => {
      const key = sliceService(s);
      let e = sliceEdits.get(key);
      if (!e) sliceEdits.set(key, (e = { drop: new Set(), add: [] }));
      return e;
    };
    for (const e of edits) {
      const kind = 'removed' in e ? e.removed.kind : e.object.kind;
      const key = 'removed' in e ? e.removed.key : objectKey(e.object);
      let m = perKind.get(kind);
      if (!m) perKind.set(kind, (m = new Map()));
      const before = m.has(key) ? m.get(key) : this.get(kind, key);
      const now = 'removed' in e ? undefined : e.object;
      const origin = 'removed' in e ? undefined : e.origin;
      if (before === now) {
        // The same object from another place (a document moved in its file) is a change of where it is.
        if (!now || sameOrigin(this.origins.get(now), origin)) continue;
      } else {
        if (before) origins.set(before, undefined);
        if (before?.kind === 'EndpointSlice') sliceEdit(before).drop.add(before);
        if (now?.kind === 'EndpointSlice') sliceEdit(now).add.push(now);
      }
      m.set(key, now);
      if (now) origins.set(now, origin);
      let keys = changes.get(kind);
      if (!keys) changes.set(kind, (keys = new Set()));
      keys.add(key);
    }
    if (!changes.size) return this;
    const byKind = new Map(this.byKind);
    for (const [kind, m] of perKind) {
      const next = (this.byKind.get(kind) ?? PMap.empty<string, ModelObject>()).with(m);
      if (next.size) byKind.set(kind, next);
      else byKind.delete(kind);
    }
    const slices = this.slices.with(
      [...sliceEdits].map(([key, e]) => {
        const list = [...(this.slices.get(key) ?? []).filter((s) => !e.drop.has(s)), ...e.add.filter((s) => !e.drop.has(s))];
        return [key, list.length ? list : undefined] as const;
      }),
    );
    const originEdits = [...origins].map(([o, origin]) => [o, origin] as const);
    const depth = this.depth + 1;
    return new Model(byKind, this.origins.with(originEdits), slices, depth > MAX_CHAIN ? undefined : this, changes, depth > MAX_CHAIN ? 0 : depth);
  }

  list<K extends Kind>(kind: K): ByKind[K][] {
    return [...((this.byKind.get(kind)?.values() ?? []) as Iterable<ByKind[K]>)];
  }

  get<K extends Kind>(kind: K, key: string): ByKind[K] | undefined {
    return this.byKind.get(kind)?.get(key) as ByKind[K] | undefined;
  }

  /** How many objects of a kind the model holds. */
  count(kind: Kind): number {
    return this.byKind.get(kind)?.size ?? 0;
  }

  /**
   * What differs from an earlier model. When `prev` is an ancestor this model
   * was derived from by edits, the recorded deltas answer in O(changes);
   * otherwise objects are compared by identity: sources hand out the same
   * object while it is unchanged, and a kind whose map is shared with the
   * earlier model costs nothing.
   */
  changesSince(prev: Model): ModelChanges {
    const chain: ModelChanges[] = [];
    for (let m: Model | undefined = this; m; m = m.parent) {
      if (m === prev) return chain.length === 1 ? chain[0] : unionChanges(chain);
      if (m.delta) chain.push(m.delta);
    }
    const changes = new Map<Kind, Set<string>>();
    const note = (kind: Kind, key: string) => {
      let keys = changes.get(kind);
      if (!keys) changes.set(kind, (keys = new Set()));
      keys.add(key);
    };
    for (const kind of new Set([...this.byKind.keys(), ...prev.byKind.keys()])) {
      const now = this.byKind.get(kind) ?? EMPTY;
      const before = prev.byKind.get(kind) ?? EMPTY;
      if (now === before) continue;
      for (const [key, o] of now) if (before.get(key) !== o) note(kind, key);
      for (const key of before.keys()) if (!now.has(key)) note(kind, key);
    }
    return changes;
  }

  originOf(o: ModelObject): Origin | undefined {
    return this.origins.get(o);
  }

  services(): Service[] {
    return this.list('Service');
  }
  service(namespace: string, name: string): Service | undefined {
    return this.get('Service', `${namespace}/${name}`);
  }
  /** The EndpointSlices of a Service, by their kubernetes.io/service-name label. */
  endpointSlices(namespace: string, service: string): readonly EndpointSlice[] {
    return this.slices.get(`${namespace}/${service}`) ?? [];
  }
  pods(): Pod[] {
    return this.list('Pod');
  }
  namespaces(): Namespace[] {
    return this.list('Namespace');
  }
  serviceAccounts(): ServiceAccount[] {
    return this.list('ServiceAccount');
  }
  node(name: string): Node | undefined {
    return this.get('Node', name);
  }
  envoyConfigs(): CiliumEnvoyConfig[] {
    return this.list('CiliumEnvoyConfig');
  }
  clusterwideEnvoyConfigs(): CiliumClusterwideEnvoyConfig[] {
    return this.list('CiliumClusterwideEnvoyConfig');
  }
  httpRoutes(): HTTPRoute[] {
    return this.list('HTTPRoute');
  }
  referenceGrants(): ReferenceGrant[] {
    return this.list('ReferenceGrant');
  }
}

const EMPTY: ReadonlyMap<string, ModelObject> = new Map();

function sameOrigin(a: Origin | undefined, b: Origin | undefined): boolean {
  return a?.file === b?.file && a?.index === b?.index;
}

function unionChanges(chain: readonly ModelChanges[]): ModelChanges {
  const out = new Map<Kind, Set<string>>();
  for (const changes of chain)
    for (const [kind, keys] of changes) {
      let set = out.get(kind);
      if (!set) out.set(kind, (set = new Set()));
      for (const k of keys) set.add(k);
    }
  return out;
}
