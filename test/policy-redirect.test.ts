// Verdict "redirect": bpf_sk_assign from TC ingress hands the flow to a real
// Envoy's transparent listener in the node netns, which sees the original
// destination (its ORIGINAL_DST cluster connects there). Other identities and
// ports are still judged in the kernel.
import t from 'tap';
import { ensureTproxyRoute, removeTproxyRoute, tproxyConfig } from '../src/redirect/tproxy-route.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { entry, EP, ID, IP, outcomes, policyWorld } from './helpers/policy-tc-world.js';

const PROXY_PORT = 15001;
const typed = (type: string, body: object = {}) => ({ '@type': `type.googleapis.com/${type}`, ...body });

const bootstrap = {
  node: { id: 'policy-redirect', cluster: 'test' },
  static_resources: {
    listeners: [
      {
        name: 'l7-policy',
        address: { socket_address: { address: '0.0.0.0', port_value: PROXY_PORT } },
        transparent: true,
        listener_filters: [{ name: 'envoy.filters.listener.original_dst', typed_config: typed('envoy.extensions.filters.listener.original_dst.v3.OriginalDst') }],
        filter_chains: [
          {
            filters: [
              {
                name: 'envoy.filters.network.http_connection_manager',
                typed_config: typed('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
                  stat_prefix: 'l7',
                  route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'original_dst' } }] }] },
                  http_filters: [{ name: 'envoy.filters.http.router', typed_config: typed('envoy.extensions.filters.http.router.v3.Router') }],
                }),
              },
            ],
          },
        ],
      },
    ],
    clusters: [{ name: 'original_dst', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '1s' }],
  },
};

t.test('a redirect verdict lands the flow on Envoy’s transparent listener, which sees the original destination', async (t) => {
  const w = await policyWorld(t);
  const ipIn = (args: string[]) => w.node.sh('ip', args);
  ensureTproxyRoute(ipIn);
  t.teardown(() => removeTproxyRoute(ipIn));
  const envoy = await startEnvoy(t, bootstrap, [], w.node.ns);
  await eventually(async () => (await envoy.stats('listener.0.0.0.0_15001.downstream_cx_total'))['listener.0.0.0.0_15001.downstream_cx_total'] !== undefined, 10_000, 'the listener');
  await w.startAttacher();
  w.reconciler.setTproxy(tproxyConfig());
  const state = w.state({ enforce: { s: ['ingress'] }, entries: [entry(EP.s, 'ingress', ID.x, 6, 80, 'redirect', PROXY_PORT)] });
  t.same(w.reconciler.apply(state).errors, []);

  const [viaEnvoy] = w.pods.x.client([{ op: 'http', host: IP.s, port: 80, count: 3 }]);
  t.same(viaEnvoy.map((r: any) => [r.error ?? r.status, r.backend, r.via]), Array(3).fill([200, 'deathstar', 'envoy']), "x's requests to s:80 go through Envoy and reach s");
  t.same(await envoy.clusterHosts('original_dst'), [`${IP.s}:80`], 'Envoy connected to the original destination');
  const stats = await envoy.stats('listener.0.0.0.0_15001.downstream_cx_total');
  t.equal(stats['listener.0.0.0.0_15001.downstream_cx_total'], 3, 'each connection was accepted by the transparent listener');

  const [fromY] = w.pods.y.client([{ op: 'http', host: IP.s, port: 80 }]);
  const [toU] = w.pods.x.client([{ op: 'http', host: IP.u, port: 80 }]);
  t.same(outcomes(fromY), ['timeout'], 'y, which no entry names, is dropped in the kernel, not redirected');
  t.same(outcomes(toU), ['200 open'], 'traffic without a redirect verdict never enters Envoy');
  t.equal((await envoy.stats('listener.0.0.0.0_15001.downstream_cx_total'))['listener.0.0.0.0_15001.downstream_cx_total'], 3, 'Envoy saw no other connection');

  // A redirect to a port no listener holds fails closed, and says why.
  const noProxy = w.reconciler.dropCounters()['no-proxy'];
  t.same(w.reconciler.apply(w.state({ enforce: { s: ['ingress'] }, entries: [...state.entries, entry(EP.s, 'ingress', ID.y, 6, 80, 'redirect', PROXY_PORT + 1)] })).errors, []);
  const [yNoProxy] = w.pods.y.client([{ op: 'http', host: IP.s, port: 80 }]);
  t.same(outcomes(yNoProxy), ['timeout'], 'y, redirected to a port with no listener, is dropped');
  t.ok(w.reconciler.dropCounters()['no-proxy'] > noProxy, 'counted as no proxy');
});
