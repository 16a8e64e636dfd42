// The socket-LB applier's bookkeeping against maps that refuse writes and
// deletes at random (pure, no kernel): after every apply, every master counts
// only slots, Maglev entries and backends that are there; once the maps stop
// refusing, one apply converges on exactly the desired entries, and ids of what
// is gone are back in their pools with no affinity entry still naming them.
import t, { type Test } from 'tap';
import { IdsExhausted, StableIds } from '../src/ids/stable-ids.js';
import { SockLbApplier } from '../src/redirect/apply.js';
import { MapWriteError, type MapIo } from '../src/redirect/bpf.js';
import type { DesiredService } from '../src/redirect/desired.js';
import { MAGLEV_M, maglevKey, SVC_FLAG_MAGLEV, svcKey } from '../src/redirect/maps.js';

class FakeMap implements MapIo {
  readonly data = new Map<string, Buffer>();
  refuseWrite = () => false;
  refuseDelete = () => false;
  constructor(
    readonly name: string,
    public capacity = Infinity,
  ) {}

  updateMany(entries: [Buffer, Buffer][]): void {
    entries.forEach(([k, v], i) => {
      const hex = k.toString('hex');
      if (this.refuseWrite() || (!this.data.has(hex) && this.data.size >= this.capacity)) throw new MapWriteError(this.name, i, new Error('Argument list too long (errno 7)'));
      this.data.set(hex, Buffer.from(v));
    });
  }

  delete(key: Buffer): boolean {
    if (this.refuseDelete()) throw new Error(`${this.name}: mapDelete: Device or resource busy (errno 16)`);
    return this.data.delete(key.toString('hex'));
  }

  entries(): [Buffer, Buffer][] {
    return [...this.data].map(([h, v]) => [Buffer.from(h, 'hex'), v]);
  }
}

function world(ranges: { services?: [number, number]; backends?: [number, number] } = {}) {
  const maps = { services: new FakeMap('sluice_services'), backends: new FakeMap('sluice_backends'), maglev: new FakeMap('sluice_maglev'), affinity: new FakeMap('sluice_affinity') };
  const ids = { services: new StableIds(undefined, ranges.services ?? [1, 65535]), backends: new StableIds(undefined, ranges.backends ?? [1, 1 << 30]) };
  return { maps, ids, applier: new SockLbApplier(maps, ids) };
}

type World = ReturnType<typeof world>;

const svc = (n: number, backends: number[], opts: { maglev?: boolean; affinity?: boolean } = {}): DesiredService => ({
  frontend: { vip: `10.96.0.${n}`, port: 80, proto: 'TCP' },
  serviceKey: `default/s${n}:80/TCP`,
  backends: backends.map((b) => ({ ip: `10.244.0.${b}`, port: 8080 })),
  maglev: opts.maglev ?? false,
  affinityTimeout: opts.affinity ? 60 : undefined,
});

const hexOf = (b: Buffer) => b.toString('hex');
const backendAt = (w: World, id: number) => {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(id);
  const v = w.maps.backends.data.get(hexOf(k));
  return v && `${v.subarray(0, 4).join('.')}:${v.readUInt16BE(16)}`;
};

/** What a connect() could meet: every master counts slots (or a Maglev table) whose backends exist. */
function dangling(w: World): string[] {
  const out: string[] = [];
  for (const [hex, v] of w.maps.services.data) {
    if (hex.slice(40, 44) !== '0000') continue;
    const count = v.readUInt16LE(4);
    const revNat = v.readUInt16LE(6);
    const key = Buffer.from(hex, 'hex');
    for (let i = 1; i <= count; i++) {
      key.writeUInt16LE(i, 20);
      const slot = w.maps.services.data.get(hexOf(key));
      if (!slot) out.push(`${hex}: slot ${i} of ${count} missing`);
      else if (!backendAt(w, slot.readUInt32LE(0))) out.push(`${hex}: slot ${i} names missing backend ${slot.readUInt32LE(0)}`);
    }
    if (v.readUInt8(10) & SVC_FLAG_MAGLEV && count > 0)
      for (let i = 0; i < MAGLEV_M; i++) {
        const id = w.maps.maglev.data.get(hexOf(maglevKey(revNat, i)));
        if (id === undefined || !backendAt(w, id.readUInt32LE(0))) out.push(`${hex}: maglev ${i} of rev-NAT ${revNat} dangles`);
      }
  }
  return out;
}

