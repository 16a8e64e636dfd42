// The cilium.io/v2 CRDs in crds/ against a real kube-apiserver: they install
// and become Established, accept the examples and realistic Cilium YAML
// unchanged (Envoy resources kept as written), and the API server itself
// refuses malformed objects, naming the bad field.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { startKubeCluster } from './helpers/kube-apiserver.js';

const root = new URL('..', import.meta.url).pathname;
const CRDS = {
  cec: 'ciliumenvoyconfigs.cilium.io',
  ccec: 'ciliumclusterwideenvoyconfigs.cilium.io',
  cnp: 'ciliumnetworkpolicies.cilium.io',
  ccnp: 'ciliumclusterwidenetworkpolicies.cilium.io',
};
const LISTENER = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const CLUSTER = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

// Started before any subtest is queued, so the root test cannot end (and tear it down) while it starts.
const cluster = await startKubeCluster(t);
const { kubectl, kubectlOk } = cluster;

t.test('the CRD YAML is what crds/generate.mjs writes', async (t) => {
  const r = spawnSync(process.execPath, [join(root, 'crds/generate.mjs'), '--check'], { encoding: 'utf8' });
  t.equal(r.status, 0, `generate.mjs --check: ${r.stderr}`);
  t.same(readdirSync(join(root, 'crds')).filter((f) => f.endsWith('.yaml')).sort(), Object.values(CRDS).map((n) => `${n.split('.')[0]}.yaml`).sort(), 'one file per kind');
});

const yamlOf = (objects: object[]) => objects.map((o) => stringify(o)).join('---\n');
/** kubectl create (for real, or --dry-run=server), returning the result. */
const create = (o: object, dryRun = false) => kubectl(['create', ...(dryRun ? ['--dry-run=server'] : []), '-o', 'json', '-f', '-'], { input: yamlOf([o]) });
const getJson = (...args: string[]) => JSON.parse(kubectlOk(['get', ...args, '-o', 'json']));

t.test('the CRDs install, become Established, with Cilium names, scopes and subresources', async (t) => {
  kubectlOk(['apply', '--server-side', '-f', join(root, 'crds')]);
  kubectlOk(['wait', '--for=condition=Established', ...Object.values(CRDS).map((n) => `crd/${n}`), '--timeout=60s']);
  const expect: Record<string, { kind: string; scope: string; shortNames: string[]; status: boolean }> = {
    [CRDS.cec]: { kind: 'CiliumEnvoyConfig', scope: 'Namespaced', shortNames: ['cec'], status: false },
    [CRDS.ccec]: { kind: 'CiliumClusterwideEnvoyConfig', scope: 'Cluster', shortNames: ['ccec'], status: false },
    [CRDS.cnp]: { kind: 'CiliumNetworkPolicy', scope: 'Namespaced', shortNames: ['cnp', 'ciliumnp'], status: true },
    [CRDS.ccnp]: { kind: 'CiliumClusterwideNetworkPolicy', scope: 'Cluster', shortNames: ['ccnp'], status: true },
  };
  for (const [name, e] of Object.entries(expect)) {
    const crd = getJson('crd', name);
    t.equal(crd.spec.names.kind, e.kind, `${name} kind`);
    t.equal(crd.spec.scope, e.scope, `${name} scope`);
    t.same(crd.spec.names.shortNames, e.shortNames, `${name} short names`);
    t.same(crd.spec.versions.map((v: any) => [v.name, v.served, v.storage]), [['v2', true, true]], `${name}: v2 served and stored`);
    t.equal(!!crd.spec.versions[0].subresources?.status, e.status, `${name} status subresource`);
    const conditions = Object.fromEntries(crd.status.conditions.map((c: any) => [c.type, c.status]));
    t.equal(conditions.NonStructuralSchema, undefined, `${name} schema is structural`);
    t.equal(conditions.Established, 'True', `${name} Established`);
  }
  for (const short of ['cec', 'cnp', 'ciliumnp']) t.equal(kubectl(['get', short, '-A']).code, 0, `kubectl get ${short}`);
  for (const short of ['ccec', 'ccnp']) t.equal(kubectl(['get', short]).code, 0, `kubectl get ${short}`);
});

