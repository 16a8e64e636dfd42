// ADS protocol details, driven by a bare gRPC client against the real server.
import t from 'tap';
import { anyFromJson, unpackAny, type Any } from '../src/proto/any.js';
import { TypeUrl } from '../src/resources/types.js';
import { Snapshot } from '../src/xds/snapshot.js';
import { ANY_NODE, SnapshotCache } from '../src/xds/snapshot-cache.js';
import { XdsServer } from '../src/xds/server.js';
import { silentLogger } from '../src/log.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adsClient, delta, deltaRequest, request, sotw } from './helpers/ads-client.js';
import { edsCluster, endpoints, listener, route } from './helpers/resources.js';

const node = { id: 'raw' };

async function serve(t: Tap.Test) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-proto-'));
  const cache = new SnapshotCache();
  const server = new XdsServer({ cache, log: silentLogger, socketPath: join(dir, 'xds.sock') });
  await server.start();
  t.teardown(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const set = (...docs: object[]) => cache.setSnapshot(ANY_NODE, Snapshot.fromAnys(docs.map((d) => anyFromJson(d))));
  return { cache, set, client: adsClient(t, join(dir, 'xds.sock')) };
}

const names = (r: { resources: { typeUrl: string; value: Uint8Array }[] }) =>
  r.resources.map((a) => {
    const { name, clusterName } = (anyFromJsonName as any)(a);
    return name ?? clusterName;
  });
import { unpackAny } from '../src/proto/any.js';
const anyFromJsonName = (a: any) => unpackAny<any>(a).message;
const typeOf = (r: { typeUrl: string }) => r.typeUrl.split('.').pop();

