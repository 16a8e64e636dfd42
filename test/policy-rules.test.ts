// Policy semantics in the pure room: deny over allow, namespace scoping, CCNP,
// Kubernetes NetworkPolicy, CIDRs with except, entities. Every case also checks
// that the datapath entries and trace agree on every pod pair.
import t from 'tap';
import { ReservedIdentity, lookupVerdict, trace, type PolicyResult } from '../src/policy/index.js';
import { ccnp, cnp, compute, demoPods, knp, namespace, pod } from './helpers/policy-world.js';

const ep = (r: PolicyResult, key: string) => {
  const e = r.state.endpoints.find((e) => e.pod === key);
  if (!e) throw new Error(`no endpoint ${key}`);
  return e;
};

/** What the datapath does with a connection to `to` from `identity`. */
function datapath(r: PolicyResult, direction: 'ingress' | 'egress', at: string, identity: number, port: number, proto = 6): 'allow' | 'deny' | 'redirect' {
  const e = ep(r, at);
  const hit = lookupVerdict(r.state.entries, { endpoint: e.endpoint, direction, identity, proto, port });
  if (hit) return hit.verdict;
  return (direction === 'ingress' ? e.ingressEnforced : e.egressEnforced) ? 'deny' : 'allow';
}

/** The entries and trace agree for every pair of pods, both directions, on these ports. */
function agree(t: Tap.Test, r: PolicyResult, ports: number[], protos = [6, 17]) {
  let checked = 0;
  for (const from of r.state.endpoints)
    for (const to of r.state.endpoints)
      for (const port of ports)
        for (const proto of protos) {
          const name = proto === 6 ? 'TCP' : proto === 17 ? 'UDP' : 'SCTP';
          const tr = trace(r, { from: from.pod, to: to.pod, port, proto: name });
          const steps = Object.fromEntries(tr.steps.map((s) => [s.direction, s.verdict]));
          const dp = { egress: datapath(r, 'egress', from.pod, to.identity, port, proto), ingress: datapath(r, 'ingress', to.pod, from.identity, port, proto) };
          if (steps.egress !== dp.egress || steps.ingress !== dp.ingress) t.fail(`${from.pod} -> ${to.pod} ${name}/${port}: trace ${JSON.stringify(steps)} vs entries ${JSON.stringify(dp)}`);
          checked++;
        }
  t.ok(checked > 0, `entries and trace agree on ${checked} cases`);
}

t.test('deny wins over allow, also over a narrower allow', async (t) => {
  const r = compute([
    ...demoPods,
    cnp('allow-empire', { endpointSelector: { matchLabels: { class: 'deathstar' } }, ingress: [{ fromEndpoints: [{ matchLabels: { org: 'empire' } }] }] }),
    cnp('allow-tie-80', {
      endpointSelector: { matchLabels: { class: 'deathstar' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { class: 'tiefighter' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
    }),
    cnp('deny-tie-range', {
      endpointSelector: { matchLabels: { class: 'deathstar' } },
      ingressDeny: [{ fromEndpoints: [{ matchLabels: { class: 'tiefighter' } }], toPorts: [{ ports: [{ port: '79', endPort: 90, protocol: 'TCP' }] }] }],
    }),
    cnp('deny-all-udp-53', { endpointSelector: { matchLabels: { class: 'deathstar' } }, ingressDeny: [{ toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }] }] }] }),
  ]);
  t.same(r.issues, []);
  const tie = ep(r, 'default/tiefighter').identity;
  const ds = ep(r, 'default/deathstar').identity;
  for (const port of [79, 80, 85, 90]) t.equal(datapath(r, 'ingress', 'default/deathstar', tie, port), 'deny', `tiefighter TCP ${port} denied`);
  for (const port of [78, 91, 443]) t.equal(datapath(r, 'ingress', 'default/deathstar', tie, port), 'allow', `tiefighter TCP ${port} allowed`);
  t.equal(datapath(r, 'ingress', 'default/deathstar', tie, 80, 17), 'allow', 'UDP 80 is not in the deny');
  t.equal(datapath(r, 'ingress', 'default/deathstar', ds, 80), 'allow', 'another empire identity keeps port 80');
  t.equal(datapath(r, 'ingress', 'default/deathstar', tie, 53, 17), 'deny', 'a deny from any peer wins over an identity allow');
  t.equal(datapath(r, 'ingress', 'default/deathstar', ds, 53, 17), 'deny');
  t.equal(datapath(r, 'ingress', 'default/deathstar', ReservedIdentity.World, 53, 17), 'deny');
  t.equal(datapath(r, 'ingress', 'default/deathstar', ep(r, 'default/xwing').identity, 80), 'deny', 'alliance: default deny');
  // The range 79-90 as prefixes: 79/16, 80/13 (80-87), 88/15 (88-89), 90/16.
  const denies = r.state.entries.filter((e) => e.identity === tie && e.verdict === 'deny' && e.proto === 6).map((e) => [e.port, e.portPrefixLen]);
  t.same(denies, [[79, 16], [80, 13], [88, 15], [90, 16]]);
  const tr = trace(r, { from: 'default/tiefighter', to: 'default/deathstar', port: 80 });
  t.match(tr.decidedBy, { verdict: 'deny', policy: 'CiliumNetworkPolicy default/deny-tie-range', field: 'spec.ingressDeny[0].toPorts[0].ports[0]' });
  agree(t, r, [53, 78, 79, 80, 88, 90, 91]);
});

