// The L7 Service redirect across network namespaces, as on a node: the node's
// Envoy in a "node" netns, listening on the node proxy addresses the agent
// puts on its lo; the client in a "pod" netns joined to it by a veth, in the
// cgroup the socket LB is attached to. IPv4, IPv6 and v4-mapped IPv6.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StableIds } from '../src/ids/stable-ids.js';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';
import { SockLbApplier } from '../src/redirect/apply.js';
import { SockLb } from '../src/redirect/datapath.js';
import { desiredServices } from '../src/redirect/desired.js';
import { addProxyAddresses, DEFAULT_PROXY_ADDRESSES as PROXY, removeProxyAddresses } from '../src/redirect/proxy-address.js';
import { startAgent } from './helpers/agent.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { httpRoute, service } from './helpers/kube.js';
import { netnsWorld } from './helpers/netns.js';

const B4 = '10.244.7.1';
const B6 = 'fd00:244::7:1';
const NODE = 'pod-envoy-node';

function slice(family: 'IPv4' | 'IPv6', ip: string): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `web-${family.toLowerCase()}`, namespace: 'default', labels: { 'kubernetes.io/service-name': 'web' } },
    addressType: family,
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [{ addresses: [ip], conditions: { ready: true }, nodeName: NODE }],
  };
}

t.test('a pod reaches the node Envoy through the L7 redirect; getpeername shows the VIP', async (t) => {
  const node = await netnsWorld(t, [B4, B6]);
  const pod = node.peer();
  await node.servers({ http: [{ ip: B4, port: 8080, name: 'web-v4' }, { ip: B6, port: 8080, name: 'web-v6' }] });
  const ipIn = (args: string[]) => void node.sh('ip', args);
  t.same(addProxyAddresses(PROXY, ipIn), [], 'the proxy addresses go on the node netns lo');
  t.same(addProxyAddresses(PROXY, ipIn), [], 'and adding them again (an agent restart) is no error');
  const lo = node.sh('ip', ['addr', 'show', 'dev', 'lo']);
  t.match(lo, `inet ${PROXY.v4}/32`);
  t.match(lo, `inet6 ${PROXY.v6}/128`);

  const web = service('web', [{ port: 80, name: 'http', targetPort: 8080 }], { clusterIP: '10.96.0.10' }) as any;
  web.spec.clusterIPs = ['10.96.0.10', 'fd00:96::10'];
  web.spec.ipFamilies = ['IPv4', 'IPv6'];
  const route = httpRoute('web', { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] });
  const objects = [web, slice('IPv4', B4), slice('IPv6', B6), route];
  const agent = await startAgent(t, { 'web.yaml': objects }, { kube: true, nodeName: NODE, proxyAddresses: PROXY });
  t.same(agent.agent.issues(), []);
  const redirect = agent.agent.redirects.find((r) => r.service === 'default/web');
  t.ok(redirect, 'the HTTPRoute redirects the Service to its listener');

  const envoy = await startEnvoy(t, agent.bootstrap(NODE, 'sotw'), [], node.ns);
  await agent.agent.cache.waitForAck(NODE, agent.agent.currentVersion, 20_000);
  const listener = await eventually(async () => (await envoy.configDump()).listeners['gamma/default/web:80'], 10_000, 'the listener');
  t.same(listener.address.socket_address, { address: PROXY.v4, port_value: redirect!.proxyPort }, 'Envoy listens on the IPv4 proxy address...');
  t.same(listener.additional_addresses[0].address.socket_address, { address: PROXY.v6, port_value: redirect!.proxyPort }, '...and on the IPv6 one');

  const state = mkdtempSync(join(tmpdir(), 'sluice-ids-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  t.teardown(() => SockLb.remove(node.pinDir));
  const lb = SockLb.open({ pinDir: node.pinDir, cgroupDir: node.cgroupDir });
  t.teardown(() => lb.close());
  lb.setProxyAddresses(PROXY.v4, PROXY.v6);
  const applier = new SockLbApplier(lb.maps, { services: new StableIds(join(state, 's.json'), [1, 65535]), backends: new StableIds(join(state, 'b.json'), [1, 1 << 30]) });
  const model = Model.from(objects.map((object) => ({ object: object as ModelObject })));
  applier.apply(desiredServices(model, agent.agent.redirects, { nodeIPs: [], nodeName: NODE }));

  const [v4, v6, mapped] = pod.client([
    { op: 'http', host: '10.96.0.10', port: 80, count: 5 },
    { op: 'http', host: 'fd00:96::10', port: 80, count: 5 },
    { op: 'http', host: '::ffff:10.96.0.10', port: 80, count: 5 },
  ]);
  const check = (res: any[], vip: string, what: string) => {
    t.same(res.map((r) => r.error ?? r.status), Array(5).fill(200), `${what}: every request answered`);
    t.ok(res.every((r) => r.via === 'envoy' && /^web-v[46]$/.test(r.backend)), `${what}: through Envoy to a backend (${res.map((r) => r.backend)})`);
    t.ok(res.every((r) => r.peer?.address === vip && r.peer?.port === 80), `${what}: getpeername shows ${vip}:80`);
  };
  check(v4, '10.96.0.10', 'IPv4');
  check(v6, 'fd00:96::10', 'IPv6');
  check(mapped, '::ffff:10.96.0.10', 'v4-mapped IPv6 on a dual-stack socket');
  const stats = await envoy.stats('downstream_cx_total');
  t.equal(stats[`listener.${PROXY.v4}_${redirect!.proxyPort}.downstream_cx_total`], 15, "Envoy's listener accepted the pod's 15 connections");

  // Control: the same pod, with the redirect gone, reaches the backends directly.
  applier.apply(desiredServices(model, [], { nodeIPs: [], nodeName: NODE }));
  const [direct] = pod.client([{ op: 'http', host: '10.96.0.10', port: 80, count: 3 }]);
  t.same(direct.map((r: any) => [r.backend, r.via]), Array(3).fill(['web-v4', undefined]), 'without the redirect the VIP goes to its backend, not Envoy');

  removeProxyAddresses(PROXY, ipIn);
  removeProxyAddresses(PROXY, ipIn);
  t.notMatch(node.sh('ip', ['addr', 'show', 'dev', 'lo']), PROXY.v4, 'removeProxyAddresses takes them off lo, and is idempotent');
});
