// Policy kinds and rules end to end, through `sluice agent --datapath` on the
// real kernel: egressDeny toEntities world against a host outside the pod
// range, a CiliumClusterwideNetworkPolicy across namespaces, and a Kubernetes
// NetworkPolicy, each applied and removed from YAML.
import t from 'tap';
import { eventually } from './helpers/envoy.js';
import { agentPolicyWorld, namespaceObject } from './helpers/policy-agent-world.js';
import { ccnp, cnp, knp } from './helpers/policy-world.js';

const A = '10.0.2.10'; // default/a
const S = '10.0.2.11'; // default/s, the server
const B = '10.0.2.12'; // other/b
const WORLD = '192.0.2.10'; // no Pod: outside the cluster

t.test('egressDeny world, a CCNP across namespaces and a NetworkPolicy, on the real kernel', async (t) => {
  const w = await agentPolicyWorld(
    t,
    [
      { name: 'a', ip: A, labels: { app: 'a' } },
      { name: 's', ip: S, labels: { app: 's' }, http: [80, 8080] },
      { name: 'b', namespace: 'other', ip: B, labels: { app: 'b' } },
      { name: 'world', ip: WORLD, labels: {}, http: [80], outside: true },
    ],
    { proxyPorts: [20620, 20629] },
  );
  w.write('namespaces.yaml', [namespaceObject('default'), namespaceObject('other')]);
  await eventually(() => w.http('a', WORLD, 80) === '200', 15_000, 'the world host');
  t.equal(w.http('b', S, 80), '200', 'no policy: b reaches s');

  t.test('egressDeny toEntities world blocks the world, cluster traffic passes', async (t) => {
    w.write('policy.yaml', [
      cnp('no-world', { endpointSelector: { matchLabels: { app: 'a' } }, egress: [{ toEntities: ['all'] }], egressDeny: [{ toEntities: ['world'] }] }),
    ]);
    await eventually(() => w.http('a', WORLD, 80) === 'timeout', 30_000, 'the deny');
    const before = w.drops();
    t.equal(w.http('a', WORLD, 80), 'timeout', 'a cannot reach the host outside the cluster');
    t.ok(w.drops()['deny-rule'] > before['deny-rule'], 'dropped by the deny rule, and counted');
    t.equal(w.http('a', S, 80), '200', 'a still reaches a pod of the cluster');
    t.equal(w.http('a', S, 8080), '200', 'on any port');
    t.equal(w.http('b', WORLD, 80), '200', 'b, which the policy does not select, still reaches the world');
    w.write('policy.yaml', []);
    await eventually(() => w.http('a', WORLD, 80) === '200', 30_000, 'the world again once the policy goes');
  });

  t.test('a CCNP selects pods in every namespace and admits peers by namespace', async (t) => {
    w.write('policy.yaml', [
      ccnp('from-other', {
        endpointSelector: { matchLabels: { app: 's' } },
        ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'other' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
      }),
    ]);
    await eventually(() => w.http('a', S, 80) === 'timeout', 30_000, 'the CCNP');
    t.equal(w.http('a', S, 80), 'timeout', 'a, in default, is not admitted');
    t.equal(w.http('b', S, 80), '200', 'b, in other, is');
    t.equal(w.http('b', S, 8080), 'timeout', "s's other ports are closed");
    w.write('policy.yaml', []);
    await eventually(() => w.http('a', S, 80) === '200', 30_000, 'a admitted again once the CCNP goes');
  });

  t.test('a Kubernetes NetworkPolicy is enforced, scoped to its namespace', async (t) => {
    w.write('policy.yaml', [
      knp('s-from-a', { podSelector: { matchLabels: { app: 's' } }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }], ports: [{ port: 8080, protocol: 'TCP' }] }] }),
    ]);
    await eventually(() => w.http('a', S, 80) === 'timeout', 30_000, 'the NetworkPolicy');
    t.equal(w.http('a', S, 8080), '200', 'a reaches s on the port the policy names');
    t.equal(w.http('a', S, 80), 'timeout', 'and not on another');
    t.equal(w.http('b', S, 8080), 'timeout', "b is in another namespace: the policy's podSelector does not reach it");
    t.equal(w.http('s', A, 80), 'ECONNREFUSED', "s's egress is not restricted (a has no server there; the connection is refused, not dropped)");
    w.write('policy.yaml', []);
    await eventually(() => w.http('b', S, 8080) === '200', 30_000, 'b admitted again once the NetworkPolicy goes');
  });
});