t.test('the examples/kubernetes CiliumEnvoyConfigs are accepted and kept exactly as written', async (t) => {
  const docs = readdirSync(join(root, 'examples/kubernetes'))
    .filter((f) => /\.ya?ml$/.test(f))
    .flatMap((f) => parseAllDocuments(readFileSync(join(root, 'examples/kubernetes', f), 'utf8')).map((d) => d.toJS()))
    .filter((o) => o?.apiVersion === 'cilium.io/v2');
  t.ok(docs.length >= 1, `found ${docs.length} cilium.io objects in examples/kubernetes`);
  for (const o of docs) {
    const r = create(o);
    t.equal(r.code, 0, `${o.kind} ${o.metadata.name} created: ${r.stderr}`);
    const back = getJson(o.kind, o.metadata.name, ...(o.metadata.namespace ? ['-n', o.metadata.namespace] : []));
    t.same(back.spec, o.spec, `${o.kind} ${o.metadata.name}: spec (and every Envoy field in spec.resources) stored unchanged`);
  }
});

const listener = (name: string) => ({
  '@type': LISTENER,
  name,
  filter_chains: [
    {
      filters: [
        {
          name: 'envoy.filters.network.tcp_proxy',
          typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'x', cluster: 'c' },
        },
      ],
    },
  ],
});
const cecOf = (spec: unknown, kind = 'CiliumEnvoyConfig') => ({
  apiVersion: 'cilium.io/v2',
  kind,
  metadata: kind === 'CiliumEnvoyConfig' ? { name: 'probe', namespace: 'default' } : { name: 'probe' },
  spec,
});

t.test('a full CiliumEnvoyConfig and CiliumClusterwideEnvoyConfig in Cilium shape are accepted', async (t) => {
  const spec = {
    services: [{ name: 'web', namespace: 'default', listener: 'l7', ports: [80, 8080] }],
    backendServices: [{ name: 'web', namespace: 'default', number: ['8080', 'http'] }],
    nodeSelector: { matchLabels: { 'kubernetes.io/os': 'linux' }, matchExpressions: [{ key: 'role', operator: 'NotIn', values: ['edge'] }] },
    resources: [listener('l7'), { '@type': CLUSTER, name: 'c', type: 'EDS', connect_timeout: '2s', some_future_field: { deep: [1, 'x'] } }],
  };
  for (const kind of ['CiliumEnvoyConfig', 'CiliumClusterwideEnvoyConfig']) {
    const o = cecOf(spec, kind);
    const r = create(o);
    t.equal(r.code, 0, `${kind} created: ${r.stderr}`);
    t.same(JSON.parse(r.stdout).spec, spec, `${kind}: nothing pruned, unknown Envoy fields included`);
  }
});

interface Bad {
  what: string;
  object: object;
  /** Patterns the API server's error must match, the first naming the field. */
  error: RegExp[];
}

