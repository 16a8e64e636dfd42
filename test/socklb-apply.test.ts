// The socket-LB applier's bookkeeping against maps that refuse writes and
// deletes at random (pure, no kernel): after every apply, every master counts
// only slots, Maglev entries and backends that are there; once the maps stop
// refusing, one apply converges on exactly the desired entries, and ids of what
// is gone are back in their pools with no affinity entry still naming them.
// Then, on the kernel's maps through the agent's wiring: changes applied one at
// a time (the model delta) end byte-identical to a full apply of the final
// model, a restart adopts them, and a refused write converges by the retry.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ServiceDatapath } from '../src/agent/service-datapath.js';
import { Model } from '../src/model/model.js';
import type { EndpointSlice, ModelObject, Node, Service } from '../src/model/objects.js';
import { SockLb } from '../src/redirect/datapath.js';
import type { ServiceRedirect } from '../src/translate/output.js';
import { IdsExhausted, StableIds } from '../src/ids/stable-ids.js';
import { SockLbApplier } from '../src/redirect/apply.js';
import { MapWriteError, type MapIo } from '../src/redirect/bpf.js';
import { LB_ALGORITHM_ANNOTATION, type DesiredService } from '../src/redirect/desired.js';
import { backend, MAGLEV_M, maglevKey, SVC_FLAG_MAGLEV, svcKey, u32 } from '../src/redirect/maps.js';
import { netnsWorld, type NetnsWorld } from './helpers/netns.js';

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

// ---- On the kernel's maps, through the agent's wiring (ServiceDatapath): a
// change applied alone against a fresh full apply of the same model.

type Objects = Map<string, ModelObject>;

/** A random cluster's Services, EndpointSlices and this node, edited one object at a time. */
function cluster(rand: () => number) {
  const objects: Objects = new Map();
  const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
  const names = Array.from({ length: 14 }, (_, i) => ({ ns: i % 2 ? 'a' : 'b', name: `s${i}` }));
  const service = (i: number): Service => {
    const { ns, name } = names[i];
    const nodePort = rand() < 0.25;
    const ports: Service['spec']['ports'] = [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080, ...(nodePort ? { nodePort: 30000 + i } : {}) }];
    if (rand() < 0.4) ports.push({ name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 });
    return {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: ns, name, ...(rand() < 0.2 ? { annotations: { [LB_ALGORITHM_ANNOTATION]: 'maglev' } } : {}) },
      spec: {
        type: nodePort ? 'NodePort' : rand() < 0.05 ? 'ExternalName' : 'ClusterIP',
        // Few addresses for many Services: some share a frontend, and one of them is left out.
        clusterIP: `10.96.3.${1 + Math.floor(rand() * 40)}`,
        ports,
        ...(rand() < 0.2 ? { externalIPs: [`203.0.113.${1 + Math.floor(rand() * 3)}`] } : {}),
        ...(rand() < 0.3 ? { internalTrafficPolicy: 'Local' as const } : {}),
        ...(rand() < 0.3 ? { sessionAffinity: 'ClientIP' as const, sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 + Math.floor(rand() * 3) } } } : {}),
      },
    };
  };
  const slice = (k: number): EndpointSlice => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    // A slice can move to another Service: both the old and the new one change.
    metadata: { namespace: (k % 2 ? 'a' : 'b'), name: `slice-${k}`, labels: { 'kubernetes.io/service-name': `s${pick([0, 2, 4, 6, 8, 10, 12].map((x) => x + (k % 2 ? 1 : 0)))}` } },
    addressType: 'IPv4',
    ports: [
      { name: 'http', protocol: 'TCP', port: pick([8080, 8081]) },
      { name: 'dns', protocol: 'UDP', port: 5353 },
    ],
    endpoints: Array.from({ length: Math.floor(rand() * 5) }, () => ({
      addresses: [`10.244.9.${1 + Math.floor(rand() * 80)}`],
      nodeName: pick(['node-1', 'node-2']),
      conditions: { ready: rand() < 0.85 },
    })),
  });
  const node = (): Node => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1' }, status: { addresses: [{ type: 'InternalIP', address: `192.168.77.${1 + Math.floor(rand() * 2)}` }] } });
  const set = (o: ModelObject) => objects.set(`${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`, o);
  for (let i = 0; i < names.length; i++) if (rand() < 0.7) set(service(i));
  for (let k = 0; k < 12; k++) set(slice(k));
  set(node());
  return {
    model: () => Model.from([...objects.values()].map((object) => ({ object }))),
    /** One random edit; unchanged objects keep their identity, as sources hand them out. */
    edit(): string {
      const r = rand();
      if (r < 0.35) {
        const i = Math.floor(rand() * names.length);
        const key = `Service ${names[i].ns}/${names[i].name}`;
        if (objects.has(key) && rand() < 0.3) return (objects.delete(key), `remove ${key}`);
        set(service(i));
        return `set ${key}`;
      }
      if (r < 0.8) {
        const k = Math.floor(rand() * 14);
        const key = `EndpointSlice ${(k % 2 ? 'a' : 'b')}/slice-${k}`;
        if (objects.has(key) && rand() < 0.2) return (objects.delete(key), `remove ${key}`);
        set(slice(k));
        return `set ${key}`;
      }
      if (r < 0.85) return (set(node()), 'node');
      return 'redirects';
    },
  };
}

