// The socket-LB applier on the real kernel when maps run full and ids run
// short: a refused write leaves Services on their old backends and converges
// once there is room; churn through small id pools keeps applying, and no
// session-affinity entry outlives the ids it names.
import t from 'tap';
import { StableIds } from '../src/ids/stable-ids.js';
import { SockLbApplier } from '../src/redirect/apply.js';
import { MapWriteError, type BpfMap } from '../src/redirect/bpf.js';
import type { DesiredService } from '../src/redirect/desired.js';
import { SockLb } from '../src/redirect/datapath.js';
import { backend, svcKey, svcSlot, u32 } from '../src/redirect/maps.js';
import { netnsWorld } from './helpers/netns.js';

const svc = (vip: string, key: string, backends: [string, number][], affinity = false): DesiredService => ({
  frontend: { vip, port: 80, proto: 'TCP' },
  serviceKey: `default/${key}:80/TCP`,
  backends: backends.map(([ip, port]) => ({ ip, port })),
  maglev: false,
  affinityTimeout: affinity ? 600 : undefined,
});

/** Writes junk entries until the kernel refuses one; returns how many went in. */
function fill(map: BpfMap, entry: (i: number) => [Buffer, Buffer]): number {
  let n = 0;
  for (;;) {
    const batch = Array.from({ length: 65536 }, (_, i) => entry(n + i));
    try {
      map.updateMany(batch);
      n += batch.length;
    } catch (e) {
      if (!(e instanceof MapWriteError)) throw e;
      return n + e.written;
    }
  }
}

async function world(t: Parameters<typeof netnsWorld>[0], addresses: string[], ranges: { services: [number, number]; backends: [number, number] }) {
  const w = await netnsWorld(t, addresses);
  t.teardown(() => SockLb.remove(w.pinDir));
  const lb = SockLb.open({ pinDir: w.pinDir, cgroupDir: w.cgroupDir });
  t.teardown(() => lb.close());
  const ids = { services: new StableIds(undefined, ranges.services), backends: new StableIds(undefined, ranges.backends) };
  return { w, lb, ids, applier: new SockLbApplier(lb.maps, ids) };
}

t.test('full maps: old backends keep serving, the failure is reported, and room makes the next apply converge', async (t) => {
  const ips = ['10.244.5.1', '10.244.5.2', '10.244.5.3', '10.244.5.9'];
  const { w, lb, applier } = await world(t, ips, { services: [1, 65535], backends: [1, 1 << 30] });
  await w.servers({ tcp: ips.map((ip) => ({ ip, port: 8080, name: ip.split('.')[3] })) });
  const web = (n: number) => svc('10.96.0.50', 'web', ips.slice(0, n).map((ip) => [ip, 8080]));
  const fresh = svc('10.96.0.51', 'fresh', [['10.244.5.9', 8080]]);
  const reach = () => {
    const [a, b, c] = w.client([
      { op: 'tcp', host: '10.96.0.50', port: 80, count: 40 },
      { op: 'tcp', host: '10.96.0.51', port: 80, count: 2 },
      { op: 'tcp', host: '10.96.0.52', port: 80, count: 2 },
    ]);
    const seen = (rs: any[]) => [...new Set(rs.map((r) => r.backend ?? 'error'))].sort().join(',');
    return { web: seen(a), fresh: seen(b), half: seen(c) };
  };
  t.match(applier.apply([web(2)]), { failed: 0 });
  t.equal(reach().web, '1,2');

  // Junk backend ids far above the pool's range, so they never meet the applier's.
  const junk = fill(lb.maps.backends, (i) => [u32(2 ** 31 + i), backend('192.0.2.1', 9)]);
  t.ok(junk > 200_000, `the backends map took ${junk} junk entries, then refused`);
  const r = applier.apply([web(3), fresh]);
  t.equal(r.failed, 2, 'both changes need a new backend id and fail');
  t.match(r.errors.join('\n'), /sluice_backends: mapUpdateBatch: .*\(errno 7\)/, 'E2BIG, named with its map');
  t.same(reach(), { web: '1,2', fresh: 'error', half: 'error' }, 'the existing Service still reaches its old backends, every connection');
  t.match(applier.apply([web(3), fresh]), { failed: 2, upserts: 0 }, 'the retry fails the same way, writing nothing');

  for (let i = 0; i < 2; i++) lb.maps.backends.delete(u32(2 ** 31 + i));
  t.match(applier.apply([web(3), fresh]), { failed: 0, undeleted: 0, errors: [] }, 'with room for two backends the same desired state applies');
  t.same(reach(), { web: '1,2,3', fresh: '9', half: 'error' });

  t.test('a Service whose slot fits but whose master does not stays out; others are untouched', async (t) => {
    const n = fill(lb.maps.services, (i) => [svcKey({ vip: `198.18.${(i >> 8) & 255}.${i & 255}`, port: 1 + (i >> 16), proto: 'TCP', slot: 1 }), svcSlot(0)]);
    t.ok(n > 200_000, `the services map took ${n} junk entries`);
    lb.maps.services.delete(svcKey({ vip: '198.18.0.0', port: 1, proto: 'TCP', slot: 1 }));
    const half = svc('10.96.0.52', 'half', [['10.244.5.9', 8080]]);
    const r = applier.apply([web(3), fresh, half]);
    t.match(r, { failed: 1, upserts: 1 }, 'its slot went in (one write), its master was refused');
    t.same(reach(), { web: '1,2,3', fresh: '9', half: 'error' });
    lb.maps.services.delete(svcKey({ vip: '198.18.0.1', port: 1, proto: 'TCP', slot: 1 }));
    t.match(applier.apply([web(3), fresh, half]), { failed: 0, upserts: 1 }, 'one more key of room: only the master is written');
    t.same(reach(), { web: '1,2,3', fresh: '9', half: '9' });
    t.match(applier.apply([web(1), half]), { failed: 0, undeleted: 0 }, 'shrinking and deleting need no room');
    t.same(reach(), { web: '1', fresh: 'error', half: '9' });
  });
});

