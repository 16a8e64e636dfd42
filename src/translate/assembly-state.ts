// Assembly kept up to date by the units that changed. Each unit's resources
// are claims on a resource id ("typeUrl/name"), ranked as assemble() ranks
// them (generated, allocated listeners, clusterwide, namespaced; then unit
// order; then position). A change re-settles only the ids its claims touch,
// closed over listeners that share a socket port, by replaying assemble()'s
// rules on just those claims: what no changed claim can reach keeps its
// winner, its issues and its place in the per-type maps.
import type { TranslationIssue } from '../issues/issue.js';
import { PMap } from '../model/pmap.js';
import { toXdsResource, type XdsResource } from '../resources/resource.js';
import { TypeUrl, type XdsTypeUrl } from '../resources/types.js';
import { ListenerBindings, socketKeys } from './listener-bindings.js';
import type { ObjectTranslation, ServiceRedirect } from './output.js';

interface Claim {
  unit: Unit;
  index: number;
  /** 0 generated, 1 allocated listener, 2 clusterwide written, 3 namespaced written. */
  phase: number;
  r: XdsResource;
  id: string;
  ports: string[];
}

interface Unit {
  u: ObjectTranslation;
  order: string;
  claims: Claim[];
  /** Resources that are not servable at all, whatever else is there. */
  broken: TranslationIssue[];
}

const byRank = (a: Claim, b: Claim) => a.phase - b.phase || (a.unit.order < b.unit.order ? -1 : a.unit.order > b.unit.order ? 1 : a.index - b.index);

export class AssemblyState {
  private readonly units = new Map<string, Unit>();
  private readonly claimsById = new Map<string, Set<Claim>>();
  private readonly claimsByPort = new Map<string, Set<Claim>>();
  private readonly winners = new Map<string, Claim>();
  private readonly lost = new Map<Claim, TranslationIssue>();
  private readonly redirectsOf = new Map<string, ServiceRedirect[]>();
  /** Listener name -> units that redirect to it, so a change of its owner re-filters their redirects. */
  private readonly steering = new Map<string, Set<string>>();
  private types = new Map<XdsTypeUrl, PMap<string, XdsResource>>();
  private orderedRedirects: ServiceRedirect[] | undefined;
  private orderedIssues: TranslationIssue[] | undefined;

  /**
   * Puts in each changed unit (undefined: the object is gone), keyed by its
   * object, with `order`, the rank among units assemble() would give it.
   * Returns the resource types whose maps changed.
   */
  update(changes: Iterable<readonly [string, ObjectTranslation | undefined, string]>): Set<XdsTypeUrl> {
    const dirtyIds = new Set<string>();
    const dirtyPorts = new Set<string>();
    const touched = new Set<string>();
    let issuesChanged = false;
    for (const [object, u, order] of changes) {
      const old = this.units.get(object);
      if (old?.u === u && old?.order === order) continue;
      touched.add(object);
      if (old) {
        for (const c of old.claims) if (this.unclaim(c, dirtyIds, dirtyPorts)) issuesChanged = true;
        for (const rd of old.u.redirects) remove(this.steering, rd.listener, object);
      }
      this.units.delete(object);
      const next = u && this.claim(u, order, dirtyIds);
      if (next) this.units.set(object, next);
      // Most units have no issues: then the list of all issues stays as it was.
      if ((old?.u.issues.length ?? 0) + (old?.broken.length ?? 0) + (next?.u.issues.length ?? 0) + (next?.broken.length ?? 0) > 0 || (old && next && old.order !== next.order)) issuesChanged = true;
    }
    const ids = this.closure(dirtyIds, dirtyPorts);
    const before = new Map<string, Claim | undefined>();
    for (const id of ids) before.set(id, this.winners.get(id));
    issuesChanged = this.settle(ids) || issuesChanged;
    const edits = new Map<XdsTypeUrl, [string, XdsResource | undefined][]>();
    for (const id of ids) {
      const was = before.get(id);
      const now = this.winners.get(id);
      if (was?.r === now?.r && was?.unit.u.object === now?.unit.u.object) continue;
      const r = (now ?? was)!.r;
      let list = edits.get(r.typeUrl);
      if (!list) edits.set(r.typeUrl, (list = []));
      list.push([r.name, now?.r]);
      if (r.typeUrl === TypeUrl.Listener) for (const o of this.steering.get(r.name) ?? []) touched.add(o);
    }
    const changedTypes = new Set<XdsTypeUrl>();
    for (const [type, list] of edits) {
      const next = (this.types.get(type) ?? PMap.empty<string, XdsResource>()).with(list);
      if (next === this.types.get(type)) continue;
      this.types = new Map(this.types).set(type, next);
      changedTypes.add(type);
    }
    for (const object of touched) this.keepRedirects(object);
    if (issuesChanged) this.orderedIssues = undefined;
    return changedTypes;
  }

  /** The resources by type; a type whose resources did not change keeps its map. */
  resources(): ReadonlyMap<XdsTypeUrl, PMap<string, XdsResource>> {
    return this.types;
  }

  owner(typeUrl: string, name: string): string | undefined {
    return this.winners.get(`${typeUrl}/${name}`)?.unit.u.object;
  }

  /** The assembly order a unit was put in with. */
  order(object: string): string | undefined {
    return this.units.get(object)?.order;
  }

  unit(object: string): ObjectTranslation | undefined {
    return this.units.get(object)?.u;
  }

