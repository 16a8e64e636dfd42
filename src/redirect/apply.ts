// Diff-based apply: encode the map entries of each frontend whose desired state
// changed, compare them with what the maps hold, and write only the difference,
// in an order that never leaves a service pointing at a slot or backend that is
// not there yet. Shared entries (backends, Maglev tables) are reference counted.
//
// The kernel may refuse any write (a full map, say). The bookkeeping records
// only what the kernel took: a frontend counts as applied once every one of its
// entries is in, and until then it holds both its old and new entries, so
// nothing its old master may still point at is deleted. The next apply retries it.
import { IdsExhausted, StableIds } from '../ids/stable-ids.js';
import type { MapIo } from './bpf.js';
import { maglevTable, serviceOfKey, type DesiredService, type Frontend } from './desired.js';
import { releaseIds } from './release.js';
import { backend, MAGLEV_M, maglevKey, SVC_FLAG_AFFINITY, SVC_FLAG_L7, SVC_FLAG_MAGLEV, svcKey, svcMaster, svcSlot, u32 } from './maps.js';

export interface SockLbMaps {
  services: MapIo;
  backends: MapIo;
  maglev: MapIo;
  /** Read and pruned only when ids are released: it remembers clients' backends by rev-NAT id. */
  affinity?: MapIo;
}

type MapName = 'services' | 'backends' | 'maglev';
type Part = 'masters' | 'slots' | 'backends' | 'maglev';
/** [hex key, key, value, hex value] */
type Entry = [string, Buffer, Buffer, string];
/** One frontend's entries. */
type ServiceEntries = Record<Part, Entry[]>;

/** A frontend's entries as the kernel may hold them, and the id keys they use. */
interface Built {
  /** The desired service (as JSON) the entries were made from; STALE when they are not all in yet. */
  signature: string;
  entries: ServiceEntries;
  serviceKeys: string[];
  backendKeys: string[];
}

/** A Service port left out of the maps, and why. */
export interface Unplaced {
  serviceKey: string;
  frontend: Frontend;
  message: string;
}

export interface ApplyStats {
  upserts: number;
  deletes: number;
}

export interface ApplyResult extends ApplyStats {
  /** Frontends whose new entries are not all in the maps: they keep serving their old ones until a retry. */
  failed: number;
  /** Entries to be deleted that the kernel would not delete: they are unreachable and retried. */
  undeleted: number;
  /** Distinct kernel errors met. */
  errors: string[];
  unplaced: Unplaced[];
  /** Ids given back to their pools. */
  released: number;
}

const MAP_OF: Record<Part, MapName> = { masters: 'services', slots: 'services', backends: 'backends', maglev: 'maglev' };
const PARTS = Object.keys(MAP_OF) as Part[];
const MAPS: MapName[] = ['services', 'backends', 'maglev'];
/** Never equal to a JSON signature: the frontend is retried at the next apply. */
const STALE = '';

function entry(k: Buffer, v: Buffer): Entry {
  return [k.toString('hex'), k, v, v.toString('hex')];
}

function emptyEntries(): ServiceEntries {
  return { masters: [], slots: [], backends: [], maglev: [] };
}

/** Both sets of entries, each key once (the newer value): what a half-applied frontend may hold. */
function union(older: Built, newer: Built): Built {
  const entries = emptyEntries();
  for (const part of PARTS) {
    const byKey = new Map<string, Entry>();
    for (const e of [...older.entries[part], ...newer.entries[part]]) byKey.set(e[0], e);
    entries[part] = [...byKey.values()];
  }
  const both = (a: string[], b: string[]) => [...new Set([...a, ...b])];
  return { signature: STALE, entries, serviceKeys: both(older.serviceKeys, newer.serviceKeys), backendKeys: both(older.backendKeys, newer.backendKeys) };
}

/** Slot 0 (the little-endian u16 at byte 20 of the key) is a service's master entry. */
function isMaster(hex: string): boolean {
  return hex.slice(40, 44) === '0000';
}

/** The little-endian u16 at byte `at` of a hex string. */
function u16At(hex: string, at: number): number {
  return parseInt(hex.slice(at * 2 + 2, at * 2 + 4) + hex.slice(at * 2, at * 2 + 2), 16);
}

/** The rev-NAT id an entry of the map carries, if any: masters in their value, Maglev entries in their key. */
function revNatOf(name: MapName, hex: string, vhex: string): number | undefined {
  if (name === 'services') return isMaster(hex) ? u16At(vhex, 6) : undefined;
  return name === 'maglev' ? u16At(hex, 0) : undefined;
}