const opts = (w: NetnsWorld, stateDir: string) => ({ pinDir: w.pinDir, cgroupDir: w.cgroupDir, stateDir, idRanges: { services: [1, 200] as [number, number], backends: [1, 200] as [number, number] } });

/** The maps one full apply of `model` writes into fresh maps, with pools holding the live agent's ids (from its state dir). */
async function reference(t: Test, fresh: NetnsWorld, state: string, model: Model, redirects: ServiceRedirect[]) {
  // The pools save on a microtask.
  await new Promise((r) => setImmediate(r));
  const freshState = mkdtempSync(join(state, 'fresh-'));
  cpSync(join(state, 'live'), freshState, { recursive: true });
  SockLb.remove(fresh.pinDir);
  const ref = new ServiceDatapath(opts(fresh, freshState));
  try {
    t.match(ref.apply(model, redirects, 'node-1'), { failed: 0, undeleted: 0 }, 'the reference applies');
  } finally {
    ref.close();
  }
  return kernelMaps(fresh.pinDir, fresh.cgroupDir);
}

/** The agent's world, one for the reference full applies, and a state dir for both. */
async function twoWorlds(t: Test) {
  const live = await netnsWorld(t, []);
  const fresh = await netnsWorld(t, []);
  t.teardown(() => SockLb.remove(live.pinDir));
  t.teardown(() => SockLb.remove(fresh.pinDir));
  const state = mkdtempSync(join(tmpdir(), 'sluice-socklb-delta-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  return { live, fresh, state };
}

const kernelMaps = (pinDir: string, cgroupDir: string) => {
  // Opening the pins again adopts the maps the agent filled: what a restarted agent would find.
  const lb = SockLb.open({ pinDir, cgroupDir });
  try {
    const dump = (m: MapIo) =>
      m
        .entries()
        .map(([k, v]) => `${hexOf(k)}=${hexOf(v)}`)
        .sort();
    return { services: dump(lb.maps.services), backends: dump(lb.maps.backends), maglev: dump(lb.maps.maglev) };
  } finally {
    lb.close();
  }
};

t.test('kernel maps: random changes applied one by one leave the maps byte-identical to a full apply of the final model; a restart adopts them', async (t) => {
  const { live, fresh, state } = await twoWorlds(t);
  const rand = rng(2026);
  const c = cluster(rand);
  const redirectsOf = (): ServiceRedirect[] =>
    ['a/s1', 'b/s2', 'a/s3', 'b/s4']
      .filter(() => rand() < 0.5)
      .map((service) => ({ service, port: rand() < 0.5 ? 80 : undefined, listener: 'l', proxyPort: 13000 + Math.floor(rand() * 2) }));
  let dp = new ServiceDatapath(opts(live, join(state, 'live')));
  t.teardown(() => dp.close());
  let redirects = redirectsOf();
  let model = c.model();
  t.match(dp.apply(model, redirects, 'node-1'), { failed: 0, undeleted: 0 });
  let bad = 0;
  let conflicts = 0;
  let checkpoints = 0;
  const paths = { full: 0, changes: 0 };
  for (let step = 1; step <= 120; step++) {
    const what = c.edit();
    if (what === 'redirects') redirects = redirectsOf();
    model = c.model();
    const r = dp.apply(model, redirects, 'node-1');
    conflicts += r.unplaced.length;
    if (r.failed || r.undeleted || r.errors.length) {
      bad++;
      t.fail(`step ${step} (${what}): ${JSON.stringify(r)}`);
    }
    if (step % 30) continue;
    checkpoints++;
    const want = await reference(t, fresh, state, model, redirects);
    paths.changes += dp.applies.changes;
    paths.full += dp.applies.full;
    dp.close();
    const got = kernelMaps(live.pinDir, live.cgroupDir);
    t.ok(want.services.length > 20 && want.backends.length > 5, `step ${step}: the model fills the maps (${want.services.length} service entries, ${want.backends.length} backends)`);
    t.same(got, want, `step ${step}: after ${step} changes the maps are what a full apply writes`);
    // A restarted agent over the pinned maps: its full walk finds everything in place, and changes go on from there.
    dp = new ServiceDatapath(opts(live, join(state, 'live')));
    t.match(dp.apply(model, redirects, 'node-1'), { failed: 0, undeleted: 0, upserts: 0, deletes: 0 }, `step ${step}: adoption writes nothing`);
  }
  t.equal(bad, 0, 'every change applied cleanly');
  t.equal(checkpoints, 4);
  t.ok(conflicts > 0, `shared frontends were met and reported (${conflicts} reports)`);
  t.ok(paths.changes >= 90, `changes took the incremental path (${JSON.stringify(paths)}: full walks at start, restarts and node address moves)`);
});

t.test('kernel maps: a change the kernel refuses is retried by a full walk, which converges once there is room', async (t) => {
  const { live, fresh, state } = await twoWorlds(t);
  const c = cluster(rng(77));
  const dp = new ServiceDatapath(opts(live, join(state, 'live')));
  t.teardown(() => dp.close());
  let model = c.model();
  t.match(dp.apply(model, [], 'node-1'), { failed: 0 });
  // A second handle on the pinned maps fills the backends map with junk ids far above the pool's range.
  const lb = SockLb.open({ pinDir: live.pinDir, cgroupDir: live.cgroupDir });
  t.teardown(() => lb.close());
  let junk = 0;
  for (;;) {
    const batch = Array.from({ length: 65536 }, (_, i): [Buffer, Buffer] => [u32(2 ** 31 + junk + i), backend('192.0.2.1', 9)]);
    try {
      lb.maps.backends.updateMany(batch);
      junk += batch.length;
    } catch (e) {
      if (!(e instanceof MapWriteError)) throw e;
      junk += e.written;
      break;
    }
  }
  t.ok(junk > 200_000, `the backends map took ${junk} junk entries, then refused`);
  let failedAt = 0;
  for (let step = 1; step <= 60 && !failedAt; step++) {
    c.edit();
    model = c.model();
    const r = dp.apply(model, [], 'node-1');
    if (r.failed) failedAt = step;
  }
  t.ok(failedAt > 0, `a change needing a new backend was refused (step ${failedAt})`);
  const full = dp.applies.full;
  // Whether it lands depends on what the failed apply's deletes freed; either way it walks.
  dp.apply(model, [], 'node-1');
  t.equal(dp.applies.full, full + 1, 'the retry walked every Service');
  for (let i = 0; i < junk; i++) lb.maps.backends.delete(u32(2 ** 31 + i));
  t.match(dp.apply(model, [], 'node-1'), { failed: 0, undeleted: 0, errors: [] }, 'with room again the retry converges');
  t.same(kernelMaps(live.pinDir, live.cgroupDir), await reference(t, fresh, state, model, []), 'to exactly what a full apply writes');
  const walks = dp.applies.full;
  // A node address move walks everything by design; any other edit must not.
  while (c.edit() === 'node');
  model = c.model();
  t.match(dp.apply(model, [], 'node-1'), { failed: 0 });
  t.equal(dp.applies.full, walks, 'after a clean apply, changes go back to the incremental path');
  t.same(kernelMaps(live.pinDir, live.cgroupDir), await reference(t, fresh, state, model, []), 'and stay exact');
});