t.test('churn through small id pools: every apply lands, ids are reused, affinity never outlives its ids', async (t) => {
  const ips = ['10.244.6.1', '10.244.6.2'];
  const ports = [9000, 9001, 9002, 9003, 9004, 9005, 9006, 9007];
  // Three Services live at a time with two backends each: pools of 4 service ids and 8 backend ids.
  const { w, lb, ids, applier } = await world(t, ips, { services: [1, 4], backends: [1, 8] });
  await w.servers({ tcp: ips.flatMap((ip, a) => ports.map((port) => ({ ip, port, name: `${a}-${port}` }))) });
  const service = (i: number) => {
    const a: [string, number] = [ips[0], ports[i % 8]];
    const b: [string, number] = [ips[1], ports[(i * 3 + 1) % 8]];
    return { desired: svc(`10.96.1.${i % 250}`, `churn-${i}`, [a, b], true), names: [`0-${a[1]}`, `1-${b[1]}`].sort().join(',') };
  };
  const ROUNDS = 40;
  let stale = 0;
  let reused = 0;
  const seenIds = new Set<number>();
  for (let i = 0; i < ROUNDS; i++) {
    const live = [i, i + 1, i + 2].map(service);
    const r = applier.apply(live.map((s) => s.desired));
    if (r.failed || r.unplaced.length || r.undeleted) t.fail(`round ${i}: ${JSON.stringify(r)}`);
    for (const s of live) {
      const id = ids.services.peek(s.desired.serviceKey)!;
      if (seenIds.has(id) && i > 0 && s === live[2]) reused++;
      seenIds.add(id);
    }
    // Affinity: a client connects once through each live Service (recording an entry), more often every fifth round.
    const results = w.client(live.map((s) => ({ op: 'tcp', host: s.desired.frontend.vip, port: 80, count: i % 5 === 0 ? 6 : 1 })));
    live.forEach((s, k) => {
      const got = new Set(results[k].map((x: any) => x.backend ?? `error: ${x.error}`));
      if (got.size !== 1 || !s.names.split(',').includes([...got][0] as string)) t.fail(`round ${i}: ${s.desired.frontend.vip} gave ${[...got]} (want one of ${s.names})`);
    });
    const liveIds = new Map(live.map((s) => [ids.services.peek(s.desired.serviceKey)!, s.desired.backends.map((b) => ids.backends.peek(`${b.ip}:${b.port}`))]));
    for (const [k, v] of lb.maps.affinity!.entries()) {
      const backendsOf = liveIds.get(k.readUInt16LE(8));
      if (!backendsOf || !backendsOf.includes(v.readUInt32LE(0))) stale++;
    }
  }
  t.equal(stale, 0, 'every affinity entry names a live Service and one of its backends');
  t.ok(reused >= ROUNDS - 8, `new Services got recycled ids (${reused} of ${ROUNDS - 1} rounds)`);
  t.equal(ids.services.size, 3, 'three service ids in use at the end');
  t.ok(ids.backends.size <= 6, `at most six backend ids in use (${ids.backends.size})`);
  t.equal(lb.maps.services.entries().length, 9, 'three masters and six slots: nothing left behind');
});
