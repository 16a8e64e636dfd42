// What policy says about meshed traffic: selectors become the SPIFFE IDs of
// the meshed pods they select, per destination port; `authentication: {mode:
// required}` takes a rule out of the plaintext entries and keeps it for mTLS.
import t from 'tap';
import { computeMeshAuthz, lookupVerdict, trace, type MeshAuthz, type PolicyResult } from '../src/policy/index.js';
import { formatTrace } from '../src/policy-cli.js';
import { ccnp, cnp, compute, knp, model, namespace, pod } from './helpers/policy-world.js';

const TD = 'cluster.local';
const id = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;
const MESHED = { 'sluice.io/mesh': 'enabled' };

/** A server with a named port in ns x on this node; clients of three SAs in x (one on another node) and y; some outside the mesh. */
const server = (() => {
  const p = pod('server', '10.0.1.1', { app: 'server' }, { namespace: 'x', sa: 'server' }) as any;
  p.spec.containers = [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }, { name: 'dns', containerPort: 53, protocol: 'UDP' }] }];
  return p;
})();
const world = [
  namespace('x', MESHED),
  namespace('y', MESHED),
  namespace('plain'),
  server,
  pod('c1', '10.0.1.2', { app: 'client' }, { namespace: 'x', sa: 'alpha' }),
  pod('c2', '10.0.2.2', { app: 'client' }, { namespace: 'x', sa: 'beta', node: 'node-b' }),
  pod('c3', '10.0.1.3', { app: 'client' }, { namespace: 'y', sa: 'gamma' }),
  pod('c4', '10.0.1.4', { app: 'client' }, { namespace: 'plain', sa: 'delta' }),
  pod('c5', '10.0.1.5', { app: 'client', 'sluice.io/mesh': 'disabled' }, { namespace: 'x', sa: 'epsilon' }),
];

function run(policies: object[]): { r: PolicyResult; authz: MeshAuthz } {
  const objects = [...world, ...policies];
  const r = compute(objects);
  return { r, authz: computeMeshAuthz(model(objects), r, TD) };
}

const ep = (r: PolicyResult, key: string) => r.state.endpoints.find((e) => e.pod === key)!;

/** The plaintext datapath's verdict for `from` → `to` on TCP `port` at `to`'s ingress. */
function plaintext(r: PolicyResult, from: string, to: string, port: number): string {
  const dst = ep(r, to);
  const hit = lookupVerdict(r.state.entries, { endpoint: dst.endpoint, direction: 'ingress', identity: ep(r, from).identity, proto: 6, port });
  return hit?.verdict ?? (dst.ingressEnforced ? 'deny' : 'allow');
}

const fromClients = (extra: object = {}) => ({
  endpointSelector: { matchLabels: { app: 'server' } },
  ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }], ...extra }],
});

t.test('fromEndpoints: the SPIFFE IDs of the meshed pods selected now, scoped to the namespace', async (t) => {
  const { r, authz } = run([cnp('p', fromClients(), 'x')]);
  t.same(r.issues, []);
  t.same([...authz.keys()], ['x/server'], 'only the selected pod; the other local meshed pods are absent');
  t.same(authz.get('x/server'), {
    pod: 'x/server',
    ips: ['10.0.1.1'],
    enforced: true,
    allow: [{ ports: [{ from: 8080, to: 8080 }], principals: [id('x', 'alpha'), id('x', 'beta')] }],
    deny: [],
  }, 'both service accounts of ns x (one pod on another node); not y\'s gamma, not the unmeshed epsilon');
});

t.test('a selector that names the namespace reaches it', async (t) => {
  const { authz } = run([
    cnp('p', { endpointSelector: { matchLabels: { app: 'server' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client', 'k8s:io.kubernetes.pod.namespace': 'y' } }] }] }, 'x'),
  ]);
  t.same(authz.get('x/server')?.allow, [{ ports: 'any', principals: [id('y', 'gamma')] }]);
});

t.test('ingressDeny gives deny principals; a deny-only policy without default deny keeps any allowed', async (t) => {
  const { authz } = run([
    cnp('p', {
      endpointSelector: { matchLabels: { app: 'server' } },
      enableDefaultDeny: { ingress: false },
      ingressDeny: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: '9000', endPort: 9005, protocol: 'TCP' }] }] }],
    }, 'x'),
  ]);
  t.same(authz.get('x/server'), {
    pod: 'x/server',
    ips: ['10.0.1.1'],
    enforced: true,
    allow: [{ ports: 'any', principals: 'any' }],
    deny: [{ ports: [{ from: 9000, to: 9005 }], principals: [id('x', 'alpha'), id('x', 'beta')] }],
  });
});

