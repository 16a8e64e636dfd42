// Which endpoints the kernel treats as meshed and where the meshed pods of
// other nodes are, from the model's membership, and the merge into the policy
// state: pure, no kernel.
import t from 'tap';
import { meshDatapath, withMesh } from '../src/mesh/datapath.js';
import { MESH_OUTBOUND_PORT, meshWorkloads } from '../src/mesh/membership.js';
import { PolicyWiring } from '../src/agent/policy-wiring.js';
import type { TranslateContext } from '../src/translate/context.js';
import { compute, model, namespace, pod } from './helpers/policy-world.js';

const podOn = (name: string, ip: string, node: string, ns: string, labels: Record<string, string> = {}) => {
  const p = pod(name, ip, labels, { namespace: ns, node }) as any;
  p.status.phase = 'Running';
  return p;
};

const objects = [
  namespace('shop', { 'sluice.io/mesh': 'enabled' }),
  namespace('plain'),
  podOn('a', '10.77.1.10', 'n1', 'shop'),
  podOn('opted-out', '10.77.1.11', 'n1', 'shop', { 'sluice.io/mesh': 'disabled' }),
  podOn('c', '10.77.1.12', 'n1', 'plain'),
  podOn('b', '10.77.2.10', 'n2', 'shop'),
  podOn('d', '10.77.2.11', 'n2', 'plain', { 'sluice.io/mesh': 'enabled' }),
  podOn('e', '10.77.2.12', 'n2', 'plain'),
];
// A dual-stack meshed pod on n2.
(objects[5] as any).status.podIPs.push({ ip: 'fd00:77:2::10' });

t.test('local meshed pods by key, remote meshed pods as host prefixes to the outbound port', async (t) => {
  const m = meshDatapath(meshWorkloads(model(objects), 'td.example'), 'n1');
  t.same([...m.localPods], ['shop/a']);
  t.same(m.destinations, [
    { prefix: '10.77.2.10/32', proxyPort: MESH_OUTBOUND_PORT },
    { prefix: '10.77.2.11/32', proxyPort: MESH_OUTBOUND_PORT },
    { prefix: 'fd00:77:2::10/128', proxyPort: MESH_OUTBOUND_PORT },
  ]);
  const n2 = meshDatapath(meshWorkloads(model(objects), 'td.example'), 'n2');
  t.same([...n2.localPods].sort(), ['plain/d', 'shop/b']);
  t.same(n2.destinations, [{ prefix: '10.77.1.10/32', proxyPort: MESH_OUTBOUND_PORT }]);
  t.same(meshDatapath(meshWorkloads(model(objects.filter((o: any) => o.kind !== 'Namespace' || o.metadata.name !== 'shop')), 'td'), 'n1').localPods.size, 0, 'no label, no mesh');
});

t.test('the merge flags only meshed endpoints and leaves the rest of the state as it was', async (t) => {
  const m = model(objects);
  const policy = compute(objects, { nodeName: 'n1' }).state;
  const merged = withMesh(policy, meshDatapath(meshWorkloads(m, 'td'), 'n1'));
  t.same(merged.endpoints.filter((e) => e.meshed).map((e) => e.pod), ['shop/a']);
  t.same(merged.endpoints.map(({ meshed: _m, ...e }) => e), policy.endpoints, 'endpoints otherwise unchanged');
  t.same(merged.entries, policy.entries);
  t.same(merged.ipcache, policy.ipcache);
  t.equal(merged.meshDestinations?.length, 3);
});

t.test('an address a local endpoint holds is never a mesh destination', async (t) => {
  // A stale Pod object on n2 still lists the address a pod on n1 holds now.
  const stale = [...objects, podOn('ghost', '10.77.1.12', 'n2', 'shop')];
  const merged = withMesh(compute(stale, { nodeName: 'n1' }).state, meshDatapath(meshWorkloads(model(stale), 'td'), 'n1'));
  t.notOk(merged.meshDestinations!.some((d) => d.prefix === '10.77.1.12/32'), 'the local pod behind the veth wins');
});

t.test('the policy wiring adds the mesh only when asked to', async (t) => {
  const ctx = { nodeName: 'n1' } as TranslateContext;
  const withIt = new PolicyWiring(undefined, { mesh: { trustDomain: 'td' } });
  withIt.translate(model(objects), ctx);
  t.same(withIt.view.desired.endpoints.filter((e) => e.meshed).map((e) => e.pod), ['shop/a']);
  t.same(withIt.view.acked.meshDestinations, withIt.view.desired.meshDestinations, 'not held back by the ACK gate');
  const without = new PolicyWiring(undefined);
  without.translate(model(objects), ctx);
  t.notOk(without.view.desired.endpoints.some((e) => e.meshed));
  t.equal(without.view.desired.meshDestinations, undefined);
});
