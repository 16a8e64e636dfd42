// Pod A on n1 → Service → pod B on n2, through the real agents and Envoys of
// both nodes (standalone, the same YAML, --node n1 and n2) on the real
// kernel: n1's socket LB turns the ClusterIP into B's address, the wire
// carries the flow. Plain pods go in plaintext: the baseline mesh-e2e
// inverts. These agents have no CA, so the mesh label of namespace shop has no
// effect here (mesh-steer shows meshed flows fail closed without a listener).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { eventually } from './helpers/envoy.js';
import { endpointSlice, service } from './helpers/kube.js';
import { twoNodeAgents } from './helpers/two-node-agents.js';
import { twoNodeWorld, type TwoNodePod } from './helpers/two-node-world.js';

const CLIENT = new URL('./helpers/netns-client.mjs', import.meta.url).pathname;
const VIP = { plain: '10.96.77.10', shop: '10.96.77.11' };
const PORT = 80;
const TARGET = 8080;

/** The echo's name for a reply, else the client's error. */
const answer = (r: any) => (r.error ? r.code ?? r.error : JSON.parse(r.backend).name);

t.test('pod A on n1 reaches a Service backed by pod B on n2, through both nodes’ agents', async (t) => {
  const w = await twoNodeWorld(t, { plain: false, shop: true }, [
    { name: 'a', node: 'n1', namespace: 'plain' },
    { name: 'ma', node: 'n1', namespace: 'shop', serviceAccount: 'client' },
    { name: 'b', node: 'n2', namespace: 'plain' },
    { name: 'mb', node: 'n2', namespace: 'shop', serviceAccount: 'server' },
  ]);
  const { a, ma, b, mb } = w.pods;
  const backed = (name: string, ns: keyof typeof VIP, pod: TwoNodePod) => [
    service(name, [{ port: PORT, name: 'http', targetPort: TARGET }], { namespace: ns, clusterIP: VIP[ns] }),
    endpointSlice(name, 'http', TARGET, [{ ip: pod.ip }], { namespace: ns }),
  ];
  w.yaml.write('services.yaml', [...backed('b', 'plain', b), ...backed('mb', 'shop', mb)]);
  await Promise.all([b.servers({ httpEcho: [{ ip: b.ip, port: TARGET, name: 'b' }] }), mb.servers({ httpEcho: [{ ip: mb.ip, port: TARGET, name: 'mb' }] })]);
  const agents = await twoNodeAgents(t, w);
  for (const n of ['n1', 'n2'] as const)
    t.equal(JSON.parse((await agents.nodes[n].admin('/server_info')).body).node.id, n, `${n}’s Envoy is its own node’s, fed by its own agent`);

  await t.test('plain pods: A → VIP and A → B’s pod IP work across the nodes, in plaintext on the wire', async (t) => {
    await eventually(() => answer(a.client([{ op: 'http', host: VIP.plain, port: PORT }])[0][0]) === 'b', 30_000, 'the Service VIP on n1');
    const cap = await w.capture('n1', `host ${b.ip}`, { payload: true });
    const [viaVip, direct] = a.client([{ op: 'http', host: VIP.plain, port: PORT }, { op: 'http', host: b.ip, port: TARGET }]);
    t.equal(answer(viaVip[0]), 'b', 'the VIP answers, from B on n2');
    t.same([JSON.parse(viaVip[0].backend).local, JSON.parse(viaVip[0].backend).remote], [`${b.ip}:${TARGET}`, a.ip], 'B saw A itself, on its target port');
    t.equal(viaVip[0].peer.address, VIP.plain, 'A’s socket still names the VIP (translated at connect, in the kernel)');
    t.equal(answer(direct[0]), 'b', 'B’s pod IP answers directly');
    const lines = await cap.stop();
    t.ok(lines.some((l) => l.includes(`${a.ip}.`) && l.includes(`> ${b.ip}.${TARGET}`)), 'the wire carried A’s packets to B');
    // -A prints each packet's bytes; tcpdump's own HTTP decoding ("HTTP: GET ...") on the header line is not the bytes.
    t.equal(lines.filter((l) => l.includes('GET / HTTP/1.1') && !l.includes('HTTP: ')).length, 2, 'both requests crossed the wire in plaintext');
    t.ok(lines.some((l) => l.includes('"name":"b"')), 'and B’s answers too');
  });

  await t.test('a pod of n2 reaches the VIP through its own node’s datapath; a process in no node’s cgroup is not load balanced', async (t) => {
    // mb is meshed, b is not: no steering, a plain flow on n2 alone.
    const [r] = mb.client([{ op: 'http', host: VIP.plain, port: PORT }]);
    t.equal(answer(r[0]), 'b', 'n2’s socket LB translated its pod’s connection');
    // The same client in A's netns but outside every node's cgroup (the test's own): no socket LB acts for it.
    const outside = JSON.parse(execFileSync('nsenter', [`--net=/var/run/netns/${a.ns}`, process.execPath, CLIENT, JSON.stringify([{ op: 'http', host: VIP.plain, port: PORT }])], { encoding: 'utf8' }));
    t.not(answer(outside[0][0]), 'b', `a process in no node’s cgroup is not load balanced (${answer(outside[0][0])})`);
  });

  await t.test('n2’s agent restarts; its Envoy ACKs the new one, and the path works again', async (t) => {
    await agents.restart('n2');
    await eventually(() => answer(a.client([{ op: 'http', host: VIP.plain, port: PORT }])[0][0]) === 'b', 30_000, 'the path after the restart');
    t.match(agents.nodes.n2.output(), /adopted the datapath a previous agent left pinned/, 'the new agent adopted the pinned datapath');
  });
});