t.test('ports: ranges, named ports as the L4 path resolves them, TCP only', async (t) => {
  const { authz } = run([
    cnp('p', {
      endpointSelector: { matchLabels: { app: 'server' } },
      ingress: [
        { fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: '7000', endPort: 7010, protocol: 'TCP' }, { port: '7011' }] }] },
        { fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: 'http', protocol: 'TCP' }] }] },
        { fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }, { port: 'dns', protocol: 'UDP' }] }] },
        { fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: 'nosuch', protocol: 'TCP' }] }] },
      ],
    }, 'x'),
  ]);
  const principals = [id('x', 'alpha'), id('x', 'beta')];
  t.same(authz.get('x/server')?.allow, [
    { ports: [{ from: 7000, to: 7011 }], principals },
    { ports: [{ from: 8080, to: 8080 }], principals },
  ], 'ANY on 7011 keeps its TCP part and joins the range; UDP and an unknown name add nothing');
});

t.test('CCNP selects across namespaces; unmeshed peers contribute no principal', async (t) => {
  const { authz } = run([
    ccnp('c', { endpointSelector: { matchLabels: { app: 'server' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }] }] }),
  ]);
  t.same(authz.get('x/server')?.allow, [{ ports: 'any', principals: [id('x', 'alpha'), id('x', 'beta'), id('y', 'gamma')] }], 'not plain/delta, not x/epsilon');
});

t.test('entities and CIDRs: cluster and all are any authenticated peer; a CIDR names none', async (t) => {
  const { authz } = run([
    cnp('p', {
      endpointSelector: { matchLabels: { app: 'server' } },
      ingress: [
        { fromEntities: ['cluster'], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] },
        { toPorts: [{ ports: [{ port: '81', protocol: 'TCP' }] }] },
        { fromCIDR: ['10.0.0.0/8'], toPorts: [{ ports: [{ port: '82', protocol: 'TCP' }] }] },
        { fromEntities: ['host'], toPorts: [{ ports: [{ port: '83', protocol: 'TCP' }] }] },
      ],
    }, 'x'),
  ]);
  t.same(authz.get('x/server')?.allow, [
    { ports: [{ from: 80, to: 80 }], principals: 'any' },
    { ports: [{ from: 81, to: 81 }], principals: 'any' },
  ]);
});

t.test('Kubernetes NetworkPolicy: podSelector in its namespace, namespaceSelector across', async (t) => {
  const { r, authz } = run([
    knp('k', {
      podSelector: { matchLabels: { app: 'server' } },
      ingress: [
        { from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 8080 }] },
        { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'y' } } }], ports: [{ port: 'http' }] },
        { from: [{ ipBlock: { cidr: '192.168.0.0/16' } }] },
      ],
    }, 'x'),
    knp('deny-all', { podSelector: { matchLabels: { app: 'client' } }, policyTypes: ['Ingress'] }, 'y'),
  ]);
  t.same(r.issues, []);
  t.same(authz.get('x/server')?.allow, [
    { ports: [{ from: 8080, to: 8080 }], principals: [id('x', 'alpha'), id('x', 'beta')] },
    { ports: [{ from: 8080, to: 8080 }], principals: [id('y', 'gamma')] },
  ]);
  t.same(authz.get('y/c3'), { pod: 'y/c3', ips: ['10.0.1.3'], enforced: true, allow: [], deny: [] }, 'a policy with no rules refuses every meshed peer');
  t.notOk(authz.has('plain/c4'), 'an unmeshed pod has no mesh authz');
});