t.test('egressDeny toEntities world beats a narrower toCIDR allow; cluster traffic passes', async (t) => {
  const r = compute([
    ...demoPods,
    cnp('egress', {
      endpointSelector: { matchLabels: { class: 'xwing' } },
      egress: [{ toEntities: ['cluster'] }, { toCIDR: ['203.0.113.0/24'] }],
      egressDeny: [{ toEntities: ['world'] }],
    }),
  ]);
  t.same(r.issues, []);
  const cidrId = r.state.ipcache.find((c) => c.prefix === '203.0.113.0/24')!.identity;
  t.ok(cidrId >= 1 << 24, 'CIDR identity from FIRST_CIDR_IDENTITY');
  t.equal(datapath(r, 'egress', 'default/xwing', cidrId, 443), 'deny');
  t.equal(datapath(r, 'egress', 'default/xwing', ReservedIdentity.World, 443), 'deny');
  t.equal(datapath(r, 'egress', 'default/xwing', ep(r, 'default/deathstar').identity, 80), 'allow');
  t.equal(trace(r, { from: 'default/xwing', to: '203.0.113.9', port: 443 }).decidedBy.field, 'spec.egressDeny[0]');
  t.equal(trace(r, { from: 'default/xwing', to: '8.8.8.8', port: 53, proto: 'UDP' }).verdict, 'deny');
  t.equal(trace(r, { from: 'default/xwing', to: 'default/deathstar', port: 80 }).verdict, 'allow');
  agree(t, r, [80, 443]);
});

t.test('a CNP selects only its own namespace; its peers too unless they name one', async (t) => {
  const objs = [
    namespace('a', { team: 'red' }),
    namespace('b', { team: 'blue' }),
    pod('web', '10.0.2.1', { app: 'web' }, { namespace: 'a' }),
    pod('client', '10.0.2.2', { app: 'client' }, { namespace: 'a' }),
    pod('web', '10.0.3.1', { app: 'web' }, { namespace: 'b' }),
    pod('client', '10.0.3.2', { app: 'client' }, { namespace: 'b' }),
  ];
  const r = compute([
    ...objs,
    cnp('all-of-a', { endpointSelector: {}, ingress: [{ fromEndpoints: [{}] }] }, 'a'),
    // Names namespace b in its subject: still only ever selects namespace a.
    cnp('reach-into-b', { endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'b' } }, ingress: [{}] }, 'a'),
  ]);
  t.same(r.issues, []);
  t.ok(ep(r, 'a/web').ingressEnforced && ep(r, 'a/client').ingressEnforced, "a's pods enforced");
  t.notOk(ep(r, 'b/web').ingressEnforced || ep(r, 'b/client').ingressEnforced, "b's pods untouched");
  t.equal(trace(r, { from: 'a/client', to: 'a/web', port: 80 }).verdict, 'allow');
  t.equal(trace(r, { from: 'b/client', to: 'a/web', port: 80 }).verdict, 'deny', 'an empty fromEndpoints means this namespace');
  t.equal(trace(r, { from: 'a/client', to: 'b/web', port: 80 }).verdict, 'allow');
  agree(t, r, [80]);

  const cross = compute([
    ...objs,
    cnp('from-b', {
      endpointSelector: { matchLabels: { app: 'web' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client', 'k8s:io.kubernetes.pod.namespace': 'b' } }, { matchLabels: { 'io.cilium.k8s.namespace.labels.team': 'red' } }] }],
    }, 'a'),
  ]);
  t.equal(trace(cross, { from: 'b/client', to: 'a/web', port: 80 }).verdict, 'allow', 'a peer naming namespace b');
  t.equal(trace(cross, { from: 'a/client', to: 'a/web', port: 80 }).verdict, 'allow', 'a peer by namespace labels');
  t.equal(trace(cross, { from: 'b/web', to: 'a/web', port: 80 }).verdict, 'deny');
  t.notOk(ep(cross, 'b/web').ingressEnforced);
  agree(t, cross, [80]);
});