  /** Redirects to listeners their objects kept, in unit order; built when asked after a change. */
  redirects(): ServiceRedirect[] {
    this.orderedRedirects ??= [...this.redirectsOf].sort(([a], [b]) => this.compareUnits(a, b)).flatMap(([, r]) => r);
    return this.orderedRedirects;
  }

  /** Every unit's issues and those of its claims, in unit order; built when asked after a change. */
  issues(): TranslationIssue[] {
    if (!this.orderedIssues) {
      const units = [...this.units.values()].sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
      this.orderedIssues = [];
      for (const x of units) this.orderedIssues.push(...x.u.issues, ...x.broken);
      for (const x of units) for (const c of x.claims) if (this.lost.has(c)) this.orderedIssues.push(this.lost.get(c)!);
    }
    return this.orderedIssues;
  }

  private compareUnits(a: string, b: string): number {
    const x = this.units.get(a)!.order;
    const y = this.units.get(b)!.order;
    return x < y ? -1 : x > y ? 1 : 0;
  }

  private claim(u: ObjectTranslation, order: string, dirty: Set<string>): Unit {
    const unit: Unit = { u, order, claims: [], broken: [] };
    const authored = u.authored ?? 0;
    u.resources.forEach((any, index) => {
      let r: XdsResource;
      try {
        r = toXdsResource(any);
      } catch (e) {
        unit.broken.push({ object: u.object, field: index >= authored ? 'resources' : `spec.resources[${index}]`, message: (e as Error).message });
        return;
      }
      const allocated = r.typeUrl === TypeUrl.Listener && (u.allocated ?? []).includes(r.name);
      const phase = index >= authored ? 0 : allocated ? 1 : u.clusterScoped ? 2 : 3;
      const c: Claim = { unit, index, phase, r, id: `${r.typeUrl}/${r.name}`, ports: socketKeys(r) };
      unit.claims.push(c);
      add(this.claimsById, c.id, c);
      for (const p of c.ports) add(this.claimsByPort, p, c);
      dirty.add(c.id);
    });
    for (const rd of u.redirects) add(this.steering, rd.listener, u.object);
    return unit;
  }

  /** Takes a claim back; true when it carried an issue. */
  private unclaim(c: Claim, dirty: Set<string>, dirtyPorts: Set<string>): boolean {
    for (const p of c.ports) dirtyPorts.add(p);
    remove(this.claimsById, c.id, c);
    for (const p of c.ports) remove(this.claimsByPort, p, c);
    dirty.add(c.id);
    return this.lost.delete(c);
  }

  /** The ids whose settlement can depend on those given: the same id, or a listener sharing a socket port. */
  private closure(start: Set<string>, startPorts: Set<string>): Set<string> {
    const ids = new Set(start);
    const ports = new Set<string>();
    const queue = [...start];
    // Sockets a claim that went held: whoever lost them to it may take them now.
    for (const p of startPorts) for (const other of this.claimsByPort.get(p) ?? []) if (!ids.has(other.id)) (ids.add(other.id), queue.push(other.id));
    while (queue.length) {
      const id = queue.pop()!;
      for (const c of this.claimsById.get(id) ?? [])
        for (const p of c.ports) {
          if (ports.has(p)) continue;
          ports.add(p);
          for (const other of this.claimsByPort.get(p) ?? []) if (!ids.has(other.id)) (ids.add(other.id), queue.push(other.id));
        }
    }
    return ids;
  }

  /** assemble()'s rules, replayed on every claim of these ids. Returns whether any claim's issue changed. */
  private settle(ids: Set<string>): boolean {
    const claims: Claim[] = [];
    const generated = new Set<string>();
    for (const id of ids) {
      this.winners.delete(id);
      for (const c of this.claimsById.get(id) ?? []) {
        claims.push(c);
        if (c.phase === 0) generated.add(id);
      }
    }
    claims.sort(byRank);
    const bindings = new ListenerBindings();
    let changed = false;
    for (const c of claims) {
      const { u } = c.unit;
      const field = c.phase === 0 ? 'resources' : `spec.resources[${c.index}]`;
      let issue: TranslationIssue | undefined;
      const prior = this.winners.get(c.id);
      if (!prior) {
        const clash = bindings.claim(c.r, u.object);
        if (clash) issue = { object: u.object, field, message: `Listener "${c.r.name}" cannot listen there: ${clash}` };
        else this.winners.set(c.id, c);
      } else if (prior.r.version !== c.r.version) {
        const by = `${prior.unit.u.object}${c.phase !== 0 && generated.has(c.id) ? ', generated by the agent,' : ''}`;
        issue = { object: u.object, field, message: `${c.r.typeUrl.split('.').pop()} "${c.r.name}" is also defined, differently, by ${by} which keeps it` };
      }
      const was = this.lost.get(c);
      if (issue) {
        if (was?.message !== issue.message) changed = true;
        this.lost.set(c, issue);
      } else if (was) {
        changed = true;
        this.lost.delete(c);
      }
    }
    return changed;
  }

  /** Traffic is steered only to a listener its object kept: a lost one would steer into someone else's. */
  private keepRedirects(object: string): void {
    const u = this.units.get(object)?.u;
    const kept = (u?.redirects ?? []).filter((r) => this.owner(TypeUrl.Listener, r.listener) === object);
    const was = this.redirectsOf.get(object);
    if (!kept.length && !was) return;
    if (was && kept.length === was.length && kept.every((r, i) => r === was[i])) return;
    if (kept.length) this.redirectsOf.set(object, kept);
    else this.redirectsOf.delete(object);
    this.orderedRedirects = undefined;
  }
}

function add<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}

function remove<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (s?.delete(v) && !s.size) m.delete(k);
}
