// Plaintext from a meshed pod never leaves its node, on the real kernel: in
// the two-node world with bpf/policy.c on n1 (maps filled from the world's
// own YAML through the policy and mesh rooms), a meshed pod's connection to
// a meshed pod on n2 is dropped while n1's Envoy has no outbound listener and
// lands on that listener once it has one; the wire never carries a packet of
// the pod's own address. Non-meshed pods, and replies of connections a meshed
// pod accepted, go as before.
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
const outboundListener = (address: string) => ({
  name: `mesh-outbound-${address}`,
  address: { socket_address: { address, port_value: MESH_OUTBOUND_PORT } },
  transparent: true,
  listener_filters: [{ name: 'envoy.filters.listener.original_dst', typed_config: typed('envoy.extensions.filters.listener.original_dst.v3.OriginalDst') }],
  filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: typed('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', { stat_prefix: 'mesh_out', cluster: 'original_dst' }) }] }],
});

const bootstrap = {
  node: { id: 'n1', cluster: 'mesh-steer' },
  static_resources: {
    listeners: [outboundListener(PROXY.v4), outboundListener(PROXY.v6)],
    clusters: [{ name: 'original_dst', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '1s' }],
  },
};

/** What an httpEcho server saw, or the client's error. */
const seen = (r: any) => (r.error ? r.error : JSON.parse(r.backend));

t.test('a meshed pod’s flows to a meshed pod on another node go into the node’s Envoy or nowhere', async (t) => {
  const w = await twoNodeWorld(t, { shop: true, plain: false }, [
    { name: 'a', node: 'n1', namespace: 'shop', serviceAccount: 'client' },
    { name: 'c', node: 'n1', namespace: 'plain' },
    { name: 'b', node: 'n2', namespace: 'shop', serviceAccount: 'server' },
  ]);
  const { a, b, c } = w.pods;
  const n1 = w.nodes.n1;
  await Promise.all([
    b.servers({ httpEcho: [{ ip: b.ip, port: 80, name: 'b' }, { ip: b.ip6, port: 80, name: 'b6' }] }),
    a.servers({ httpEcho: [{ ip: a.ip, port: 80, name: 'a' }] }),
  ]);
  t.same(seen(a.client([{ op: 'http', host: b.ip, port: 80 }])[0][0]).remote, a.ip, 'before any program, a reaches b directly over the wire');

  // n1 as the agent sets it up: proxy addresses on lo, the steering route, the programs on every interface.
  const ipIn = (args: string[]) => n1.sh('ip', args);
  t.same(addProxyAddresses(PROXY, ipIn), []);
  ensureTproxyRoute(ipIn);
  const reconciler = PolicyReconciler.open(n1.pinDir, { retryMs: 0 });
  t.teardown(() => reconciler.close());
  await tcAttacherStarter(t, n1, [a.ifindex(), c.ifindex(), w.wireIfindex('n1')])();
  reconciler.setTproxy(tproxyConfig(undefined, PROXY.v4, PROXY.v6));
  const model = w.model();
  const policy = computePolicy(model, { nodeName: 'n1', ...identityAllocators() }).state;
  const state = withMesh(policy, meshDatapath(meshWorkloads(model, 'cluster.local'), 'n1'));
  t.same(state.endpoints.filter((e) => e.meshed).map((e) => `${e.pod} ${e.ip}`).sort(), [`shop/a ${a.ip}`, `shop/a ${a.ip6}`], 'a is the meshed endpoint of n1');
  t.same(state.meshDestinations?.map((d) => d.prefix).sort(), [`${b.ip}/32`, `${b.ip6}/128`], 'b is the mesh destination');
  t.same(reconciler.apply(state).errors, []);
  const aOnWire = `host ${a.ip} or host ${a.ip6}`;

  await t.test('no outbound listener: dropped on n1, counted, not one packet of it on the wire', async (t) => {
    const noProxy = reconciler.dropCounters()['no-proxy'];
    const cap = await w.capture('n1', aOnWire);
    const [r4, r6] = a.client([{ op: 'http', host: b.ip, port: 80 }, { op: 'http', host: b.ip6, port: 80 }]);
    t.same([seen(r4[0]), seen(r6[0])], ['timeout', 'timeout'], 'a cannot reach b over either family');
    t.same(await cap.stop(), [], 'the wire saw no packet from or to a');
    t.ok(reconciler.dropCounters()['no-proxy'] >= noProxy + 2, 'each SYN was counted as a redirect without a listener');
  });

  const envoy = await startEnvoy(t, bootstrap, [], n1.ns);
  const accepted = async () => {
    const s = await envoy.stats('downstream_cx_total');
    return Object.entries(s)
      .filter(([k]) => /^listener\..*_15001\.downstream_cx_total$/.test(k))
      .reduce((n, [, v]) => n + v, 0);
  };
  await eventually(async () => Object.keys(await envoy.stats('_15001.downstream_cx_total')).length === 2, 10_000, 'both outbound listeners');

  await t.test('with the listener on n1’s proxy address: the flow lands on it and reaches b, a’s address stays on n1', async (t) => {
    const before = await accepted();
    const cap = await w.capture('n1', aOnWire);
    const [r4, r6] = a.client([{ op: 'http', host: b.ip, port: 80 }, { op: 'http', host: b.ip6, port: 80 }]);
    const [s4, s6] = [seen(r4[0]), seen(r6[0])];
    t.same([s4.name, s4.local], ['b', `${b.ip}:80`], 'the original destination is preserved (IPv4)');
    t.same([s6.name, s6.local], ['b6', `${b.ip6}:80`], 'the original destination is preserved (IPv6)');
    t.same([s4.remote, s6.remote], [WIRE.n1.ip4, WIRE.n1.ip6], 'b was dialled by n1’s Envoy, not by a');
    t.equal((await accepted()) - before, 2, 'the outbound listener accepted both connections');
    t.same(await envoy.clusterHosts('original_dst'), [`${b.ip}:80`, `${b.ip6}:80`].sort(), 'Envoy connected to the original destinations');
    t.same(await cap.stop(), [], 'still no packet of a’s on the wire');
  });

  await t.test('a non-meshed pod goes plain over the wire, and b’s replies to it come back', async (t) => {
    const before = await accepted();
    const cap = await w.capture('n1', `host ${c.ip}`);
    const [r] = c.client([{ op: 'http', host: b.ip, port: 80 }]);
    t.same([seen(r[0]).name, seen(r[0]).remote], ['b', c.ip], 'c reached b itself');
    const lines = await cap.stop();
    t.ok(lines.some((l) => l.includes(`${c.ip}.`) && l.includes(`${b.ip}.80`)), `the wire carried c’s packets (${lines.length})`);
    t.equal(await accepted(), before, 'Envoy saw none of it');
  });

  await t.test('replies of a connection the meshed pod accepted are not steered', async (t) => {
    const before = { cx: await accepted(), drops: reconciler.dropCounters() };
    // b's own node has no programs: its connection reaches a in plaintext, and a's answers go to a mesh destination.
    const [r] = b.client([{ op: 'http', host: a.ip, port: 80, count: 3 }]);
    t.same(r.map((x: any) => [seen(x).name, seen(x).remote]), Array(3).fill(['a', b.ip]), 'b reached a and got its answers');
    t.equal(await accepted(), before.cx, 'a’s replies did not go into Envoy');
    t.same(reconciler.dropCounters(), before.drops, 'nor were they dropped');
  });
});