t.test('a CCNP applies across namespaces', async (t) => {
  const r = compute([
    pod('web', '10.0.2.1', { app: 'web' }, { namespace: 'a' }),
    pod('web', '10.0.3.1', { app: 'web' }, { namespace: 'b' }),
    pod('client', '10.0.3.2', { app: 'client' }, { namespace: 'b', sa: 'robot' }),
    pod('other', '10.0.3.3', { app: 'client' }, { namespace: 'b' }),
    ccnp('web', {
      endpointSelector: { matchLabels: { app: 'web' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { 'io.cilium.k8s.policy.serviceaccount': 'robot' } }], toPorts: [{ ports: [{ port: '8080' }] }] }],
    }),
  ]);
  t.same(r.issues, []);
  t.ok(ep(r, 'a/web').ingressEnforced && ep(r, 'b/web').ingressEnforced);
  t.equal(trace(r, { from: 'b/client', to: 'a/web', port: 8080 }).verdict, 'allow', 'across namespaces, by service account');
  t.equal(trace(r, { from: 'b/client', to: 'a/web', port: 8080, proto: 'UDP' }).verdict, 'allow', 'protocol ANY');
  t.equal(trace(r, { from: 'b/other', to: 'a/web', port: 8080 }).verdict, 'deny');
  t.not(ep(r, 'b/client').identity, ep(r, 'b/other').identity, 'the service account is part of the identity');
  agree(t, r, [8080, 80], [6, 17, 132]);
});

t.test('Kubernetes NetworkPolicy', async (t) => {
  const objs = [
    namespace('shop', { team: 'x' }),
    namespace('ops', { team: 'y' }),
    pod('api', '10.0.4.1', { app: 'api' }, { namespace: 'shop' }),
    pod('client', '10.0.4.2', { app: 'client' }, { namespace: 'shop' }),
    pod('client', '10.0.5.2', { app: 'client' }, { namespace: 'ops' }),
    pod('prom', '10.0.5.3', { app: 'prom' }, { namespace: 'ops' }),
  ];
  const r = compute([
    ...objs,
    knp('api', {
      podSelector: { matchLabels: { app: 'api' } },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        { from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 8000, endPort: 8003 }] },
        { from: [{ namespaceSelector: { matchLabels: { team: 'y' } }, podSelector: { matchLabels: { app: 'prom' } } }], ports: [{ port: 9090 }] },
        { from: [{ ipBlock: { cidr: '192.0.2.0/24', except: ['192.0.2.128/25'] } }] },
      ],
    }, 'shop'),
  ], { hostIPs: ['172.18.0.2'] });
  t.same(r.issues, []);
  const api = ep(r, 'shop/api');
  t.ok(api.ingressEnforced && api.egressEnforced, 'both policy types');
  t.notOk(ep(r, 'shop/client').ingressEnforced);
  for (const port of [8000, 8003]) t.equal(trace(r, { from: 'shop/client', to: 'shop/api', port }).verdict, 'allow', `endPort range: ${port}`);
  t.equal(trace(r, { from: 'shop/client', to: 'shop/api', port: 8004 }).verdict, 'deny');
  t.equal(trace(r, { from: 'shop/client', to: 'shop/api', port: 8000, proto: 'UDP' }).verdict, 'deny', 'protocol defaults to TCP');
  t.equal(trace(r, { from: 'ops/client', to: 'shop/api', port: 8000 }).verdict, 'deny', 'a bare podSelector is the own namespace');
  t.equal(trace(r, { from: 'ops/prom', to: 'shop/api', port: 9090 }).verdict, 'allow', 'namespaceSelector AND podSelector');
  t.equal(trace(r, { from: '192.0.2.5', to: 'shop/api', port: 22 }).verdict, 'allow', 'ipBlock');
  t.equal(trace(r, { from: '192.0.2.200', to: 'shop/api', port: 22 }).verdict, 'deny', 'ipBlock except');
  t.equal(trace(r, { from: 'shop/api', to: 'shop/client', port: 80 }).decidedBy.reason, 'default-deny', 'Egress with no rules: nothing leaves');
  agree(t, r, [80, 8000, 8003, 8004, 9090]);

  const all = compute([...objs, knp('open', { podSelector: {}, ingress: [{}] }, 'shop'), knp('deny-egress', { podSelector: {}, policyTypes: ['Egress'] }, 'ops')]);
  t.equal(trace(all, { from: '8.8.8.8', to: 'shop/api', port: 1 }).verdict, 'allow', 'a rule without from: every peer');
  t.ok(ep(all, 'shop/api').ingressEnforced);
  t.notOk(ep(all, 'shop/api').egressEnforced, 'no policyTypes and no egress: ingress only');
  t.equal(trace(all, { from: 'ops/prom', to: 'shop/api', port: 1 }).decidedBy.policy, 'NetworkPolicy ops/deny-egress');
  agree(t, all, [1, 80]);
});

