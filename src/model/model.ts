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

type ByKind = { [K in Kind]: Extract<ModelObject, { kind: K }> };

/** Keys ("ns/name") of the objects added, changed or removed, by kind. */
export type ModelChanges = ReadonlyMap<Kind, ReadonlySet<string>>;

/** Where an object came from, so errors can point at the file and document. */
export interface Origin {
  file?: string;
  index?: number;
}

/**
 * An immutable view of cluster state: every object sluice reads, by kind then
 * "ns/name". Sources build a new Model on each change; translators read it.
 */
export class Model {
  private constructor(
    private readonly byKind: ReadonlyMap<Kind, ReadonlyMap<string, ModelObject>>,
    private readonly origins: ReadonlyMap<ModelObject, Origin>,
  ) {}

  static empty(): Model {
    return new Model(new Map(), new Map());
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
    return new Model(byKind, origins);
  }

  list<K extends Kind>(kind: K): ByKind[K][] {
    return [...((this.byKind.get(kind)?.values() ?? []) as Iterable<ByKind[K]>)];
  }

  get<K extends Kind>(kind: K, key: string): ByKind[K] | undefined {
    return this.byKind.get(kind)?.get(key) as ByKind[K] | undefined;
  }

  /**
   * What differs from an earlier model. Objects are compared by identity:
   * sources hand out the same object while it is unchanged, and a kind whose
   * map is shared with the earlier model costs nothing.
   */
  changesSince(prev: Model): ModelChanges {
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
  private slicesByService: Map<string, EndpointSlice[]> | undefined;

  /** The EndpointSlices of a Service, by their kubernetes.io/service-name label. */
  endpointSlices(namespace: string, service: string): EndpointSlice[] {
    if (!this.slicesByService) {
      this.slicesByService = new Map();
      for (const s of this.list('EndpointSlice')) {
        const key = `${s.metadata.namespace}/${s.metadata.labels?.['kubernetes.io/service-name']}`;
        const list = this.slicesByService.get(key);
        if (list) list.push(s);
        else this.slicesByService.set(key, [s]);
      }
    }
    return this.slicesByService.get(`${namespace}/${service}`) ?? [];
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
