// Id pools through the agent, with YAML directories as the source: proxy ports,
// service ids and backend ids are given back when their objects go, so churn
// far beyond a pool's size keeps publishing and applying; a pool that is
// really short costs only the object that asked, as an issue; and a datapath
// write the kernel refuses is retried on its own, with no model change.
import t from 'tap';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ANY_NODE } from '../src/xds/snapshot-cache.js';
import { anyToJson } from '../src/proto/any.js';
import { TypeUrl } from '../src/resources/types.js';
import { addon, BpfMap } from '../src/redirect/bpf.js';
import { SockLb } from '../src/redirect/datapath.js';
import { SIZES, svcKey, svcSlot } from '../src/redirect/maps.js';
import { startAgent, type TestAgent } from './helpers/agent.js';
import { eventually } from './helpers/envoy.js';
import { cec, endpointSlice, httpRoute, service, splitResources } from './helpers/kube.js';
import { netnsWorld } from './helpers/netns.js';

/** Listener name -> port, as served. */
function listeners(a: TestAgent): Map<string, number> {
  const s = a.agent.cache.getSnapshot(ANY_NODE)?.snapshot;
  const out = new Map<string, number>();
  for (const r of s?.get(TypeUrl.Listener).values() ?? []) out.set(r.name, (anyToJson(r.any) as any).address.socketAddress.portValue);
  return out;
}

const failedPublishes = (a: TestAgent) => a.logs.filter((l) => /publish failed|datapath update failed|partly updated/.test(l.msg ?? ''));
const cecDoc = (i: number) => cec(`c${i}`, { resources: splitResources({ [`default/b${i}`]: 100 }) });

t.test('proxy ports: churn through a pool of four, then a shortage costs one CEC an issue until a port frees', async (t) => {
  const base = 30000 + Math.floor(Math.random() * 100) * 10;
  const range: [number, number] = [base, base + 3];
  const a = await startAgent(t, {}, { kube: true, proxyPortRange: range });
  const names = (ids: number[]) => ids.map((i) => `default/c${i}/listener`).sort();
  for (let i = 0; i < 30; i++) {
    a.write(`c${i}.yaml`, [cecDoc(i)]);
    if (i >= 3) rmSync(join(a.dir, `c${i - 3}.yaml`));
    const want = names([i - 2, i - 1, i].filter((k) => k >= 0));
    await eventually(() => JSON.stringify([...listeners(a).keys()].sort()) === JSON.stringify(want), 10_000, `round ${i}: listeners ${want}`);
    const ports = [...listeners(a).values()];
    if (new Set(ports).size !== ports.length || ports.some((p) => p < range[0] || p > range[1])) t.fail(`round ${i}: ports ${ports}`);
  }
  t.same(failedPublishes(a), [], 'thirty CECs through four ports: every publish succeeded');
  t.same(a.agent.issues(), [], 'and none was short of a port');

  // 27, 28, 29 are live; two more make five listeners for four ports.
  a.write('c30.yaml', [cecDoc(30)]);
  await eventually(() => listeners(a).size === 4, 10_000, 'the fourth listener');
  a.write('c31.yaml', [cecDoc(31)]);
  await eventually(() => a.agent.issues().some((i) => /c31.*no free node-local proxy port for listener "default\/c31\/listener"/.test(i)), 10_000, 'the issue on c31');
  t.same([...listeners(a).keys()].sort(), names([27, 28, 29, 30]), 'the others keep serving');
  t.ok(a.agent.issues().every((i) => /CiliumEnvoyConfig default\/c31/.test(i)), `only c31 has an issue: ${a.agent.issues()}`);

  await t.test('an HTTPRoute whose Service listener gets no port says so on the route', async (t) => {
    a.write('mesh.yaml', [
      service('web', [{ port: 80, name: 'http' }], { clusterIP: '10.96.7.7' }),
      httpRoute('to-web', { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] }),
    ]);
    await eventually(() => a.agent.issues().some((i) => /HTTPRoute default\/to-web: spec.parentRefs: Service default\/web:80: no free node-local proxy port/.test(i)), 10_000, 'the issue on the route');
    t.equal(listeners(a).size, 4);
    rmSync(join(a.dir, 'mesh.yaml'));
    await eventually(() => !a.agent.issues().some((i) => /to-web/.test(i)), 10_000, 'the route issue to go with the route');
  });

  rmSync(join(a.dir, 'c27.yaml'));
  await eventually(() => listeners(a).has('default/c31/listener'), 10_000, 'c31 to get the port c27 gave back');
  t.same([...listeners(a).keys()].sort(), names([28, 29, 30, 31]));
  t.same(a.agent.issues(), [], 'the shortage is over');
  t.same(failedPublishes(a), [], 'no publish failed at any point');
});

