// Which Services' socket-LB frontends a model change can touch, worked out from
// the change itself, so one edit among 10,000 Services costs one Service.
import type { Model, ModelChanges } from '../model/model.js';
import { objectKey, type EndpointSlice } from '../model/objects.js';
import type { ServiceRedirect } from '../translate/output.js';

const SERVICE_NAME = 'kubernetes.io/service-name';

/** "ns/name" of the Service a slice serves, as Model.endpointSlices files it. */
function ownerOf(slice: EndpointSlice | undefined): string | undefined {
  const name = slice?.metadata.labels?.[SERVICE_NAME];
  return name === undefined ? undefined : `${slice!.metadata.namespace}/${name}`;
}

/**
 * EndpointSlices by the Service they serve, kept up to date from model changes:
 * the model's own index is rebuilt whole for every new model.
 */
export class SliceIndex {
  private readonly byService = new Map<string, Map<string, EndpointSlice>>();

  static of(model: Model): SliceIndex {
    const index = new SliceIndex();
    for (const s of model.list('EndpointSlice')) index.add(objectKey(s), s);
    return index;
  }

  private add(key: string, slice: EndpointSlice): void {
    const owner = ownerOf(slice);
    if (owner === undefined) return;
    let slices = this.byService.get(owner);
    if (!slices) this.byService.set(owner, (slices = new Map()));
    slices.set(key, slice);
  }

  private remove(key: string, slice: EndpointSlice): void {
    const owner = ownerOf(slice);
    const slices = owner === undefined ? undefined : this.byService.get(owner);
    if (!slices) return;
    slices.delete(key);
    if (!slices.size) this.byService.delete(owner!);
  }

  /** Moves the changed slices from their old to their new state; adds both owners to `touched`. */
  update(prev: Model, next: Model, keys: Iterable<string>, touched: Set<string>): void {
    for (const key of keys) {
      const was = prev.get('EndpointSlice', key);
      const now = next.get('EndpointSlice', key);
      if (was) this.remove(key, was);
      if (now) this.add(key, now);
      for (const owner of [ownerOf(was), ownerOf(now)]) if (owner !== undefined) touched.add(owner);
    }
  }

  slices(service: string): Iterable<EndpointSlice> {
    return this.byService.get(service)?.values() ?? [];
  }
}

/** Adds the Services whose redirects differ between the two lists. */
export function redirectChanges(before: readonly ServiceRedirect[], after: readonly ServiceRedirect[], touched: Set<string>): void {
  if (before === after) return;
  // desiredOfService reads a redirect's service, port and proxy port, in list order per Service.
  const byService = (list: readonly ServiceRedirect[]) => {
    const out = new Map<string, string>();
    for (const r of list) out.set(r.service, `${out.get(r.service) ?? ''}${r.port ?? '*'}>${r.proxyPort},`);
    return out;
  };
  const a = byService(before);
  const b = byService(after);
  for (const [service, v] of a) if (b.get(service) !== v) touched.add(service);
  for (const service of b.keys()) if (!a.has(service)) touched.add(service);
}

/**
 * The Services ("ns/name") whose desired frontends may differ from `prev` to
 * `next`: changed Services, the old and new owners of changed EndpointSlices
 * (endpoints' node names, read by internalTrafficPolicy Local, live in the
 * slices too), and changed redirects. The node's own addresses are not covered:
 * the caller compares them and walks everything when they move.
 */
export function changedServices(
  prev: { model: Model; redirects: readonly ServiceRedirect[] },
  next: { model: Model; redirects: readonly ServiceRedirect[] },
  changes: ModelChanges,
  index: SliceIndex,
): Set<string> {
  const touched = new Set<string>(changes.get('Service') ?? []);
  index.update(prev.model, next.model, changes.get('EndpointSlice') ?? [], touched);
  redirectChanges(prev.redirects, next.redirects, touched);
  return touched;
}
