// Diff-based apply: encode the map entries of each frontend whose desired state
// changed, compare them with what the maps hold, and write only the difference,
// in an order that never leaves a service pointing at a slot or backend that is
// not there yet. Shared entries (backends, Maglev tables) are reference counted.
import { StableIds } from '../agent/stable-ids.js';
import type { BpfMap } from './bpf.js';
import { maglevTable, type DesiredService } from './desired.js';
import { backend, MAGLEV_M, maglevKey, SVC_FLAG_AFFINITY, SVC_FLAG_L7, SVC_FLAG_MAGLEV, svcKey, svcMaster, svcSlot, u32 } from './maps.js';

export interface SockLbMaps {
  services: BpfMap;
  backends: BpfMap;
  maglev: BpfMap;
}

type Part = 'masters' | 'slots' | 'backends' | 'maglev';
/** One service's entries, as [hex key, key, value, hex value]. */
type ServiceEntries = Record<Part, [string, Buffer, Buffer, string][]>;

export interface ApplyStats {
  upserts: number;
  deletes: number;
}

const MAP_OF: Record<Part, keyof SockLbMaps> = { masters: 'services', slots: 'services', backends: 'backends', maglev: 'maglev' };
const PARTS = Object.keys(MAP_OF) as Part[];

function entry(k: Buffer, v: Buffer): [string, Buffer, Buffer, string] {
  return [k.toString('hex'), k, v, v.toString('hex')];
}

/** The kernel maps as last written (or, after a restart, as found), mirrored to diff against. */
export class SockLbApplier {
  private mirror: Record<keyof SockLbMaps, Map<string, string>>;
  /** Each frontend's entries, with the desired service (as JSON) they were built from. */
  private built = new Map<string, { signature: string; entries: ServiceEntries }>();
  /** How many frontends' entries include each key: backends and Maglev tables are shared. */
  private refs: Record<keyof SockLbMaps, Map<string, number>> = { services: new Map(), backends: new Map(), maglev: new Map() };
  /** After a restart the maps hold whatever the last agent left: the first apply sweeps them whole. */
  private swept = false;

  constructor(
    private readonly maps: SockLbMaps,
    private readonly ids: { services: StableIds; backends: StableIds },
  ) {
    const read = (m: BpfMap) => new Map(m.entries().map(([k, v]) => [k.toString('hex'), v.toString('hex')]));
    this.mirror = { services: read(maps.services), backends: read(maps.backends), maglev: read(maps.maglev) };
  }

  private serviceEntries(s: DesiredService): ServiceEntries {
    const out: ServiceEntries = { masters: [], slots: [], backends: [], maglev: [] };
    const revNatId = this.ids.services.idFor(s.serviceKey);
    const backendIds = s.backends.map((b) => {
      const id = this.ids.backends.idFor(`${b.ip}:${b.port}`);
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
    return out;
  }

  apply(services: DesiredService[]): ApplyStats {
    // Diff by frontend: only frontends whose desired state changed, came or went are
    // encoded, compared and written; the rest cost one JSON signature each.
    const next = new Map<string, { signature: string; entries: ServiceEntries }>();
    const added: ServiceEntries[] = [];
    const dropped: ServiceEntries[] = [];
    for (const s of services) {
      const { vip, port, proto } = s.frontend;
      const frontend = `${vip}|${port}|${proto}`;
      const signature = JSON.stringify(s);
      const prior = this.built.get(frontend);
      if (prior?.signature === signature) {
        next.set(frontend, prior);
        continue;
      }
      const entries = this.serviceEntries(s);
      next.set(frontend, { signature, entries });
      added.push(entries);
      if (prior) dropped.push(prior.entries);
    }
    for (const [frontend, prior] of this.built) if (!next.has(frontend)) dropped.push(prior.entries);
    this.built = next;

    const count = (list: ServiceEntries[], by: 1 | -1) => {
      for (const e of list)
        for (const part of PARTS) {
          const refs = this.refs[MAP_OF[part]];
          for (const [hex] of e[part]) {
            const n = (refs.get(hex) ?? 0) + by;
            if (n > 0) refs.set(hex, n);
            else refs.delete(hex);
          }
        }
    };
    count(added, 1);
    count(dropped, -1);

    let upserts = 0;
    let deletes = 0;
    const upsert = (part: Part) => {
      const name = MAP_OF[part];
      const mirror = this.mirror[name];
      const changed = new Map<string, [Buffer, Buffer, string]>();
      for (const e of added) for (const [hex, k, v, vhex] of e[part]) if (mirror.get(hex) !== vhex) changed.set(hex, [k, v, vhex]);
      this.maps[name].updateMany([...changed.values()].map(([k, v]) => [k, v]));
      for (const [hex, [, , vhex]] of changed) mirror.set(hex, vhex);
      upserts += changed.size;
    };
    const remove = (part: Part | 'all', name: keyof SockLbMaps) => {
      const refs = this.refs[name];
      const candidates = !this.swept ? [...this.mirror[name].keys()] : dropped.flatMap((e) => (part === 'all' ? [...e.masters, ...e.slots] : e[part]).map(([hex]) => hex));
      for (const hex of candidates) {
        if (refs.has(hex) || !this.mirror[name].has(hex)) continue;
        if (part === 'masters' && !isMaster(hex)) continue;
        this.maps[name].delete(Buffer.from(hex, 'hex'));
        this.mirror[name].delete(hex);
        deletes++;
      }
    };
    // Make before break: backends and slots exist before a master counts them;
    // a master shrinks or goes before the slots and backends it counted.
    upsert('backends');
    upsert('maglev');
    upsert('slots');
    upsert('masters');
    remove('masters', 'services');
    remove('all', 'services');
    remove('maglev', 'maglev');
    remove('backends', 'backends');
    this.swept = true;
    return { upserts, deletes };
  }
}

/** Slot 0 (the little-endian u16 at byte 20 of the key) is a service's master entry. */
function isMaster(hex: string): boolean {
  return hex.slice(40, 44) === '0000';
}