t.test('datapath ids: Service churn through small pools keeps applying; a refused write is retried with no model change', async (t) => {
  const ips = ['10.244.8.1', '10.244.8.2', '10.244.8.3', '10.244.8.4'];
  const w = await netnsWorld(t, ips);
  t.teardown(() => SockLb.remove(w.pinDir));
  await w.servers({ tcp: ips.map((ip) => ({ ip, port: 8080, name: ip.split('.')[3] })) });
  // Envoy's listeners on loopback: the node proxy addresses would go on the test machine's own lo.
  const a = await startAgent(t, {}, { kube: true, proxyAddresses: { v4: '127.0.0.1', v6: '::1' }, datapath: { pinDir: w.pinDir, cgroupDir: w.cgroupDir, idRanges: { services: [1, 4], backends: [1, 6] } } });
  const svcDocs = (i: number) => {
    const mine = [ips[i % 4], ips[(i + 1) % 4]];
    return [service(`s${i}`, [{ port: 80, name: 'http' }], { clusterIP: `10.96.8.${i}` }), endpointSlice(`s${i}`, 'http', 8080, mine.map((ip) => ({ ip })))];
  };
  // Sixteen connects miss one of two random backends with odds of 2 in 65,536.
  const reach = (i: number, count = 16) => {
    const [res] = w.client([{ op: 'tcp', host: `10.96.8.${i}`, port: 80, count }]);
    return [...new Set(res.map((r: any) => r.backend ?? 'error'))].sort().join(',');
  };
  const want = (i: number) => [ips[i % 4], ips[(i + 1) % 4]].map((ip) => ip.split('.')[3]).sort().join(',');
  // Three Services of one port live at a time: 3 of 4 service ids; backend addresses come and go too.
  for (let i = 1; i <= 24; i++) {
    a.write(`s${i}.yaml`, svcDocs(i));
    if (i > 3) rmSync(join(a.dir, `s${i - 3}.yaml`));
    await eventually(() => reach(i) === want(i) && reach(i - 3 > 0 ? i - 3 : 99, 1) === 'error', 15_000, `round ${i}: s${i} to reach ${want(i)}, s${i - 3} to be gone`);
  }
  t.same(failedPublishes(a), [], 'twenty-four Services through four service ids: every publish and apply succeeded');
  t.same(a.agent.issues(), []);

  // A fifth live Service needs a fifth id: it gets an issue, the rest keep working.
  for (const i of [25, 26]) a.write(`s${i}.yaml`, svcDocs(i));
  await eventually(() => a.agent.issues().some((i) => /Service default\/s26: spec.ports \(80\/TCP\): not load-balanced by the socket LB: no free id/.test(i)), 10_000, 'the issue on s26');
  t.equal(reach(25), want(25), 'the fourth Service got the last id');
  t.equal(reach(22), want(22), 'older Services keep working');
  rmSync(join(a.dir, 's22.yaml'));
  await eventually(() => reach(26) === want(26), 10_000, 's26 to get the id s22 gave back');
  await eventually(() => a.agent.issues().length === 0, 5000, 'the issue to clear');

  await t.test('a full services map: the agent reports it truthfully and retries until the write lands', async (t) => {
    // Room made by a delete would let the retry through by itself: delete first, then fill.
    rmSync(join(a.dir, 's23.yaml'));
    await eventually(() => reach(23, 1) === 'error', 10_000, 's23 to go');
    const fd = addon().objGet(join(w.pinDir, 'sluice_services'));
    t.teardown(() => addon().closeFd(fd));
    const services = new BpfMap('sluice_services', fd, SIZES.svcKey, SIZES.svcVal);
    const junk = (i: number): [Buffer, Buffer] => [svcKey({ vip: `198.18.${(i >> 8) & 255}.${i & 255}`, port: 1 + (i >> 16), proto: 'TCP', slot: 1 }), svcSlot(0)];
    let n = 0;
    for (let full = false; !full; ) {
      const batch = Array.from({ length: 65536 }, (_, k) => junk(n + k));
      try {
        services.updateMany(batch);
        n += batch.length;
      } catch (e) {
        n += (e as { written: number }).written;
        full = true;
      }
    }
    t.ok(n > 200_000, `the services map took ${n} junk entries`);
    a.write('s27.yaml', svcDocs(27));
    await eventually(() => a.logs.filter((l) => /datapath partly updated/.test(l.msg ?? '')).length >= 2, 15_000, 'a failure and a retry of its own');
    const line = a.logs.find((l) => /datapath partly updated/.test(l.msg ?? ''))!;
    t.match(line.msg, /the kernel refused some writes; frontends keeping their previous entries: 1, stale entries waiting for deletion: 0; retrying/);
    t.match(line, { failedFrontends: 1, retryInMs: 1000, errors: [/sluice_services: mapUpdateBatch: .*errno 7/] });
    t.equal(reach(27, 2), 'error', 's27 is not there yet');
    t.equal(reach(25), want(25), 'the others keep working');
    const mark = a.logs.length;
    for (let i = 0; i < 4; i++) services.delete(junk(i)[0]);
    await eventually(() => reach(27, 2) === want(27), 40_000, 's27 once there is room, with no change to the YAML');
    t.ok(a.logs.slice(mark).some((l) => l.msg === 'datapath updated'), 'and the agent said so');
  });
});