t.test('sotw: a named resource that appears after it was requested is pushed', async (t) => {
  const { set, client } = await serve(t);
  set(edsCluster('a'), endpoints('a', [1001]));
  const s = sotw(t, client);
  s.send(request({ node, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a', 'late'] }));
  const r1 = await s.nth(1);
  t.same(names(r1), ['a'], 'only what exists');
  s.send(request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a', 'late'], versionInfo: r1.versionInfo, responseNonce: r1.nonce }));
  set(edsCluster('a'), endpoints('a', [1001]), endpoints('late', [1002]), endpoints('unrequested', [1003]));
  const r2 = await s.nth(2);
  t.same(names(r2).sort(), ['a', 'late'], 'the late resource is pushed, the unrequested one is not');
});

t.test('sotw: make-before-break order, removals last, NACKed version not resent', async (t) => {
  const { set, client, cache } = await serve(t);
  set(listener('l', 1, 'r'), route('r', 'old'), edsCluster('old'), endpoints('old', [1]));
  const s = sotw(t, client);
  for (const typeUrl of [TypeUrl.Cluster, TypeUrl.Listener]) s.send(request({ node, typeUrl }));
  await s.nth(2);
  s.send(request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['old', 'new'] }));
  s.send(request({ typeUrl: TypeUrl.RouteConfiguration, resourceNames: ['r'] }));
  await s.nth(4);
  for (const r of s.received) s.send(request({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce, resourceNames: r.typeUrl === TypeUrl.ClusterLoadAssignment ? ['old', 'new'] : r.typeUrl === TypeUrl.RouteConfiguration ? ['r'] : [] }));
  const v = set(listener('l', 2, 'r'), route('r', 'new'), edsCluster('new'), endpoints('new', [2]));
  const upserts = [await s.nth(5), await s.nth(6), await s.nth(7), await s.nth(8)];
  await new Promise((r) => setTimeout(r, 200));
  t.equal(s.received.length, 8, 'the removal waits: one CDS response in flight at a time');
  s.send(request({ typeUrl: TypeUrl.Cluster, versionInfo: upserts[0].versionInfo, responseNonce: upserts[0].nonce }));
  const got = [...upserts, await s.nth(9)];
  t.same(got.map(typeOf), ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration', 'Cluster'], 'CDS, EDS, LDS, RDS, then the removal');
  t.same(names(got[0]).sort(), ['new', 'old'], 'the old cluster stays until routes have moved');
  t.same(names(got[4]), ['new'], 'then it goes');
  t.ok(got.every((r) => r.versionInfo === String(v)));

  // NACK the final CDS response: it must not come back until something changes.
  const wait = cache.waitForAck('raw', v, 3000);
  s.send(request({ typeUrl: TypeUrl.Cluster, versionInfo: '1', responseNonce: got[4].nonce, errorDetail: { code: 3, message: 'bad cluster', details: [] } }));
  await t.rejects(wait, /raw rejected type.googleapis.com\/envoy.config.cluster.v3.Cluster .*bad cluster/);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(s.received.length, 9, 'no resend of the rejected version');
});

t.test('delta: reconnect with initial_resource_versions gets only what changed', async (t) => {
  const { set, client } = await serve(t);
  set(edsCluster('keep'), edsCluster('change'), edsCluster('drop'));
  const d1 = delta(t, client);
  d1.send(deltaRequest({ node, typeUrl: TypeUrl.Cluster }));
  const first = await d1.nth(1);
  t.same(first.resources.map((r) => r.name).sort(), ['change', 'drop', 'keep'], 'wildcard gets everything');
  const versions = Object.fromEntries(first.resources.map((r) => [r.name, r.version]));
  d1.close();

  set(edsCluster('keep'), { ...(edsCluster('change') as object), connect_timeout: '3s' }, edsCluster('added'));
  const d2 = delta(t, client);
  d2.send(deltaRequest({ node, typeUrl: TypeUrl.Cluster, initialResourceVersions: versions }));
  const up = await d2.nth(1);
  t.same(up.resources.map((r) => r.name).sort(), ['added', 'change'], 'only changed and new resources are sent');
  d2.send(deltaRequest({ typeUrl: TypeUrl.Cluster, responseNonce: up.nonce }));
  const rm = await d2.nth(2);
  t.same(rm.removedResources, ['drop'], 'what the client held but is gone is removed');
});

t.test('waitForAck resolves on ACK of the version by every stream of the node', async (t) => {
  const { set, client, cache } = await serve(t);
  const v1 = set(edsCluster('a'));
  const s = sotw(t, client);
  s.send(request({ node, typeUrl: TypeUrl.Cluster }));
  const r = await s.nth(1);
  let resolved = false;
  const p = cache.waitForAck('raw', v1, 3000).then(() => (resolved = true));
  await new Promise((res) => setTimeout(res, 100));
  t.notOk(resolved, 'not before the ACK');
  s.send(request({ typeUrl: TypeUrl.Cluster, versionInfo: r.versionInfo, responseNonce: r.nonce }));
  await p;
  t.ok(resolved, 'after the ACK');
  const v2 = set(edsCluster('a'), edsCluster('b'));
  await t.rejects(cache.waitForAck('raw', v2, 300), /did not ACK version/, 'times out while unanswered');
});

t.test('per-node snapshots: a node-specific snapshot overrides the shared one for that node only', async (t) => {
  const { set, client, cache } = await serve(t);
  set(edsCluster('shared'));
  cache.setSnapshot('special', Snapshot.fromAnys([anyFromJson(edsCluster('mine'))]));
  const plain = sotw(t, client);
  plain.send(request({ node: { id: 'plain' } as any, typeUrl: TypeUrl.Cluster }));
  const special = sotw(t, client);
  special.send(request({ node: { id: 'special' } as any, typeUrl: TypeUrl.Cluster }));
  const [p1, s1] = [await plain.nth(1), await special.nth(1)];
  t.same(names(p1), ['shared']);
  t.same(names(s1), ['mine']);
  plain.send(request({ typeUrl: TypeUrl.Cluster, versionInfo: p1.versionInfo, responseNonce: p1.nonce }));
  special.send(request({ typeUrl: TypeUrl.Cluster, versionInfo: s1.versionInfo, responseNonce: s1.nonce }));
  set(edsCluster('shared'), edsCluster('shared-2'));
  t.same(names(await plain.nth(2)).sort(), ['shared', 'shared-2'], 'the shared update reaches the plain node');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(special.received.length, 1, 'and not the node with its own snapshot');
});

t.test('waitForAck: a stream that has not taken the listeners has not taken a snapshot with listeners', async (t) => {
  const { set, client, cache } = await serve(t);
  const v = set(listener('l', 1, 'r'), edsCluster('a'));
  const s = sotw(t, client);
  s.send(request({ node, typeUrl: TypeUrl.Cluster }));
  const cds = await s.nth(1);
  s.send(request({ typeUrl: TypeUrl.Cluster, versionInfo: cds.versionInfo, responseNonce: cds.nonce }));
  await t.rejects(cache.waitForAck('raw', v, 500), /did not ACK version/, 'clusters alone are not the snapshot');
  t.notOk(cache.holdsListeners('raw'), 'and the node holds no listeners');
  s.send(request({ typeUrl: TypeUrl.Listener }));
  const lds = await s.nth(2);
  const acked = cache.waitForAck('raw', v, 3000);
  s.send(request({ typeUrl: TypeUrl.Listener, versionInfo: lds.versionInfo, responseNonce: lds.nonce }));
  await acked;
  t.ok(cache.holdsListeners('raw'), 'the ACK of the listeners completes it');
});

t.test('waitForAck: one stream of a node NACKing does not overrule another that ACKs; all NACKing rejects', async (t) => {
  const { set, client, cache } = await serve(t);
  set(edsCluster('a'));
  const streams = [sotw(t, client), sotw(t, client)];
  const answer = (i: number, n: number, nack?: string) => {
    const r = streams[i].received[n - 1];
    streams[i].send(request({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce, errorDetail: nack ? { code: 3, message: nack, details: [] } : undefined }));
  };
  for (const s of streams) s.send(request({ node, typeUrl: TypeUrl.Cluster }));
  for (const s of streams) await s.nth(1);
  answer(0, 1);
  answer(1, 1);
  const v2 = set(edsCluster('a'), edsCluster('b'));
  for (const s of streams) await s.nth(2);
  const outcome = cache.waitForAck('raw', v2, 3000).then(() => 'accepted', (e: Error) => e.message);
  answer(1, 2, "cluster 'b' is bad");
  await new Promise((r) => setTimeout(r, 200));
  answer(0, 2);
  t.equal(await outcome, 'accepted', 'the stream that took it decides, not the one that refused it');

  const v3 = set(edsCluster('a'), edsCluster('b'), edsCluster('c'));
  for (const s of streams) await s.nth(3);
  const rejected = cache.waitForAck('raw', v3, 3000).then(() => 'accepted', (e: Error) => e.message);
  answer(0, 3, 'no');
  await new Promise((r) => setTimeout(r, 200));
  answer(1, 3, 'no either');
  t.match(await rejected, /rejected .*Cluster version/, 'every stream NACKing rejects the version');
});

t.test('sotw: a first request for a type carrying a nonce this stream never sent is answered with the current state', async (t) => {
  const { set, client } = await serve(t);
  const v = set(edsCluster('a'), endpoints('a', [1001]));
  const s = sotw(t, client);
  // A client reconnecting may keep the nonce and version of its previous stream.
  s.send(request({ node, typeUrl: TypeUrl.Cluster, versionInfo: '1', responseNonce: 'from-an-old-stream' }));
  const r = await s.nth(1);
  t.equal(r.versionInfo, String(v));
  t.same(names(r), ['a'], 'the clusters, not an empty response');
  s.send(request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a'], responseNonce: '999' }));
  t.same(names(await s.nth(2)), ['a'], 'the same for the second type on the stream');
});

t.test('sotw: a bare ACK does not select from the snapshot again; a new subscription does', async (t) => {
  const { cache, client } = await serve(t);
  const snap = Snapshot.fromAnys([edsCluster('a'), endpoints('a', [1001]), endpoints('b', [1002])].map((d) => anyFromJson(d)));
  let reads = 0;
  const get = snap.get.bind(snap);
  Object.assign(snap, { get: (typeUrl: string) => (reads++, get(typeUrl)) });
  cache.setSnapshot(ANY_NODE, snap);
  const s = sotw(t, client);
  s.send(request({ node, typeUrl: TypeUrl.Cluster }));
  s.send(request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a'] }));
  const [cds, eds] = [await s.nth(1), await s.nth(2)];
  const before = reads;
  s.send(request({ typeUrl: TypeUrl.Cluster, versionInfo: cds.versionInfo, responseNonce: cds.nonce }));
  s.send(request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a'], versionInfo: eds.versionInfo, responseNonce: eds.nonce }));
  await new Promise((r) => setTimeout(r, 200));
  t.equal(reads, before, 'ACKs read nothing from the snapshot');
  s.send(request({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a', 'b'], versionInfo: eds.versionInfo, responseNonce: eds.nonce }));
  t.same(names(await s.nth(3)).sort(), ['a', 'b'], 'a changed subscription is answered');
  t.ok(reads > before, 'from a fresh selection');
});

t.test('delta: a bare ACK scans nothing; a new subscription and a rebuilt cluster still get their endpoints', async (t) => {
  const { cache, client } = await serve(t);
  let lookups = 0;
  class CountingMap<K, V> extends Map<K, V> {
    override get(k: K) {
      lookups++;
      return super.get(k);
    }
    override has(k: K) {
      lookups++;
      return super.has(k);
    }
    override values() {
      lookups++;
      return super.values();
    }
  }
  // Both snapshots hand out the same endpoints map, as snapshots sharing unchanged types do.
  const shared = new Map<string, ReadonlyMap<string, unknown>>();
  const counting = (docs: object[]) => {
    const snap = Snapshot.fromAnys(docs.map((d) => anyFromJson(d)));
    const get = snap.get.bind(snap);
    const own = new Map<string, ReadonlyMap<string, unknown>>();
    const pick = (typeUrl: string) => (typeUrl === TypeUrl.ClusterLoadAssignment ? shared : own);
    Object.assign(snap, { get: (typeUrl: string) => pick(typeUrl).get(typeUrl) ?? (pick(typeUrl).set(typeUrl, new CountingMap(get(typeUrl))), pick(typeUrl).get(typeUrl)) });
    return snap;
  };
  cache.setSnapshot(ANY_NODE, counting([edsCluster('a'), endpoints('a', [1001]), endpoints('b', [1002])]));
  const d = delta(t, client);
  d.send(deltaRequest({ node, typeUrl: TypeUrl.Cluster }));
  const cds = await d.nth(1);
  d.send(deltaRequest({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: ['a'] }));
  const eds = await d.nth(2);
  t.same(eds.resources.map((r) => r.name), ['a']);
  d.send(deltaRequest({ typeUrl: TypeUrl.Cluster, responseNonce: cds.nonce }));
  await new Promise((r) => setTimeout(r, 100));
  const before = lookups;
  d.send(deltaRequest({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: eds.nonce }));
  await new Promise((r) => setTimeout(r, 200));
  t.equal(lookups, before, 'the ACK of a settled stream looks nothing up');
  d.send(deltaRequest({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: ['b'] }));
  const b = await d.nth(3);
  t.same(b.resources.map((r) => r.name), ['b'], 'a new subscription is answered');
  d.send(deltaRequest({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: b.nonce }));
  await new Promise((r) => setTimeout(r, 100));
  cache.setSnapshot(ANY_NODE, counting([{ ...(edsCluster('a') as object), connect_timeout: '2s' }, endpoints('a', [1001]), endpoints('b', [1002])]));
  const [c2, e2] = [await d.nth(4), await d.nth(5)];
  t.same([typeOf(c2), c2.resources.map((r) => r.name)], ['Cluster', ['a']], 'the changed cluster');
  t.same([typeOf(e2), e2.resources.map((r) => r.name)], ['ClusterLoadAssignment', ['a']], 'and its endpoints again, though the endpoints map is the same');
});