/** One Service's claim on a frontend; `order` is its place in that Service's list. */
interface Claim {
  service: string;
  order: number;
  desired: DesiredService;
}

const frontendOf = (s: DesiredService) => `${s.frontend.vip}|${s.frontend.port}|${s.frontend.proto}`;

/**
 * Which claim a frontend goes to when Services share it: the lowest Service
 * name, then its first port. It depends on nothing but the claims, so a change
 * applied alone ends where a full apply of the same state would.
 */
function winnerOf(claims: Claim[] | undefined): Claim | undefined {
  let best: Claim | undefined;
  for (const c of claims ?? []) if (!best || c.service < best.service || (c.service === best.service && c.order < best.order)) best = c;
  return best;
}

/**
 * The kernel maps as last written (or, after a restart, as found), mirrored to
 * diff against. A full apply (apply) looks at every frontend; a change
 * (applyServices) looks only at the frontends of the Services named, plus any
 * left over from an earlier apply that did not land.
 */
export class SockLbApplier {
  private mirror!: Record<MapName, Map<string, string>>;
  /** How many mirrored masters and Maglev entries carry each rev-NAT id. */
  private revNatInKernel!: Map<number, number>;
  /** Each frontend's entries, as far as the kernel may hold them. */
  private built!: Map<string, Built>;
  /** How many frontends' entries include each key: backends and Maglev tables are shared. */
  private refs!: Record<MapName, Map<string, number>>;
  /** How many frontends use each service id key. */
  private serviceKeyRefs!: Map<string, number>;
  /** Keys the kernel would not delete, tried again each apply. */
  private undeleted!: Record<MapName, Set<string>>;
  /** After a restart the maps hold whatever the last agent left: the first clean apply sweeps them whole. */
  private swept!: boolean;
  /** Id keys that may have fallen out of use; released once nothing holds them. */
  private idCandidates = { services: new Set<string>(), backends: new Set<string>() };
  /** The desired frontends of each Service ("ns/name"). */
  private claimsOf = new Map<string, readonly DesiredService[]>();
  /** Every claim on each frontend: one wins, the others are reported. */
  private claimants = new Map<string, Claim[]>();
  /** The losing claims of frontends more than one Service asks for. */
  private conflicts = new Map<string, Unplaced[]>();
  /** Frontends left out for want of an id. */
  private noId = new Map<string, Unplaced>();
  /** Frontends an apply left short (no id, refused writes, undeletable master): looked at again by the next. */
  private pending = new Set<string>();
  /** Only a full apply knows every frontend: until one has run (at start, after a fault) changes alone are refused. */
  private walked!: boolean;

  constructor(
    private readonly maps: SockLbMaps,
    private readonly ids: { services: StableIds; backends: StableIds },
  ) {
    this.resync();
  }

  /** True until a full apply has run over what the kernel holds; applyServices needs one first. */
  get needsFullWalk(): boolean {
    return !this.walked;
  }

  /** How many frontends the desired state names. */
  get frontends(): number {
    return this.claimants.size;
  }

  /** Forgets the bookkeeping and takes the kernel's word for what the maps hold; the next apply sweeps. */
  private resync(): void {
    this.mirror = { services: new Map(), backends: new Map(), maglev: new Map() };
    this.revNatInKernel = new Map();
    for (const name of MAPS) for (const [k, v] of this.maps[name].entries()) this.mirrorSet(name, k.toString('hex'), v.toString('hex'));
    this.built = new Map();
    this.refs = { services: new Map(), backends: new Map(), maglev: new Map() };
    this.serviceKeyRefs = new Map();
    this.undeleted = { services: new Set(), backends: new Set(), maglev: new Set() };
    this.swept = false;
    this.walked = false;
    this.pending = new Set();
    this.noId = new Map();
    for (const k of this.ids.services.keys()) this.idCandidates.services.add(k);
    for (const k of this.ids.backends.keys()) this.idCandidates.backends.add(k);
  }

  private mirrorSet(name: MapName, hex: string, vhex: string): void {
    this.mirrorDelete(name, hex);
    this.mirror[name].set(hex, vhex);
    const id = revNatOf(name, hex, vhex);
    if (id !== undefined) this.revNatInKernel.set(id, (this.revNatInKernel.get(id) ?? 0) + 1);
  }

  private mirrorDelete(name: MapName, hex: string): void {
    const vhex = this.mirror[name].get(hex);
    if (vhex === undefined) return;
    this.mirror[name].delete(hex);
    const id = revNatOf(name, hex, vhex);
    if (id === undefined) return;
    const n = (this.revNatInKernel.get(id) ?? 0) - 1;
    if (n > 0) this.revNatInKernel.set(id, n);
    else this.revNatInKernel.delete(id);
  }