const badEnvoyConfigs: Bad[] = [
  {
    what: 'a service port that is not an integer',
    object: cecOf({ services: [{ name: 'web', ports: ['http'] }], resources: [listener('l')] }),
    error: [/spec\.services\[0\]\.ports\[0\]/, /must be of type integer/],
  },
  {
    what: 'a service port out of range',
    object: cecOf({ services: [{ name: 'web', ports: [70000] }], resources: [listener('l')] }),
    error: [/spec\.services\[0\]\.ports\[0\]/, /less than or equal to 65535/],
  },
  {
    what: 'a service without a name',
    object: cecOf({ services: [{ namespace: 'default', ports: [80] }], resources: [listener('l')] }),
    error: [/spec\.services\[0\]\.name/, /Required value/],
  },
  {
    what: 'a backend service without a name',
    object: cecOf({ backendServices: [{ number: ['80'] }], resources: [listener('l')] }),
    error: [/spec\.backendServices\[0\]\.name/, /Required value/],
  },
  {
    what: 'resources that is a string, not a list',
    object: cecOf({ resources: 'listener' }),
    error: [/spec\.resources/, /must be of type array/],
  },
  {
    // Strict field validation meets the object's fields first.
    what: 'resources that is one object, not a list of them',
    object: cecOf({ resources: listener('l') }),
    error: [/spec\.resources/],
  },
  {
    what: 'no resources',
    object: cecOf({ services: [{ name: 'web' }] }),
    error: [/spec\.resources/, /Required value/],
  },
  {
    what: 'a resource without @type',
    object: cecOf({ resources: [{ name: 'l' }] }),
    error: [/spec\.resources\[0\]\.@type/, /Required value/],
  },
  {
    what: 'a resource of a type sluice does not serve',
    object: cecOf({ resources: [{ '@type': 'type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration', name: 's' }] }),
    error: [/spec\.resources\[0\]\.@type/, /Unsupported value/],
  },
  {
    what: 'an unknown field in spec',
    object: cecOf({ resources: [listener('l')], listeners: [] }),
    error: [/unknown field "spec\.listeners"/],
  },
  {
    what: 'backendServices ports under a name Cilium does not have (it is "number")',
    object: cecOf({ backendServices: [{ name: 'web', ports: ['80'] }], resources: [listener('l')] }),
    error: [/unknown field "spec\.backendServices\[0\]\.ports"/],
  },
  {
    what: 'a node selector with an unknown operator',
    object: cecOf({ nodeSelector: { matchExpressions: [{ key: 'a', operator: 'Is' }] }, resources: [listener('l')] }),
    error: [/spec\.nodeSelector\.matchExpressions\[0\]\.operator/, /Unsupported value: "Is"/],
  },
  {
    what: 'no spec at all',
    object: { apiVersion: 'cilium.io/v2', kind: 'CiliumEnvoyConfig', metadata: { name: 'probe', namespace: 'default' } },
    error: [/spec: Required value/],
  },
  {
    what: 'a clusterwide config whose resources is not a list',
    object: cecOf({ resources: 'nope' }, 'CiliumClusterwideEnvoyConfig'),
    error: [/spec\.resources/, /must be of type array/],
  },
];

const cnp = (spec: unknown, extra: object = {}) => ({ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'probe', namespace: 'default' }, spec, ...extra });
const web = { matchLabels: { app: 'web' } };
const httpPort = (rules: unknown) => [{ ports: [{ port: '80', protocol: 'TCP' }], rules }];

