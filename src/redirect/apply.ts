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

type Entries = Map<string, [Buffer, Buffer]>;

export interface ApplyStats {
  upserts: number;
  deletes: number;
}

function put(m: Entries, k: Buffer, v: Buffer): void {
  m.set(k.toString('hex'), [k, v]);
}

/** The kernel maps as last written (or, after a restart, as found), mirrored to diff against. */
export class SockLbApplier {
  private mirror: Record<keyof SockLbMaps, Map<string, string>>;

  constructor(
    private readonly maps: SockLbMaps,
    private readonly ids: { services: StableIds; backends: StableIds },
  ) {
    const read = (m: BpfMap) => new Map(m.entries().map(([k, v]) => [k.toString('hex'), v.toString('hex')]));
    this.mirror = { services: read(maps.services), backends: read(maps.backends), maglev: read(maps.maglev) };
  }

  private desiredEntries(services: DesiredService[]): Record<keyof SockLbMaps, { masters: Entries; rest: Entries }> {
    const out = { services: { masters: new Map(), rest: new Map() }, backends: { masters: new Map(), rest: new Map() }, maglev: { masters: new Map(), rest: new Map() } } as Record<
      keyof SockLbMaps,
      { masters: Entries; rest: Entries }
    >;
    for (const s of services) {
      const revNatId = this.ids.services.idFor(s.serviceKey);
      const backendIds = s.backends.map((b) => {
        const id = this.ids.backends.idFor(`${b.ip}:${b.port}`);
        put(out.backends.rest, u32(id), backend(b.ip, b.port));
        return id;
      });
      const l7 = s.l7Port !== undefined;
      const flags = (s.affinityTimeout !== undefined ? SVC_FLAG_AFFINITY : 0) | (s.maglev ? SVC_FLAG_MAGLEV : 0) | (l7 ? SVC_FLAG_L7 : 0);
      const base = { vip: s.frontend.vip, port: s.frontend.port, proto: s.frontend.proto };
      put(out.services.masters, svcKey({ ...base, slot: 0 }), svcMaster({ count: backendIds.length, revNatId, l7Port: s.l7Port ?? 0, flags, affinityTimeout: s.affinityTimeout ?? 0 }));
      backendIds.forEach((id, i) => put(out.services.rest, svcKey({ ...base, slot: i + 1 }), svcSlot(id)));
      if (s.maglev && !l7)
        maglevTable(s.backends.map((b) => `${b.ip}:${b.port}`), MAGLEV_M).forEach((bi, index) => put(out.maglev.rest, maglevKey(revNatId, index), u32(backendIds[bi])));
    }
    return out;
  }

  apply(services: DesiredService[]): ApplyStats {
    const want = this.desiredEntries(services);
    let upserts = 0;
    let deletes = 0;
    const upsert = (name: keyof SockLbMaps, entries: Entries) => {
      const changed = [...entries].filter(([hex, [, v]]) => this.mirror[name].get(hex) !== v.toString('hex')).map(([, e]) => e);
      this.maps[name].updateMany(changed);
      for (const [k, v] of changed) this.mirror[name].set(k.toString('hex'), v.toString('hex'));
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
    // Make before break: backends and slots exist before a master counts them;
    // a master shrinks or goes before the slots and backends it counted.
    upsert('backends', want.backends.rest);
    upsert('maglev', want.maglev.rest);
    upsert('services', want.services.rest);
    upsert('services', want.services.masters);
    remove('services', (hex) => want.services.masters.has(hex) || want.services.rest.has(hex) || !isMaster(hex));
    remove('services', (hex) => want.services.masters.has(hex) || want.services.rest.has(hex));
    remove('maglev', (hex) => want.maglev.rest.has(hex));
    remove('backends', (hex) => want.backends.rest.has(hex));
    return { upserts, deletes };
  }
}

/** Slot 0 (the little-endian u16 at byte 20 of the key) is a service's master entry. */
function isMaster(hex: string): boolean {
  return hex.slice(40, 44) === '0000';
}
