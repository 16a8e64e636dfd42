// Giving service (rev-NAT) and backend ids back to their pools, once nothing
// the kernel holds names them any more.
import type { StableIds } from '../ids/stable-ids.js';
import type { MapIo } from './bpf.js';
import { u32 } from './maps.js';

/** Why an id is not free: a desired frontend refers to it, or only a map entry still waiting to be deleted. */
export type Use = 'desired' | 'kernel' | false;

export interface Release {
  ids: { services: StableIds; backends: StableIds };
  /** Id keys that may have fallen out of use; pruned here. */
  candidates: { services: Set<string>; backends: Set<string> };
  affinity?: MapIo;
  serviceUse(key: string, id: number): Use;
  /** By the backend map's key, the id as little-endian hex. */
  backendUse(hex: string): Use;
  onError(message: string): void;
}

/**
 * Releases the candidates nothing uses; returns how many. The services and
 * Maglev maps no longer name them (the caller checked), but the affinity map
 * may: (netns, rev-NAT id) -> backend id entries outlive their Service in the
 * LRU, and a reused id would send a client to a stranger's backend. Those
 * entries are deleted first, and an id whose entries could not be deleted
 * stays taken. The pools' forward-moving cursors keep a released id from
 * coming back soon, which covers a connect that read the old master just
 * before it went and records affinity just after this sweep.
 */
export function releaseIds(r: Release): number {
  const free = (pool: StableIds, keys: Set<string>, use: (key: string, id: number) => Use) => {
    const out = new Map<number, string>();
    for (const key of keys) {
      const id = pool.peek(key);
      const u = id === undefined ? 'desired' : use(key, id);
      if (u !== 'kernel') keys.delete(key);
      if (u === false) out.set(id!, key);
    }
    return out;
  };
  const services = free(r.ids.services, r.candidates.services, r.serviceUse);
  const backends = free(r.ids.backends, r.candidates.backends, (_key, id) => r.backendUse(u32(id).toString('hex')));
  if (!services.size && !backends.size) return 0;
  if (r.affinity) {
    let entries: [Buffer, Buffer][];
    try {
      entries = r.affinity.entries();
    } catch (e) {
      r.onError(`reading ${r.affinity.name}: ${(e as Error).message}`);
      for (const key of services.values()) r.candidates.services.add(key);
      for (const key of backends.values()) r.candidates.backends.add(key);
      return 0;
    }
    // Key: netns cookie (u64), rev-NAT id (u16 LE at byte 8). Value: backend id (u32 LE at byte 0).
    for (const [k, v] of entries) {
      const revNat = k.readUInt16LE(8);
      const backendId = v.readUInt32LE(0);
      if (!services.has(revNat) && !backends.has(backendId)) continue;
      try {
        r.affinity.delete(k);
      } catch (e) {
        r.onError((e as Error).message);
        for (const [pool, taken, id] of [[services, r.candidates.services, revNat], [backends, r.candidates.backends, backendId]] as const) {
          const key = pool.get(id);
          if (key === undefined) continue;
          pool.delete(id);
          taken.add(key);
        }
      }
    }
  }
  for (const key of services.values()) r.ids.services.release(key);
  for (const key of backends.values()) r.ids.backends.release(key);
  return services.size + backends.size;
}