t.test('authentication required: no plaintext allow entries, the mesh allow stays', async (t) => {
  const plain = run([cnp('p', fromClients(), 'x')]);
  const mtls = run([cnp('p', fromClients({ authentication: { mode: 'required' } }), 'x')]);
  t.same(mtls.r.issues, []);
  const client = ep(mtls.r, 'x/c1').identity;
  const server = ep(mtls.r, 'x/server').endpoint;
  t.ok(plain.r.state.entries.some((e) => e.endpoint === server && e.direction === 'ingress' && e.identity === client && e.verdict === 'allow'), 'without it, the client has an allow entry');
  t.same(mtls.r.state.entries.filter((e) => e.endpoint === server && e.direction === 'ingress'), [], 'with it, the server has no ingress entry at all');
  t.ok(ep(mtls.r, 'x/server').ingressEnforced, 'and stays enforced');
  t.equal(plaintext(plain.r, 'x/c1', 'x/server', 8080), 'allow');
  t.equal(plaintext(mtls.r, 'x/c1', 'x/server', 8080), 'deny', 'plaintext from the client is dropped');
  t.same(mtls.authz.get('x/server'), plain.authz.get('x/server'), 'the mesh allow is the same');
  const tr = trace(mtls.r, { from: 'x/c1', to: 'x/server', port: 8080 });
  t.match(tr.decidedBy, { verdict: 'deny', reason: 'default-deny', authRequired: { policy: 'CiliumNetworkPolicy x/p', field: 'spec.ingress[0].toPorts[0].ports[0]' } });
  t.match(formatTrace({ query: { from: 'x/c1', to: 'x/server', port: 8080 }, ...tr }), /admits this only over mTLS/, 'the CLI says so');
  t.notOk(trace(mtls.r, { from: 'x/c1', to: 'x/server', port: 9999 }).decidedBy.authRequired, 'another port: no rule requiring authentication applies');

  const disabled = run([cnp('p', fromClients({ authentication: { mode: 'disabled' } }), 'x')]);
  t.same(disabled.r.state.entries, plain.r.state.entries, 'mode disabled is as if absent');

  const egress = run([
    cnp('e', { endpointSelector: { matchLabels: { app: 'client' } }, egress: [{ toEndpoints: [{ matchLabels: { app: 'server' } }], authentication: { mode: 'required' } }] }, 'x'),
  ]);
  t.same(egress.r.issues, []);
  const c1 = ep(egress.r, 'x/c1');
  t.notOk(egress.r.state.entries.some((e) => e.endpoint === c1.endpoint && e.verdict !== 'mesh'), 'egress: no plaintext allow either, only mesh-only entries (policy-mesh-egress.test.ts)');
  t.ok(c1.egressEnforced);
});

t.test('a bad authentication is an issue naming the object and field; the policy is not enforced', async (t) => {
  const cases: [object, string, RegExp][] = [
    [fromClients({ authentication: { mode: 'test-always-fail' } }), 'spec.ingress[0].authentication.mode', /not supported/],
    [fromClients({ authentication: { mode: 'sometimes' } }), 'spec.ingress[0].authentication.mode', /unknown mode "sometimes"/],
    [fromClients({ authentication: { mode: 'required', extra: 1 } }), 'spec.ingress[0].authentication.extra', /unknown field/],
    [fromClients({ authentication: 'required' }), 'spec.ingress[0].authentication', /want \{mode\}/],
    [{ endpointSelector: {}, ingressDeny: [{ fromEntities: ['world'], authentication: { mode: 'required' } }] }, 'spec.ingressDeny[0].authentication', /deny rules/],
    [
      { endpointSelector: {}, ingress: [{ authentication: { mode: 'required' }, toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] }] },
      'spec.ingress[0].authentication',
      /L7/,
    ],
  ];
  for (const [spec, field, message] of cases) {
    const { r, authz } = run([cnp('bad', spec, 'x')]);
    t.equal(r.issues.length, 1, field);
    t.match(r.issues[0], { object: 'CiliumNetworkPolicy x/bad', field, message });
    t.equal(authz.size, 0, 'no mesh authz from it');
    t.notOk(ep(r, 'x/server').ingressEnforced, 'and no plaintext enforcement');
  }
});

t.test('deterministic: the same input in another order gives the same authz', async (t) => {
  const policies = [cnp('p', fromClients(), 'x'), ccnp('c', { endpointSelector: { matchLabels: { app: 'server' } }, ingressDeny: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }] }] })];
  const a = run(policies).authz;
  const objects = [...world, ...policies].reverse();
  const r = compute(objects);
  const b = computeMeshAuthz(model(objects), r, TD);
  t.same([...b.entries()], [...a.entries()]);
});