t.test('CIDR rules with except have identities of their own', async (t) => {
  const r = compute([
    ...demoPods,
    cnp('out', { endpointSelector: { matchLabels: { class: 'xwing' } }, egress: [{ toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.96.0.0/12'] }] }] }),
  ]);
  t.same(r.issues, []);
  const id = (p: string) => r.state.ipcache.find((c) => c.prefix === p)?.identity;
  t.ok(id('10.0.0.0/8')! >= 1 << 24 && id('10.96.0.0/12')! >= 1 << 24 && id('10.0.0.0/8') !== id('10.96.0.0/12'));
  t.equal(trace(r, { from: 'default/xwing', to: '10.1.2.3', port: 80 }).verdict, 'allow');
  t.equal(trace(r, { from: 'default/xwing', to: '10.96.0.10', port: 80 }).verdict, 'deny', 'the except');
  t.equal(trace(r, { from: 'default/xwing', to: '192.168.0.1', port: 80 }).verdict, 'deny', 'outside the CIDR');
  t.equal(trace(r, { from: 'default/xwing', to: 'default/deathstar', port: 80 }).verdict, 'deny', 'pods are not CIDR peers, even within 10/8');
  const xw = ep(r, 'default/xwing');
  t.same(r.state.entries.filter((e) => e.endpoint === xw.endpoint).map((e) => [e.direction, e.identity, e.proto, e.verdict]), [['egress', id('10.0.0.0/8'), 0, 'allow']]);
});

t.test('entities', async (t) => {
  const objs = [...demoPods, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-b' }, status: { addresses: [{ type: 'InternalIP', address: '172.18.0.3' }] } }];
  const run = (entity: string) =>
    compute([...objs, cnp('e', { endpointSelector: { matchLabels: { class: 'deathstar' } }, ingress: [{ fromEntities: [entity] }, { fromCIDR: ['198.51.100.0/24'] }] })], { hostIPs: ['172.18.0.2'] });
  const from = (r: PolicyResult, who: string) => trace(r, { from: who, to: 'default/deathstar', port: 80 }).verdict;
  const world = run('world');
  t.same(world.issues, []);
  t.equal(from(world, '8.8.8.8'), 'allow');
  t.equal(from(world, 'default/xwing'), 'deny');
  t.equal(from(world, '172.18.0.2'), 'deny', 'the host is not world');
  const cluster = run('cluster');
  t.equal(from(cluster, 'default/xwing'), 'allow');
  t.equal(from(cluster, '172.18.0.2'), 'allow', 'host is in the cluster');
  t.equal(from(cluster, '172.18.0.3'), 'allow', 'remote nodes too');
  t.equal(from(cluster, '8.8.8.8'), 'deny');
  t.equal(from(cluster, '198.51.100.7'), 'allow', 'the CIDR rule beside it');
  const host = run('host');
  t.ok(host.state.ipcache.some((c) => c.prefix === '172.18.0.2/32' && c.identity === ReservedIdentity.Host));
  t.ok(host.state.ipcache.some((c) => c.prefix === '172.18.0.3/32' && c.identity === ReservedIdentity.RemoteNode));
  t.equal(from(host, '172.18.0.2'), 'allow');
  t.equal(from(host, '172.18.0.3'), 'deny');
  t.equal(from(run('remote-node'), '172.18.0.3'), 'allow');
  const reservedSel = compute([...objs, cnp('r', { endpointSelector: { matchLabels: { 'any:class': 'deathstar' } }, ingress: [{ fromEndpoints: [{ matchLabels: { 'reserved:host': '' } }] }] })], { hostIPs: ['172.18.0.2'] });
  t.same(reservedSel.issues, []);
  t.equal(from(reservedSel, '172.18.0.2'), 'allow', 'a reserved: selector is not scoped to the namespace');
  t.equal(from(reservedSel, 'default/tiefighter'), 'deny');
  const all = run('all');
  t.equal(from(all, '8.8.8.8'), 'allow');
  t.ok(all.state.entries.some((e) => e.identity === 0 && e.proto === 0 && e.verdict === 'allow'), 'all: identity 0');
  agree(t, all, [80]);
});

t.test('L7 headers and headerMatches reach the listener input', async (t) => {
  const r = compute([
    ...demoPods,
    cnp('hdr', {
      endpointSelector: { matchLabels: { class: 'deathstar' } },
      ingress: [{
        toPorts: [{
          ports: [{ port: '80' }],
          rules: { http: [{ method: 'GET', path: '/v1/.*', host: 'deathstar\\.local', headers: ['X-Has-Force: true', 'X-Pilot'], headerMatches: [{ name: 'X-Token', value: 'abc', mismatch: 'REPLACE' }, { name: 'X-Must', value: '1' }] }] },
        }],
      }],
    }),
  ]);
  t.same(r.issues, []);
  t.equal(r.l7.length, 1);
  t.same(r.l7[0].rules[0], {
    policy: 'CiliumNetworkPolicy default/hdr',
    field: 'spec.ingress[0].toPorts[0].rules.http[0]',
    peers: 'any',
    method: 'GET',
    path: '/v1/.*',
    host: 'deathstar\\.local',
    headers: [{ name: 'X-Has-Force', value: 'true' }, { name: 'X-Pilot' }],
    headerMatches: [{ name: 'X-Token', value: 'abc', mismatch: 'REPLACE' }, { name: 'X-Must', value: '1' }],
  });
  const ds = ep(r, 'default/deathstar');
  t.same(r.state.entries.map((e) => [e.endpoint, e.identity, e.proto, e.port, e.verdict]), [[ds.endpoint, 0, 6, 80, 'redirect']], 'protocol ANY with HTTP: TCP only');
  const q = { from: 'default/xwing', to: 'default/deathstar', port: 80, method: 'GET', path: '/v1/x', host: 'deathstar.local' };
  t.equal(trace(r, { ...q, headers: { 'x-has-force': 'true', 'X-Pilot': 'luke', 'X-Must': '1' } }).verdict, 'allow', 'a token mismatch with an action is not a denial');
  t.equal(trace(r, { ...q, headers: { 'X-Has-Force': 'true', 'X-Pilot': 'luke' } }).httpStatus, 403, 'a headerMatch without an action must match');
  t.equal(trace(r, { ...q, headers: { 'X-Has-Force': 'false', 'X-Pilot': 'luke', 'X-Must': '1' } }).verdict, 'deny');
});

t.test('bad input: one issue on the exact field, and that policy enforces nothing', async (t) => {
  const base = { endpointSelector: { matchLabels: { class: 'deathstar' } } };
  const tie = { fromEndpoints: [{ matchLabels: { org: 'empire' } }] };
  const http = (h: object) => ({ ...base, ingress: [{ ...tie, toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [h] } }] }] });
  const cases: [string, object, string, RegExp][] = [
    ['invalid regex', http({ path: '/v1/(' }), 'spec.ingress[0].toPorts[0].rules.http[0].path', /invalid regular expression/],
    ['backreference', http({ path: '/(a)\\1' }), 'spec.ingress[0].toPorts[0].rules.http[0].path', /backreferences/],
    ['lookahead', http({ method: '(?!DELETE).*' }), 'spec.ingress[0].toPorts[0].rules.http[0].method', /lookahead/],
    ['lookbehind', http({ host: '.*(?<=evil)' }), 'spec.ingress[0].toPorts[0].rules.http[0].host', /lookbehind/],
    ['unknown entity', { ...base, ingress: [{ fromEntities: ['cluster', 'galaxy'] }] }, 'spec.ingress[0].fromEntities[1]', /unknown entity "galaxy"/],
    ['unsupported entity', { ...base, ingress: [{ fromEntities: ['kube-apiserver'] }] }, 'spec.ingress[0].fromEntities[0]', /not supported/],
    ['port out of range', { ...base, ingress: [{ ...tie, toPorts: [{ ports: [{ port: '70000' }] }] }] }, 'spec.ingress[0].toPorts[0].ports[0].port', /out of range/],
    ['bad port name', { ...base, ingress: [{ ...tie, toPorts: [{ ports: [{ port: 'Web_Port' }] }] }] }, 'spec.ingress[0].toPorts[0].ports[0].port', /neither a port number nor a container port name/],
    ['named port with endPort', { ...base, ingress: [{ ...tie, toPorts: [{ ports: [{ port: 'http', endPort: 90 }] }] }] }, 'spec.ingress[0].toPorts[0].ports[0].endPort', /named port/],
    ['endPort below port', { ...base, ingress: [{ ...tie, toPorts: [{ ports: [{ port: '80', endPort: 79 }] }] }] }, 'spec.ingress[0].toPorts[0].ports[0].endPort', /want a port/],
    ['toFQDNs', { ...base, egress: [{ toFQDNs: [{ matchName: 'x.com' }] }] }, 'spec.egress[0].toFQDNs', /not supported/],
    ['toServices', { ...base, egress: [{ toServices: [{ k8sService: { serviceName: 'x' } }] }] }, 'spec.egress[0].toServices', /not supported/],
    ['toGroups', { ...base, egress: [{ toGroups: [{ aws: {} }] }] }, 'spec.egress[0].toGroups', /not supported/],
    ['kafka', { ...base, ingress: [{ toPorts: [{ ports: [{ port: '9092' }], rules: { kafka: [{ topic: 't' }] } }] }] }, 'spec.ingress[0].toPorts[0].rules.kafka', /not supported/],
    ['dns', { ...base, egress: [{ toPorts: [{ ports: [{ port: '53' }], rules: { dns: [{ matchPattern: '*' }] } }] }] }, 'spec.egress[0].toPorts[0].rules.dns', /not supported/],
    ['l7proto', { ...base, ingress: [{ toPorts: [{ ports: [{ port: '1' }], rules: { l7proto: 'x', l7: [] } }] }] }, 'spec.ingress[0].toPorts[0].rules.l7proto', /not supported/],
    ['icmps', { ...base, ingress: [{ icmps: [{ fields: [{ type: 8 }] }] }] }, 'spec.ingress[0].icmps', /not supported/],
    ['authentication mode', { ...base, ingress: [{ ...tie, authentication: { mode: 'test-always-fail' } }] }, 'spec.ingress[0].authentication.mode', /not supported/],
    ['bad CIDR', { ...base, ingress: [{ fromCIDR: ['10.0.0.0/33'] }] }, 'spec.ingress[0].fromCIDR[0]', /want a CIDR/],
    ['except outside', { ...base, ingress: [{ fromCIDRSet: [{ cidr: '10.0.0.0/8', except: ['11.0.0.0/8'] }] }] }, 'spec.ingress[0].fromCIDRSet[0].except[0]', /not within/],
    ['bad operator', { endpointSelector: { matchExpressions: [{ key: 'a', operator: 'Near' }] }, ingress: [{}] }, 'spec.endpointSelector.matchExpressions[0].operator', /unknown operator/],
    ['L7 on a range', { ...base, ingress: [{ toPorts: [{ ports: [{ port: '80', endPort: 81 }], rules: { http: [{}] } }] }] }, 'spec.ingress[0].toPorts[0].ports[0].endPort', /single port/],
    ['L7 in a deny', { ...base, ingressDeny: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{}] } }] }] }, 'spec.ingressDeny[0].toPorts[0].rules', /deny/],
    ['unknown protocol', { ...base, ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'ICMP' }] }] }] }, 'spec.ingress[0].toPorts[0].ports[0].protocol', /unknown protocol/],
    ['headerMatches secret', http({ headerMatches: [{ name: 'x', secret: { name: 's' } }] }), 'spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].secret', /Secrets/],
    ['mismatch action', http({ headerMatches: [{ name: 'x', value: 'y', mismatch: 'EXPLODE' }] }), 'spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].mismatch', /unknown action/],
    ['nodeSelector', { nodeSelector: {}, ingress: [{}] }, 'spec.nodeSelector', /not supported/],
    ['no selector', { ingress: [{}] }, 'spec.endpointSelector', /required/],
    ['unknown field', { ...base, ingress: [{ fromEndpoint: [{}] }] }, 'spec.ingress[0].fromEndpoint', /unknown field/],
  ];
  const good = cnp('good', { endpointSelector: { matchLabels: { class: 'xwing' } }, ingress: [{ fromEntities: ['world'] }] });
  for (const [name, spec, field, message] of cases) {
    const r = compute([...demoPods, good, cnp('bad', spec)]);
    t.equal(r.issues.length, 1, `${name}: one issue`);
    t.match(r.issues[0], { object: 'CiliumNetworkPolicy default/bad', field, message, origin: { file: 'policy.yaml', index: 4 } }, `${name}: ${r.issues[0]?.field}: ${r.issues[0]?.message}`);
    t.notOk(ep(r, 'default/deathstar').ingressEnforced || ep(r, 'default/deathstar').egressEnforced, `${name}: the bad policy enforces nothing`);
    t.equal(r.state.entries.filter((e) => e.endpoint === ep(r, 'default/deathstar').endpoint).length, 0, `${name}: no entries`);
    t.ok(ep(r, 'default/xwing').ingressEnforced, `${name}: the good policy still enforced`);
  }
  // In a policy that is partly fine, the fine part is not enforced either.
  const half = compute([...demoPods, cnp('half', { ...base, ingress: [tie], egress: [{ toFQDNs: [{ matchName: 'x' }] }] })]);
  t.equal(half.issues.length, 1);
  t.notOk(ep(half, 'default/deathstar').ingressEnforced, 'never half-enforced');
  // The same for the other kinds.
  const k = compute([...demoPods, knp('bad', { podSelector: {}, ingress: [{ ports: [{ port: 'web-' }] }] }), ccnp('bad', { endpointSelector: {}, ingress: [{ fromEntities: ['nowhere'] }] })]);
  t.same(k.issues.map((i) => [i.object, i.field]), [
    ['CiliumClusterwideNetworkPolicy bad', 'spec.ingress[0].fromEntities[0]'],
    ['NetworkPolicy default/bad', 'spec.ingress[0].ports[0].port'],
  ]);
  t.equal(k.state.entries.length, 0);
});