  /** Counts (by = 1) or uncounts (by = -1) a frontend's hold on its entries and ids. */
  private hold(b: Built, by: 1 | -1): void {
    for (const part of PARTS) {
      const refs = this.refs[MAP_OF[part]];
      for (const [hex] of b.entries[part]) {
        const n = (refs.get(hex) ?? 0) + by;
        if (n > 0) refs.set(hex, n);
        else refs.delete(hex);
      }
    }
    for (const k of b.serviceKeys) {
      const n = (this.serviceKeyRefs.get(k) ?? 0) + by;
      if (n > 0) this.serviceKeyRefs.set(k, n);
      else this.serviceKeyRefs.delete(k);
    }
    if (by < 0) {
      for (const k of b.serviceKeys) this.idCandidates.services.add(k);
      for (const k of b.backendKeys) this.idCandidates.backends.add(k);
    }
  }

  private serviceEntries(s: DesiredService, signature: string): Built {
    const out = emptyEntries();
    const built: Built = { signature, entries: out, serviceKeys: [s.serviceKey], backendKeys: [] };
    // Ids taken before an exhaustion are candidates, so a half-made frontend leaks none.
    this.idCandidates.services.add(s.serviceKey);
    const revNatId = this.ids.services.idFor(s.serviceKey);
    const backendIds = s.backends.map((b) => {
      const key = `${b.ip}:${b.port}`;
      this.idCandidates.backends.add(key);
      const id = this.ids.backends.idFor(key);
      built.backendKeys.push(key);
      out.backends.push(entry(u32(id), backend(b.ip, b.port)));
      return id;
    });
    const l7 = s.l7Port !== undefined;
    const flags = (s.affinityTimeout !== undefined ? SVC_FLAG_AFFINITY : 0) | (s.maglev ? SVC_FLAG_MAGLEV : 0) | (l7 ? SVC_FLAG_L7 : 0);
    const base = { vip: s.frontend.vip, port: s.frontend.port, proto: s.frontend.proto };
    out.masters.push(entry(svcKey({ ...base, slot: 0 }), svcMaster({ count: backendIds.length, revNatId, l7Port: s.l7Port ?? 0, flags, affinityTimeout: s.affinityTimeout ?? 0 })));
    backendIds.forEach((id, i) => out.slots.push(entry(svcKey({ ...base, slot: i + 1 }), svcSlot(id))));
    if (s.maglev && !l7)
      maglevTable(s.backends.map((b) => `${b.ip}:${b.port}`), MAGLEV_M).forEach((bi, index) => out.maglev.push(entry(maglevKey(revNatId, index), u32(backendIds[bi]))));
    return built;
  }

  /** Records a Service's frontends as desired; returns them. */
  private claim(service: string, list: readonly DesiredService[]): string[] {
    if (!list.length) return [];
    this.claimsOf.set(service, list);
    return list.map((desired, order) => {
      const frontend = frontendOf(desired);
      const claims = this.claimants.get(frontend);
      if (claims) claims.push({ service, order, desired });
      else this.claimants.set(frontend, [{ service, order, desired }]);
      return frontend;
    });
  }

  /** Forgets a Service's frontends; returns them. */
  private unclaim(service: string): string[] {
    const list = this.claimsOf.get(service) ?? [];
    this.claimsOf.delete(service);
    return list.map((desired) => {
      const frontend = frontendOf(desired);
      const rest = (this.claimants.get(frontend) ?? []).filter((c) => c.service !== service);
      if (rest.length) this.claimants.set(frontend, rest);
      else this.claimants.delete(frontend);
      return frontend;
    });
  }

  /** Notes the losing claims of a frontend, if more than one Service asks for it. */
  private settleConflict(frontend: string): void {
    const claims = this.claimants.get(frontend);
    const winner = winnerOf(claims);
    const losers = (claims ?? []).filter((c) => c !== winner && c.desired.serviceKey !== winner!.desired.serviceKey);
    if (!losers.length) {
      this.conflicts.delete(frontend);
      return;
    }
    const { vip, port, proto } = winner!.desired.frontend;
    const message = `${vip} port ${port}/${proto} is already the frontend of ${winner!.desired.serviceKey}`;
    this.conflicts.set(
      frontend,
      losers.map((c) => ({ serviceKey: c.desired.serviceKey, frontend: c.desired.frontend, message })),
    );
  }