const badPolicies: Bad[] = [
  {
    what: 'a port given as a number (Cilium ports are strings)',
    object: cnp({ endpointSelector: web, ingress: [{ toPorts: [{ ports: [{ port: 80 }] }] }] }),
    error: [/spec\.ingress\[0\]\.toPorts\[0\]\.ports\[0\]\.port/, /must be of type string/],
  },
  {
    what: 'a port that is neither a number nor a name',
    object: cnp({ endpointSelector: web, ingress: [{ toPorts: [{ ports: [{ port: '99999' }] }] }] }),
    error: [/spec\.ingress\[0\]\.toPorts\[0\]\.ports\[0\]\.port/, /should match/],
  },
  {
    what: 'an unknown protocol',
    object: cnp({ endpointSelector: web, egress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'HTTP' }] }] }] }),
    error: [/spec\.egress\[0\]\.toPorts\[0\]\.ports\[0\]\.protocol/, /Unsupported value: "HTTP"/],
  },
  {
    what: 'an unknown entity',
    object: cnp({ endpointSelector: web, ingress: [{ fromEntities: ['internet'] }] }),
    error: [/spec\.ingress\[0\]\.fromEntities\[0\]/, /Unsupported value: "internet"/],
  },
  {
    what: 'L7 rules for two protocols at once',
    object: cnp({ endpointSelector: web, ingress: [{ toPorts: httpPort({ http: [{ path: '/' }], dns: [{ matchPattern: '*' }] }) }] }),
    error: [/spec\.ingress\[0\]\.toPorts\[0\]\.rules/, /must validate one and only one schema/],
  },
  {
    what: 'a header match without a name',
    object: cnp({ endpointSelector: web, ingress: [{ toPorts: httpPort({ http: [{ headerMatches: [{ value: 'x' }] }] }) }] }),
    error: [/spec\.ingress\[0\]\.toPorts\[0\]\.rules\.http\[0\]\.headerMatches\[0\]\.name/, /Required value/],
  },
  {
    what: 'http rules that are not a list',
    object: cnp({ endpointSelector: web, ingress: [{ toPorts: httpPort({ http: 'GET /' }) }] }),
    error: [/spec\.ingress\[0\]\.toPorts\[0\]\.rules\.http/, /must be of type array/],
  },
  {
    what: 'a misspelt field (fromEndpoint)',
    object: cnp({ endpointSelector: web, ingress: [{ fromEndpoint: [web] }] }),
    error: [/unknown field "spec\.ingress\[0\]\.fromEndpoint"/],
  },
  {
    what: 'both endpointSelector and nodeSelector',
    object: cnp({ endpointSelector: web, nodeSelector: web, ingress: [{}] }),
    error: [/"spec" must validate one and only one schema \(oneOf\)/],
  },
  {
    what: 'a rule with no ingress or egress section',
    object: cnp({ endpointSelector: web, description: 'nothing' }),
    error: [/"spec" must validate at least one schema \(anyOf\)/, /spec\.ingress: Required value/],
  },
  {
    what: 'neither spec nor specs',
    object: { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'probe', namespace: 'default' } },
    error: [/spec or specs must be set/],
  },
  {
    what: 'a bad rule inside specs',
    object: { ...cnp(undefined), spec: undefined, specs: [{ endpointSelector: web, ingress: [{}] }, { endpointSelector: web, egress: [{ toCIDRSet: [{ cidr: 'not-a-cidr' }] }] }] },
    error: [/specs\[1\]\.egress\[0\]\.toCIDRSet\[0\]\.cidr/],
  },
  {
    what: 'a clusterwide policy with a label value too long',
    object: {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumClusterwideNetworkPolicy',
      metadata: { name: 'probe' },
      spec: { endpointSelector: { matchLabels: { app: 'x'.repeat(64) } }, ingress: [{}] },
    },
    error: [/spec\.endpointSelector\.matchLabels\.app/, /Too long/],
  },
];

for (const [group, cases] of [['envoy configs', badEnvoyConfigs], ['network policies', badPolicies]] as const) {
  t.test(`the API server refuses malformed ${group}, naming the field`, async (t) => {
    for (const c of cases) {
      const r = create(c.object, true);
      t.not(r.code, 0, `${c.what}: refused`);
      for (const re of c.error) t.match(r.stderr, re, `${c.what}: error says ${re}`);
    }
  });
}

