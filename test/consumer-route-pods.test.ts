// A GAMMA consumer route as on a node: the node's Envoy in a "node" netns, two
// client pods in their own netns (namespaces shop and blog), steered by the
// socket LB to the Service's listener. Only shop's pod gets shop's route.
import t from 'tap';
import { addProxyAddresses, DEFAULT_PROXY_ADDRESSES as PROXY, removeProxyAddresses } from '../src/redirect/proxy-address.js';
import { startAgent } from './helpers/agent.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { endpointSlice, httpRoute, service } from './helpers/kube.js';
import { netnsWorld } from './helpers/netns.js';
import { socketLb } from './helpers/steer.js';

const WEB = '10.244.8.1';
const CANARY = '10.244.8.2';
const NODE = 'consumer-pods-node';

const pod = (name: string, namespace: string, ips: string[]) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace },
  spec: { nodeName: NODE },
  status: { phase: 'Running', podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) },
});

t.test("a consumer route steers its namespace's pods only; other pods keep the producer's routing", async (t) => {
  const node = await netnsWorld(t, [WEB, CANARY]);
  const shop = node.peer();
  const blog = node.peer();
  await node.servers({ http: [{ ip: WEB, port: 8080, name: 'web' }, { ip: CANARY, port: 8080, name: 'canary' }] });
  const ipIn = (args: string[]) => void node.sh('ip', args);
  t.same(addProxyAddresses(PROXY, ipIn), []);
  t.teardown(() => removeProxyAddresses(PROXY, ipIn));

  const objects = [
    service('web', [{ port: 80, name: 'http', targetPort: 8080 }], { clusterIP: '10.96.0.10' }),
    endpointSlice('web', 'http', 8080, [{ ip: WEB }]),
    service('canary', [{ port: 80, name: 'http', targetPort: 8080 }], { namespace: 'shop', clusterIP: '10.96.0.11' }),
    endpointSlice('canary', 'http', 8080, [{ ip: CANARY }], { namespace: 'shop' }),
    pod('a', 'shop', [shop.ip4, shop.ip6]),
    pod('b', 'blog', [blog.ip4, blog.ip6]),
    httpRoute('web', { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] }),
    httpRoute('to-canary', { parentRefs: [{ group: '', kind: 'Service', name: 'web', namespace: 'default', port: 80 }], rules: [{ backendRefs: [{ name: 'canary', port: 80 }] }] }, 'shop'),
  ];
  const agent = await startAgent(t, { 'all.yaml': objects }, { kube: true, nodeName: NODE, proxyAddresses: PROXY });
  t.same(agent.agent.issues(), []);
  const envoy = await startEnvoy(t, agent.bootstrap(NODE, 'sotw'), [], node.ns);
  await agent.agent.cache.waitForAck(NODE, agent.agent.currentVersion, 20_000);
  await eventually(async () => (await envoy.configDump()).listeners['gamma/default/web:80'], 10_000, 'the listener');

  const steer = socketLb(t, node, PROXY, objects, NODE);
  steer(agent.agent.redirects);

  const [fromShop] = shop.client([{ op: 'http', host: '10.96.0.10', port: 80, count: 5 }]);
  const [fromBlog] = blog.client([{ op: 'http', host: '10.96.0.10', port: 80, count: 5 }]);
  t.same(fromShop.map((r: any) => [r.error ?? r.status, r.backend, r.via]), Array(5).fill([200, 'canary', 'envoy']), "shop's pod: its consumer route, through Envoy");
  t.same(fromBlog.map((r: any) => [r.error ?? r.status, r.backend, r.via]), Array(5).fill([200, 'web', 'envoy']), "blog's pod: the producer route, through Envoy");
});