/** Exactly the desired entries and nothing else, and pools holding only what is in use. */
function converged(t: Test, w: World, desired: DesiredService[]): void {
  const slots = desired.reduce((n, s) => n + 1 + s.backends.length, 0);
  const backends = new Set(desired.flatMap((s) => s.backends.map((b) => `${b.ip}:${b.port}`)));
  const maglev = desired.filter((s) => s.maglev && s.backends.length).length * MAGLEV_M;
  const wrong = desired.filter((s) => {
    const base = { vip: s.frontend.vip, port: s.frontend.port, proto: s.frontend.proto };
    const master = w.maps.services.data.get(hexOf(svcKey({ ...base, slot: 0 })));
    if (!master || master.readUInt16LE(4) !== s.backends.length || master.readUInt16LE(6) !== w.ids.services.peek(s.serviceKey)) return true;
    return s.backends.some((b, i) => backendAt(w, w.maps.services.data.get(hexOf(svcKey({ ...base, slot: i + 1 })))!.readUInt32LE(0)) !== `${b.ip}:${b.port}`);
  });
  t.same(wrong.map((s) => s.serviceKey), [], 'every frontend holds its desired backends, in order');
  t.same([w.maps.services.data.size, w.maps.backends.data.size, w.maps.maglev.data.size], [slots, backends.size, maglev], 'and the maps hold nothing else');
  t.same([w.ids.services.size, w.ids.backends.size], [new Set(desired.map((s) => s.serviceKey)).size, backends.size], 'the pools hold only ids in use');
}

function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

t.test('a refused write leaves the old entries serving, is reported, and the next apply converges', async (t) => {
  const w = world();
  const before = [svc(1, [1, 2])];
  t.match(w.applier.apply(before), { failed: 0, errors: [] });
  w.maps.backends.capacity = w.maps.backends.data.size;
  const after = [svc(1, [1, 2, 3]), svc(2, [4])];
  const r = w.applier.apply(after);
  t.equal(r.failed, 2, 'both frontends that needed a new backend failed');
  t.match(r.errors, [/sluice_backends: Argument list too long/], 'with the kernel error');
  t.same(dangling(w), [], 'nothing dangles');
  t.equal(w.maps.services.data.get(hexOf(svcKey({ vip: '10.96.0.1', port: 80, proto: 'TCP', slot: 0 })))!.readUInt16LE(4), 2, 'the old master still counts two backends');
  t.notOk(w.maps.services.data.has(hexOf(svcKey({ vip: '10.96.0.2', port: 80, proto: 'TCP', slot: 0 }))), 'the new Service has no master');
  t.match(w.applier.apply(after), { failed: 2, upserts: 0 }, 'still failing while the map is full, writing nothing twice');
  w.maps.backends.capacity = Infinity;
  t.match(w.applier.apply(after), { failed: 0, undeleted: 0, errors: [] }, 'room again: the same desired state applies with no model change');
  converged(t, w, after);
});

t.test('a batch refused halfway: the master never counts the slot that did not make it', async (t) => {
  const w = world();
  w.applier.apply([svc(1, [1, 2])]);
  // Room for two more keys: slot 3 and Service 2's slot fit, its master (written last) does not.
  w.maps.services.capacity = w.maps.services.data.size + 2;
  const r = w.applier.apply([svc(1, [1, 2, 3]), svc(2, [4])]);
  t.equal(r.failed, 1);
  t.same(dangling(w), []);
  t.equal(w.maps.services.data.get(hexOf(svcKey({ vip: '10.96.0.1', port: 80, proto: 'TCP', slot: 0 })))!.readUInt16LE(4), 3, 'Service 1 grew');
  t.equal(w.maps.services.data.size, 5, 'Service 2 has its slot but no master');
  w.maps.services.capacity = Infinity;
  w.applier.apply([svc(1, [1, 2, 3])]);
  converged(t, w, [svc(1, [1, 2, 3])]);
});