  /**
   * The whole desired state: every frontend is compared with what was applied
   * (one JSON signature each) and the changed ones written. For the first apply,
   * adoption after a restart, and a retry after a failed apply.
   */
  apply(services: readonly DesiredService[]): ApplyResult {
    return this.run(() => {
      const byService = new Map<string, DesiredService[]>();
      for (const s of services) {
        const id = serviceOfKey(s.serviceKey).service;
        const list = byService.get(id);
        if (list) list.push(s);
        else byService.set(id, [s]);
      }
      this.claimsOf = new Map();
      this.claimants = new Map();
      this.conflicts = new Map();
      for (const [id, list] of byService) this.claim(id, list);
      const work = new Set([...this.built.keys(), ...this.claimants.keys(), ...this.noId.keys()]);
      for (const frontend of work) this.settleConflict(frontend);
      return work;
    }, true);
  }

  /**
   * A change: the new desired frontends of each Service named (none for one
   * that is gone). Only their frontends, and those an earlier apply left short,
   * are looked at.
   */
  applyServices(changed: ReadonlyMap<string, readonly DesiredService[]>): ApplyResult {
    if (!this.walked) throw new Error('the socket-LB applier has not seen the whole desired state yet: apply() it first');
    return this.run(() => {
      const work = new Set(this.pending);
      for (const [service, list] of changed) {
        for (const f of this.unclaim(service)) work.add(f);
        for (const f of this.claim(service, list)) work.add(f);
      }
      for (const frontend of work) this.settleConflict(frontend);
      return work;
    }, false);
  }

  private run(prepare: () => Set<string>, full: boolean): ApplyResult {
    try {
      const first = this.applyOnce(prepare());
      if (full) this.walked = true;
      // Ids freed by this apply's deletes may be what a left-out Service was waiting for.
      if (!this.noId.size || !first.released) return first;
      const second = this.applyOnce(new Set(this.noId.keys()));
      const errors = [...new Set([...first.errors, ...second.errors])];
      return {
        ...second,
        failed: first.failed + second.failed,
        upserts: first.upserts + second.upserts,
        deletes: first.deletes + second.deletes,
        released: first.released + second.released,
        errors,
      };
    } catch (e) {
      // Not a refused write (those are handled below) but a fault of ours: trust nothing we recorded.
      this.resync();
      throw e;
    }
  }

