// Diff-based apply: compute every map entry the desired services need, compare
// with what the maps hold, and write only the difference, in an order that
// never leaves a service pointing at a slot or backend that is not there yet.
import { StableIds } from '../agent/stable-ids.js';
import type { BpfMap } from './bpf.js';
import { maglevTable, type DesiredService } from './desired.js';
import { backend, MAGLEV_M, maglevKey, SVC_FLAG_AFFINITY, SVC_FLAG_L7, SVC_FLAG_MAGLEV, svcKey, svcMaster, svcSlot, u32 } from './maps.js';

export interface SockLbMaps {
  services: BpfMap;
  backends: BpfMap;
  maglev: BpfMap;
}

/** hex key -> [key, value, hex value]. */
type Entries = Map<string, [Buffer, Buffer, string]>;
type Part = 'masters' | 'slots' | 'backends' | 'maglev';
/** One service's entries, as [hex key, key, value, hex value]. */
type ServiceEntries = Record<Part, [string, Buffer, Buffer, string][]>;

export interface ApplyStats {
  upserts: number;
  deletes: number;
}

const MAP_OF: Record<Part, keyof SockLbMaps> = { masters: 'services', slots: 'services', backends: 'backends', maglev: 'maglev' };

function entry(k: Buffer, v: Buffer): [string, Buffer, Buffer, string] {
  return [k.toString('hex'), k, v, v.toString('hex')];
}

/** The kernel maps as last written (or, after a restart, as found), mirrored to diff against. */
export class SockLbApplier {
  private mirror: Record<keyof SockLbMaps, Map<string, string>>;
  /**
   * Each frontend's entries by the desired service they were built from: encoding
   * 189,000 entries anew on every change would cost a second at 10,000 services.
   */
  private built = new Map<string, { signature: string; entries: ServiceEntries }>();

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

  private desiredEntries(services: DesiredService[]): Record<Part, Entries> {
    const out: Record<Part, Entries> = { masters: new Map(), slots: new Map(), backends: new Map(), maglev: new Map() };
    const built = new Map<string, { signature: string; entries: ServiceEntries }>();
    for (const s of services) {
      const { vip, port, proto } = s.frontend;
      const frontend = `${vip}|${port}|${proto}`;
      const signature = JSON.stringify(s);
      const prior = this.built.get(frontend);
      const entries = prior?.signature === signature ? prior.entries : this.serviceEntries(s);
      built.set(frontend, { signature, entries });
      for (const part of Object.keys(out) as Part[]) for (const [hex, k, v, vhex] of entries[part]) out[part].set(hex, [k, v, vhex]);
    }
    this.built = built;
    return out;
  }

  apply(services: DesiredService[]): ApplyStats {
    const want = this.desiredEntries(services);
    let upserts = 0;
    let deletes = 0;
    const upsert = (part: Part) => {
      const mirror = this.mirror[MAP_OF[part]];
      const changed = [...want[part]].filter(([hex, [, , vhex]]) => mirror.get(hex) !== vhex);
      this.maps[MAP_OF[part]].updateMany(changed.map(([, [k, v]]) => [k, v]));
      for (const [hex, [, , vhex]] of changed) mirror.set(hex, vhex);
      upserts += changed.length;
    };
    const remove = (name: keyof SockLbMaps, keep: (hex: string) => boolean) => {
      for (const hex of [...this.mirror[name].keys()]) {
        if (keep(hex)) continue;
        this.maps[name].delete(Buffer.from(hex, 'hex'));
        this.mirror[name].delete(hex);
        deletes++;
      }
    };
    const wantedService = (hex: string) => want.masters.has(hex) || want.slots.has(hex);
    // Make before break: backends and slots exist before a master counts them;
    // a master shrinks or goes before the slots and backends it counted.
    upsert('backends');
    upsert('maglev');
    upsert('slots');
    upsert('masters');
    remove('services', (hex) => wantedService(hex) || !isMaster(hex));
    remove('services', wantedService);
    remove('maglev', (hex) => want.maglev.has(hex));
    remove('backends', (hex) => want.backends.has(hex));
    return { upserts, deletes };
  }
}

/** Slot 0 (the little-endian u16 at byte 20 of the key) is a service's master entry. */
function isMaster(hex: string): boolean {
  return hex.slice(40, 44) === '0000';
}