t.test('random refusals over a long churn: never dangling, always converging, pools never leak', async (t) => {
  const w = world({ services: [1, 24], backends: [1, 40] });
  const rand = rng(13);
  let failing = true;
  for (const m of Object.values(w.maps)) {
    m.refuseWrite = () => failing && rand() < 0.08;
    m.refuseDelete = () => failing && rand() < 0.08;
  }
  // Affinity entries the BPF side would write, with whose ids they were written under.
  const written = new Map<string, { service: string; backend: string }>();
  let failures = 0;
  let bad = 0;
  for (let step = 0; step < 400; step++) {
    const desired: DesiredService[] = [];
    for (let n = 1; n <= 12; n++) {
      if (rand() < 0.35) continue;
      const backends = [...new Set(Array.from({ length: Math.floor(rand() * 4) }, () => 1 + Math.floor(rand() * 16)))];
      // Service numbers drift with the step so service keys come and go, not just their backends.
      desired.push(svc(n + 12 * (Math.floor(step / 25) % 3), backends, { maglev: rand() < 0.3, affinity: rand() < 0.5 }));
    }
    failing = step % 10 !== 9;
    const r = w.applier.apply(desired);
    failures += r.failed;
    const d = dangling(w);
    if (d.length) {
      bad++;
      t.fail(`step ${step}: ${d.slice(0, 3).join('; ')}`);
    }
    if (!failing) {
      t.match(r, { failed: 0, undeleted: 0, unplaced: [] }, `step ${step}: converged in one apply once nothing is refused`);
      converged(t, w, desired);
    }
    // Any affinity entry left must still name the Service and backend it was written for.
    for (const [hex, v] of w.maps.affinity.data) {
      const was = written.get(hex + v.toString('hex'));
      const revNat = Buffer.from(hex, 'hex').readUInt16LE(8);
      if (was && (w.ids.services.peek(was.service) !== revNat || w.ids.backends.peek(was.backend) !== v.readUInt32LE(0))) {
        bad++;
        t.fail(`step ${step}: affinity entry for ${was.service} outlived its ids`);
      }
    }
    for (const s of desired) {
      const revNat = w.ids.services.peek(s.serviceKey);
      const b = s.backends[0];
      const id = b && w.ids.backends.peek(`${b.ip}:${b.port}`);
      if (revNat === undefined || !id) continue;
      const k = Buffer.alloc(16);
      k.writeBigUInt64LE(BigInt(1 + (step % 3)));
      k.writeUInt16LE(revNat, 8);
      const v = Buffer.alloc(8);
      v.writeUInt32LE(id);
      w.maps.affinity.data.set(hexOf(k), v);
      written.set(hexOf(k) + hexOf(v), { service: s.serviceKey, backend: `${b.ip}:${b.port}` });
    }
  }
  t.ok(failures > 50, `refusals did hit applies (${failures} failed frontends)`);
  t.equal(bad, 0, 'no step left a dangling entry or a stale affinity entry');
});

t.test('exhausted service ids: the Service is left out with a reason, the rest applies, and it goes in once an id frees', async (t) => {
  const w = world({ services: [1, 3] });
  const four = [1, 2, 3, 4].map((n) => svc(n, [n]));
  const r = w.applier.apply(four);
  t.match(r, { failed: 0, unplaced: [{ serviceKey: 'default/s4:80/TCP', message: /no free id \(range 1-3 is exhausted/ }] });
  t.same(dangling(w), []);
  converged(t, w, four.slice(0, 3));
  const next = [svc(2, [2]), svc(3, [3]), svc(4, [4])];
  t.match(w.applier.apply(next), { failed: 0, unplaced: [] }, 'deleting Service 1 frees its id within the same apply');
  converged(t, w, next);
  const pool = new StableIds(undefined, [1, 1]);
  pool.idFor('a');
  let thrown: unknown;
  try {
    pool.idFor('b');
  } catch (e) {
    thrown = e;
  }
  t.ok(thrown instanceof IdsExhausted, 'a full pool throws IdsExhausted, which callers turn into issues');
});

t.test('released ids come back last: the cursor moves forward through the range', async (t) => {
  const pool = new StableIds(undefined, [1, 5]);
  t.same(['a', 'b', 'c'].map((k) => pool.idFor(k)), [1, 2, 3]);
  pool.release('a');
  t.equal(pool.idFor('d'), 4, 'not the id just released');
  t.equal(pool.idFor('e'), 5);
  t.equal(pool.idFor('f'), 1, 'wrapping around, the oldest free id');
});