t.test('enableDefaultDeny: false keeps other traffic open while denies and L7 rules still apply', async (t) => {
  const r = compute([
    ...demoPods,
    cnp('soft', {
      endpointSelector: { matchLabels: { class: 'deathstar' } },
      enableDefaultDeny: { ingress: false },
      ingressDeny: [{ fromEndpoints: [{ matchLabels: { class: 'xwing' } }] }],
      ingress: [{ fromEndpoints: [{ matchLabels: { class: 'tiefighter' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] }],
    }),
  ]);
  t.same(r.issues, []);
  t.equal(trace(r, { from: 'default/xwing', to: 'default/deathstar', port: 443 }).verdict, 'deny');
  t.equal(trace(r, { from: '8.8.8.8', to: 'default/deathstar', port: 443 }).verdict, 'allow', 'not default deny');
  t.equal(trace(r, { from: 'default/tiefighter', to: 'default/deathstar', port: 80, method: 'PUT', path: '/' }).httpStatus, 403);
  t.equal(datapath(r, 'ingress', 'default/deathstar', ep(r, 'default/tiefighter').identity, 80), 'redirect');
  t.equal(datapath(r, 'ingress', 'default/deathstar', ReservedIdentity.World, 80), 'allow');
  agree(t, r, [80, 443]);
});

t.test('IPv6 pods and CIDRs', async (t) => {
  const r = compute([
    pod('a', 'fd00::a', { app: 'a' }),
    pod('b', 'fd00::b', { app: 'b' }),
    cnp('v6', { endpointSelector: { matchLabels: { app: 'a' } }, egress: [{ toCIDRSet: [{ cidr: '2001:db8::/32', except: ['2001:db8:1::/48'] }] }, { toEndpoints: [{ matchLabels: { app: 'b' } }] }] }),
  ]);
  t.same(r.issues, []);
  t.ok(r.state.ipcache.some((c) => c.prefix === 'fd00::a/128'));
  t.ok(r.state.ipcache.some((c) => c.prefix === '2001:db8:1::/48'));
  t.ok(r.state.ipcache.some((c) => c.prefix === '::/0' && c.identity === ReservedIdentity.World));
  t.equal(trace(r, { from: 'default/a', to: '2001:db8:2::1', port: 443 }).verdict, 'allow');
  t.equal(trace(r, { from: 'default/a', to: '2001:db8:1::1', port: 443 }).verdict, 'deny');
  t.equal(trace(r, { from: 'default/a', to: 'default/b', port: 443 }).verdict, 'allow');
  t.equal(trace(r, { from: 'default/a', to: '10.0.0.1', port: 443 }).verdict, 'deny');
});

t.test('named ports: the endpoint\'s own on ingress, the peer\'s on egress', async (t) => {
  const withPorts = (o: any, ports: { name: string; containerPort: number; protocol?: string }[]) => ({ ...o, spec: { ...o.spec, containers: [{ name: 'main', ports }] } });
  const r = compute([
    withPorts(pod('api', '10.0.6.1', { app: 'api' }), [{ name: 'http', containerPort: 8080 }, { name: 'dns', containerPort: 5353, protocol: 'UDP' }]),
    withPorts(pod('api-2', '10.0.6.4', { app: 'api' }), [{ name: 'http', containerPort: 8080 }]),
    withPorts(pod('web', '10.0.6.2', { app: 'web' }), [{ name: 'http', containerPort: 3000 }]),
    pod('client', '10.0.6.3', { app: 'client' }),
    knp('api', { podSelector: { matchLabels: { app: 'api' } }, ingress: [{ ports: [{ port: 'http' }, { port: 'dns', protocol: 'UDP' }, { port: 'missing' }] }] }),
    cnp('client', {
      endpointSelector: { matchLabels: { app: 'client' } },
      egress: [
        { toEndpoints: [{ matchLabels: { app: 'api' } }], toPorts: [{ ports: [{ port: 'http', protocol: 'TCP' }] }] },
        { toEndpoints: [{ matchLabels: { app: 'web' } }], toPorts: [{ ports: [{ port: 'http', protocol: 'TCP' }], rules: { http: [{ method: 'GET' }] } }] },
      ],
    }),
  ]);
  t.same(r.issues, []);
  const v = (from: string, to: string, port: number, proto: 'TCP' | 'UDP' = 'TCP') => trace(r, { from, to, port, proto }).verdict;
  t.equal(v('default/client', 'default/api', 8080), 'allow', 'ingress: http is 8080 on api; egress: 8080 is api\'s http');
  t.equal(v('default/web', 'default/api', 8080), 'allow');
  t.equal(v('default/web', 'default/api', 3000), 'deny', "web's http is not api's");
  t.equal(v('default/web', 'default/api', 5353, 'UDP'), 'allow', 'UDP name');
  t.equal(v('default/web', 'default/api', 5353, 'TCP'), 'deny', 'the name is UDP only');
  t.equal(v('default/client', 'default/web', 8080), 'deny', "egress: web's http is 3000");
  t.match(trace(r, { from: 'default/client', to: 'default/web', port: 3000 }).decidedBy, { direction: 'egress', verdict: 'redirect' });
  t.equal(trace(r, { from: 'default/client', to: 'default/web', port: 3000, method: 'GET', path: '/' }).verdict, 'allow');
  const api = ep(r, 'default/api');
  t.same(r.state.entries.filter((e) => e.endpoint === api.endpoint).map((e) => [e.identity, e.proto, e.port, e.portPrefixLen]).sort(), [[0, 17, 5353, 16], [0, 6, 8080, 16]]);
  const l = r.l7.find((x) => x.direction === 'egress')!;
  t.match(l, { port: 3000, identity: ep(r, 'default/client').identity });
  t.same((l.rules[0].peers as { identity: number }[]).map((p) => p.identity), [ep(r, 'default/web').identity], 'only the peer whose http is 3000');
  agree(t, r, [3000, 5353, 8080]);
});

t.test('peer selectors mean pods: {} in a CCNP and a namespace NotIn never reach the world or the host', async (t) => {
  const objs = [pod('web', '10.0.2.1', { app: 'web' }, { namespace: 'a' }), pod('client', '10.0.3.2', { app: 'client' }, { namespace: 'b' })];
  const r = compute([
    ...objs,
    ccnp('all-pods', { endpointSelector: { matchLabels: { app: 'web' } }, ingress: [{ fromEndpoints: [{}] }] }),
    cnp('not-kube-system', { endpointSelector: { matchLabels: { app: 'client' } }, ingress: [{ fromEndpoints: [{ matchExpressions: [{ key: 'k8s:io.kubernetes.pod.namespace', operator: 'NotIn', values: ['kube-system'] }] }] }] }, 'b'),
  ], { hostIPs: ['172.18.0.2'] });
  t.same(r.issues, []);
  for (const to of ['a/web', 'b/client']) {
    t.equal(trace(r, { from: to === 'a/web' ? 'b/client' : 'a/web', to, port: 80 }).verdict, 'allow', `pods reach ${to}`);
    t.equal(trace(r, { from: '8.8.8.8', to, port: 80 }).verdict, 'deny', `the world does not reach ${to}`);
    t.equal(trace(r, { from: '172.18.0.2', to, port: 80 }).verdict, 'deny', `the host does not reach ${to}`);
  }
  agree(t, r, [80]);
});

t.test('the YAML source reads NetworkPolicy documents', async (t) => {
  const { checkKubeObject } = await import('../src/sources/kube-objects.js');
  const c = checkKubeObject({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'np' }, spec: { podSelector: {} } }, { file: 'np.yaml', index: 0 });
  t.match(c, { object: { kind: 'NetworkPolicy', metadata: { name: 'np', namespace: 'default' } } });
  t.match(checkKubeObject({ apiVersion: 'networking.k8s.io/v1beta1', kind: 'NetworkPolicy', metadata: { name: 'np' } }, { file: 'np.yaml', index: 0 }), { issue: { field: 'apiVersion' } });
});