  private applyOnce(work: Set<string>): ApplyResult {
    const result: ApplyResult = { upserts: 0, deletes: 0, failed: 0, undeleted: 0, errors: [], unplaced: [], released: 0 };
    const errors = new Set<string>();
    // Only frontends whose desired state changed, came or went are encoded,
    // compared and written; the rest cost one JSON signature each.
    const changes: { frontend: string; want: Built; prior?: Built; ok: boolean }[] = [];
    const dropped: Built[] = [];
    const leaving = new Map<string, Built>();
    for (const frontend of work) {
      const s = winnerOf(this.claimants.get(frontend))?.desired;
      const prior = this.built.get(frontend);
      if (!s) {
        this.noId.delete(frontend);
        this.pending.delete(frontend);
        if (prior) leaving.set(frontend, prior);
        continue;
      }
      const signature = JSON.stringify(s);
      if (prior?.signature === signature) {
        this.noId.delete(frontend);
        this.pending.delete(frontend);
        continue;
      }
      let want: Built;
      try {
        want = this.serviceEntries(s, signature);
      } catch (e) {
        if (!(e instanceof IdsExhausted)) throw e;
        this.noId.set(frontend, { serviceKey: s.serviceKey, frontend: s.frontend, message: `not load-balanced by the socket LB: no free id (${e.message})` });
        this.pending.add(frontend);
        // Whatever it held stays as it was, and is retried.
        if (prior) this.built.set(frontend, { ...prior, signature: STALE });
        continue;
      }
      this.noId.delete(frontend);
      this.hold(want, 1);
      changes.push({ frontend, want, prior, ok: true });
    }

    // Make before break: backends exist before slots or Maglev entries name them,
    // and those exist before a master counts them. A frontend any of whose writes
    // the kernel refused goes no further.
    const refused: Record<MapName, Set<string>> = { services: new Set(), backends: new Set(), maglev: new Set() };
    const write = (name: MapName, list: Entry[]) => {
      const mirror = this.mirror[name];
      const changed = new Map<string, Entry>();
      for (const e of list) if (mirror.get(e[0]) !== e[3]) changed.set(e[0], e);
      let todo = [...changed.values()];
      while (todo.length) {
        let written = todo.length;
        try {
          this.maps[name].updateMany(todo.map((e) => [e[1], e[2]]));
        } catch (err) {
          const w = (err as { written?: unknown }).written;
          written = typeof w === 'number' && w >= 0 && w < todo.length ? w : 0;
          errors.add((err as Error).message);
        }
        for (const e of todo.slice(0, written)) this.mirrorSet(name, e[0], e[3]);
        result.upserts += written;
        if (written === todo.length) break;
        // Skip the refused entry and go on: other frontends' entries may still fit.
        refused[name].add(todo[written][0]);
        todo = todo.slice(written + 1);
      }
    };
    const stage = (parts: Part[]) => {
      for (const name of MAPS) {
        const list: Entry[] = [];
        for (const c of changes) if (c.ok) for (const part of parts) if (MAP_OF[part] === name) list.push(...c.want.entries[part]);
        if (list.length) write(name, list);
      }
      for (const c of changes) if (c.ok && parts.some((part) => c.want.entries[part].some(([hex]) => refused[MAP_OF[part]].has(hex)))) c.ok = false;
    };
    stage(['backends']);
    stage(['maglev', 'slots']);
    stage(['masters']);

    for (const c of changes) {
      if (c.ok) {
        this.built.set(c.frontend, c.want);
        this.pending.delete(c.frontend);
        if (c.prior) {
          this.hold(c.prior, -1);
          dropped.push(c.prior);
        }
        continue;
      }
      // Half applied: the old master may still count old slots and backends, the new ones may be partly in.
      result.failed++;
      const held = c.prior ? union(c.prior, c.want) : { ...c.want, signature: STALE };
      this.hold(c.want, -1);
      if (c.prior) this.hold(c.prior, -1);
      this.hold(held, 1);
      this.built.set(c.frontend, held);
      this.pending.add(c.frontend);
    }
    for (const [frontend, prior] of leaving) {
      this.hold(prior, -1);
      dropped.push(prior);
      this.built.delete(frontend);
    }

    // Break: a master goes before the slots and Maglev entries it counted, and those before their backends.
    // After a restart the first clean apply sweeps everything nothing refers to.
    const sweep = !this.swept && result.failed === 0;
    const candidates = (name: MapName, pick: (hex: string) => boolean) => {
      const from = sweep ? this.mirror[name].keys() : [...dropped.flatMap((b) => PARTS.filter((p) => MAP_OF[p] === name).flatMap((p) => b.entries[p].map(([hex]) => hex))), ...this.undeleted[name]];
      return [...new Set(from)].filter(pick);
    };
    const remove = (name: MapName, hex: string): boolean => {
      if (this.refs[name].has(hex) || !this.mirror[name].has(hex)) {
        this.undeleted[name].delete(hex);
        return true;
      }
      try {
        this.maps[name].delete(Buffer.from(hex, 'hex'));
      } catch (err) {
        errors.add((err as Error).message);
        this.undeleted[name].add(hex);
        return false;
      }
      this.mirrorDelete(name, hex);
      this.undeleted[name].delete(hex);
      result.deletes++;
      return true;
    };
    const leavingByMaster = new Map<string, [string, Built]>();
    for (const [frontend, b] of leaving) for (const [hex] of b.entries.masters) leavingByMaster.set(hex, [frontend, b]);
    let mastersStuck = false;
    for (const hex of candidates('services', isMaster)) {
      if (remove('services', hex)) continue;
      // The master still counts its slots and backends: keep them all, and try again next time.
      this.undeleted.services.delete(hex);
      mastersStuck = true;
      const owner = leavingByMaster.get(hex);
      if (owner) {
        const ghost = { ...owner[1], signature: STALE };
        this.hold(ghost, 1);
        this.built.set(owner[0], ghost);
        this.pending.add(owner[0]);
      }
    }
    if (!(sweep && mastersStuck)) {
      for (const hex of candidates('services', (h) => !isMaster(h))) remove('services', hex);
      for (const hex of candidates('maglev', () => true)) remove('maglev', hex);
      for (const hex of candidates('backends', () => true)) remove('backends', hex);
      if (sweep) this.swept = true;
    }
    if (mastersStuck) result.failed++;
    result.undeleted = MAPS.reduce((n, name) => n + this.undeleted[name].size, 0);

    result.released = releaseIds({
      ids: this.ids,
      candidates: this.idCandidates,
      affinity: this.maps.affinity,
      serviceUse: (key, id) => (this.serviceKeyRefs.has(key) ? 'desired' : this.revNatInKernel.has(id) ? 'kernel' : false),
      backendUse: (hex) => (this.refs.backends.has(hex) ? 'desired' : this.mirror.backends.has(hex) ? 'kernel' : false),
      onError: (message) => errors.add(message),
    });
    result.unplaced = [...[...this.conflicts.values()].flat(), ...this.noId.values()];
    result.errors = [...errors];
    return result;
  }
}