// Policies as Cilium's documentation and real clusters write them.
const realisticPolicies: object[] = [
  cnp({
    description: 'L7: only GET /public and PUT /avatar with a header; from the frontend',
    endpointSelector: { matchLabels: { app: 'api', 'k8s:io.kubernetes.pod.namespace': 'default' } },
    ingress: [
      {
        fromEndpoints: [{ matchLabels: { role: 'frontend' } }, { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod', 'staging'] }] }],
        toPorts: [
          {
            ports: [{ port: '80', protocol: 'TCP' }, { port: 'http-alt' }],
            rules: {
              http: [
                { method: 'GET', path: '/public/.*' },
                { method: 'PUT', path: '/avatar$', host: 'api\\.example\\.com', headers: ['X-My-Header: true'] },
                { method: 'POST', headerMatches: [{ name: 'X-Token', secret: { namespace: 'default', name: 'token' }, mismatch: 'REPLACE' }, { name: 'X-Env', value: 'prod' }] },
                {},
              ],
            },
          },
        ],
      },
      { fromEntities: ['host', 'remote-node', 'kube-apiserver'] },
      { fromCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.96.0.0/12'] }, { cidrGroupRef: 'office' }], icmps: [{ fields: [{ type: 8, family: 'IPv4' }, { type: 'EchoRequest', family: 'IPv6' }] }] },
    ],
    ingressDeny: [{ fromEntities: ['world'], toPorts: [{ ports: [{ port: '22', protocol: 'TCP' }] }] }],
    egress: [
      { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns: [{ matchPattern: '*' }] } }] },
      { toFQDNs: [{ matchName: 'api.github.com' }, { matchPattern: '*.cilium.io' }], toPorts: [{ ports: [{ port: '443' }], serverNames: ['api.github.com'] }] },
      { toServices: [{ k8sService: { serviceName: 'db', namespace: 'default' } }], toPorts: [{ ports: [{ port: '5432', endPort: 5433, protocol: 'TCP' }] }] },
      { toEndpoints: [{}], toPorts: [{ ports: [{ port: '80' }], listener: { envoyConfig: { kind: 'CiliumEnvoyConfig', name: 'l7lb' }, name: 'listener', priority: 10 } }] },
      { toEntities: ['world'], authentication: { mode: 'required' } },
    ],
    egressDeny: [{ toCIDR: ['169.254.169.254/32'] }],
    enableDefaultDeny: { ingress: true, egress: false },
    labels: [{ key: 'team', value: 'payments', source: 'k8s' }],
    log: { value: 'api-policy' },
  }),
  {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'several', namespace: 'default' },
    specs: [
      { endpointSelector: { matchLabels: { app: 'kafka' } }, ingress: [{ toPorts: [{ ports: [{ port: '9092' }], rules: { kafka: [{ role: 'produce', topic: 'empire-announce' }] } }] }] },
      { endpointSelector: {}, egress: [{ toPorts: [{ ports: [{ port: '9000' }], rules: { l7proto: 'r2d2', l7: [{ cmd: 'READ', file: '/public/.*' }] } }] }] },
    ],
  },
  {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name: 'host-firewall' },
    spec: {
      description: 'host policy: SSH from the office only',
      nodeSelector: { matchLabels: { 'node-role.kubernetes.io/worker': '' } },
      ingress: [{ fromCIDR: ['192.0.2.0/24'], toPorts: [{ ports: [{ port: '22', protocol: 'TCP' }] }] }, { fromEntities: ['cluster'] }],
    },
  },
  {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name: 'default-deny-egress-world' },
    spec: { endpointSelector: {}, egressDeny: [{ toEntities: ['world'] }] },
  },
];

t.test('realistic Cilium network policies (L7 HTTP, DNS, Kafka, deny, specs, host policy) are accepted unchanged', async (t) => {
  for (const o of realisticPolicies as any[]) {
    const r = create(o);
    t.equal(r.code, 0, `${o.kind} ${o.metadata.name} created: ${r.stderr}`);
    const back = r.code === 0 ? JSON.parse(r.stdout) : {};
    t.same(back.spec, o.spec, `${o.kind} ${o.metadata.name}: spec stored unchanged`);
    t.same(back.specs, o.specs, `${o.kind} ${o.metadata.name}: specs stored unchanged`);
  }
});

t.test('network policy status is a subresource: create ignores it, the status endpoint writes it', async (t) => {
  const o = cnp({ endpointSelector: web, ingress: [{}] }, { metadata: { name: 'with-status', namespace: 'default' }, status: { conditions: [{ type: 'Valid', status: 'True' }] } });
  const created = create(o);
  t.equal(created.code, 0, created.stderr);
  t.same(JSON.parse(created.stdout).status, undefined, 'status in a create is dropped');
  const status = { conditions: [{ type: 'Valid', status: 'False', reason: 'Bad', message: 'x', lastTransitionTime: '2026-01-01T00:00:00Z' }] };
  kubectlOk(['patch', 'cnp', 'with-status', '-n', 'default', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  t.same(getJson('cnp', 'with-status', '-n', 'default').status, status, 'written through /status');
  t.equal(kubectlOk(['get', 'cnp', 'with-status', '-n', 'default', '-o', 'custom-columns=V:.status.conditions[0].status', '--no-headers']).trim(), 'False');
  const bad = kubectl(['patch', 'cnp', 'with-status', '-n', 'default', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { conditions: [{ type: 'Valid' }] } })]);
  t.not(bad.code, 0, 'a condition without status is refused');
  t.match(bad.stderr, /status\.conditions\[0\]\.status: Required value/);
});
