// An egress rule with authentication required, on the real kernel: in the
// two-node world with bpf/policy.c on n1 and a stand-in for n1's outbound
// listener, the rule's "mesh" verdict lets a meshed pod's connection to a
// meshed pod on n2 into the tunnel listener, and drops (counted as
// not-meshed) the same rule's flows that the tunnel would not carry: to a pod
// outside the mesh, to a meshed pod on the same node, from a pod outside the
// mesh. Nothing of those reaches the wire.
import t from 'tap';
import { computePolicy, identityAllocators } from '../src/policy/index.js';
import { meshDatapath, withMesh } from '../src/mesh/datapath.js';
import { MESH_OUTBOUND_PORT, meshWorkloads } from '../src/mesh/membership.js';
import { PolicyReconciler } from '../src/redirect/policy-datapath.js';
import { addProxyAddresses, DEFAULT_PROXY_ADDRESSES } from '../src/redirect/proxy-address.js';
import { ensureTproxyRoute, tproxyConfig } from '../src/redirect/tproxy-route.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { tcAttacherStarter } from './helpers/policy-tc-world.js';
import { twoNodeWorld, WIRE } from './helpers/two-node-world.js';

const PROXY = DEFAULT_PROXY_ADDRESSES;
const typed = (type: string, body: object = {}) => ({ '@type': `type.googleapis.com/${type}`, ...body });

/** A stand-in for the node Envoy's outbound listener: transparent, TCP straight to the original destination. */
const bootstrap = {
  node: { id: 'n1', cluster: 'mesh-egress-auth' },
  static_resources: {
    listeners: [{
      name: 'mesh-outbound',
      address: { socket_address: { address: PROXY.v4, port_value: MESH_OUTBOUND_PORT } },
      transparent: true,
      listener_filters: [{ name: 'envoy.filters.listener.original_dst', typed_config: typed('envoy.extensions.filters.listener.original_dst.v3.OriginalDst') }],
      filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: typed('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', { stat_prefix: 'mesh_out', cluster: 'original_dst' }) }] }],
    }],
    clusters: [{ name: 'original_dst', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '1s' }],
  },
};

const seen = (r: any) => (r.error ? r.error : JSON.parse(r.backend));

const policy = {
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumClusterwideNetworkPolicy',
  metadata: { name: 'clients-need-mtls' },
  spec: {
    endpointSelector: { matchLabels: { role: 'client' } },
    egress: [{ toEndpoints: [{ matchLabels: { role: 'server' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }], authentication: { mode: 'required' } }],
  },
};

t.test('authentication required on egress: into the tunnel, or dropped on the node', async (t) => {
  const w = await twoNodeWorld(t, { shop: true, plain: false }, [
    { name: 'a', node: 'n1', namespace: 'shop', serviceAccount: 'client', labels: { role: 'client' } },
    { name: 'c', node: 'n1', namespace: 'plain', labels: { role: 'client' } },
    { name: 'e', node: 'n1', namespace: 'shop', serviceAccount: 'server', labels: { role: 'server' } },
    { name: 'b', node: 'n2', namespace: 'shop', serviceAccount: 'server', labels: { role: 'server' } },
    { name: 'd', node: 'n2', namespace: 'plain', labels: { role: 'server' } },
  ]);
  const { a, b, c, d, e } = w.pods;
  const n1 = w.nodes.n1;
  await Promise.all([b, d, e].map((p) => p.servers({ httpEcho: [{ ip: p.ip, port: 80, name: p.spec.name }] })));

  const ipIn = (args: string[]) => n1.sh('ip', args);
  t.same(addProxyAddresses(PROXY, ipIn), []);
  ensureTproxyRoute(ipIn);
  const reconciler = PolicyReconciler.open(n1.pinDir, { retryMs: 0 });
  t.teardown(() => reconciler.close());
  await tcAttacherStarter(t, n1, [a.ifindex(), c.ifindex(), e.ifindex(), w.wireIfindex('n1')])();
  reconciler.setTproxy(tproxyConfig(undefined, PROXY.v4, PROXY.v6));
  const model = w.model([policy]);
  const result = computePolicy(model, { nodeName: 'n1', ...identityAllocators() });
  t.same(result.issues, []);
  const state = withMesh(result.state, meshDatapath(meshWorkloads(model, 'cluster.local'), 'n1'));
  const aEp = state.endpoints.find((x) => x.pod === 'shop/a')!;
  t.ok(aEp.meshed && aEp.egressEnforced, 'a is meshed and egress-enforced');
  t.ok(state.entries.some((x) => x.endpoint === aEp.endpoint && x.direction === 'egress' && x.verdict === 'mesh'), 'a has mesh-only entries');
  t.same(reconciler.apply(state).errors, []);

  const envoy = await startEnvoy(t, bootstrap, [], n1.ns);
  const accepted = async () => Object.entries(await envoy.stats('downstream_cx_total')).filter(([k]) => /^listener\..*_15001\.downstream_cx_total$/.test(k)).reduce((n, [, v]) => n + v, 0);
  await eventually(async () => Object.keys(await envoy.stats('_15001.downstream_cx_total')).length === 1, 10_000, 'the outbound listener');

  await t.test('meshed a → meshed b on n2: steered into the outbound listener, b reached', async (t) => {
    const before = await accepted();
    const cap = await w.capture('n1', `host ${a.ip}`);
    const [r] = a.client([{ op: 'http', host: b.ip, port: 80 }]);
    t.same([seen(r[0]).name, seen(r[0]).remote], ['b', WIRE.n1.ip4], 'b answered n1’s Envoy, not a');
    t.equal((await accepted()) - before, 1, 'the outbound listener took it');
    t.same(await cap.stop(), [], 'no packet of a’s on the wire');
  });

  await t.test('what the tunnel would not carry is dropped on n1 and counted', async (t) => {
    const before = { cx: await accepted(), drops: reconciler.dropCounters()['not-meshed'] };
    const cap = await w.capture('n1', `host ${a.ip} or host ${c.ip}`);
    const [toD] = a.client([{ op: 'http', host: d.ip, port: 80 }]);
    const [toE] = a.client([{ op: 'http', host: e.ip, port: 80 }]);
    const [cToB] = c.client([{ op: 'http', host: b.ip, port: 80 }]);
    t.same(seen(toD[0]), 'timeout', 'a → d (outside the mesh): dropped');
    t.same(seen(toE[0]), 'timeout', 'a → e (meshed, same node, no tunnel): dropped');
    t.same(seen(cToB[0]), 'timeout', 'c (outside the mesh) → b: dropped');
    t.ok(reconciler.dropCounters()['not-meshed'] >= before.drops + 3, 'counted as not-meshed');
    t.equal(await accepted(), before.cx, 'Envoy saw none of it');
    t.same(await cap.stop(), [], 'nothing of it on the wire');
  });

  await t.test('a port the rule does not name: default deny, not the mesh', async (t) => {
    await b.servers({ httpEcho: [{ ip: b.ip, port: 81, name: 'b81' }] });
    const before = reconciler.dropCounters();
    const [r] = a.client([{ op: 'http', host: b.ip, port: 81 }]);
    t.same(seen(r[0]), 'timeout');
    t.ok(reconciler.dropCounters()['no-allow'] > before['no-allow'], 'counted as no-allow');
  });
});
