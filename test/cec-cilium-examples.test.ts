// Cilium's published CiliumEnvoyConfig examples (its servicemesh docs and
// examples/kubernetes/servicemesh/envoy/), in their shapes and spellings,
// served to a real Envoy and exercised with real requests: routes to the
// bootstrap's "envoy-admin" cluster, HTTP filters named without typed_config,
// weighted splits with retries and regex rewrites, and circuit breakers.
import t from 'tap';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAgent, type TestAgent } from './helpers/agent.js';
import { eventually, startEnvoy, type EnvoyHandle } from './helpers/envoy.js';
import { ccec, cec, endpointSlice, service } from './helpers/kube.js';
import { closeHttpAgents, freePort, httpGet, startBackend } from './helpers/net.js';
import { assertSplit } from './helpers/stats.js';

t.teardown(closeHttpAgents);

const T = 'type.googleapis.com/';
const LISTENER = `${T}envoy.config.listener.v3.Listener`;
const ROUTE = `${T}envoy.config.route.v3.RouteConfiguration`;
const CLUSTER = `${T}envoy.config.cluster.v3.Cluster`;
const HCM = `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`;
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } };
// What several of Cilium's examples write, and Cilium accepts.
const NAME_ONLY_ROUTER = { name: 'envoy.filters.http.router' };

/** A listener with one HTTP connection manager, as Cilium's examples write them. */
function httpListener(name: string, hcm: object, extra: object = {}): object {
  return { '@type': LISTENER, name, ...extra, filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': HCM, stat_prefix: name, ...hcm } }] }] };
}

/** An address for listeners that name one; Cilium's use "::" and a fixed port, a test takes a free loopback port. */
const address = (port: number) => ({ address: { socket_address: { address: '127.0.0.1', port_value: port } } });

/** The Prometheus listener shape: RDS, /metrics rewritten to the admin's /stats/prometheus. */
function metricsListener(port: number, router: object): object[] {
  return [
    httpListener('envoy-prometheus-metrics-listener', { rds: { route_config_name: 'prometheus_route' }, use_remote_address: true, skip_xff_append: true, http_filters: [router] }, address(port)),
    {
      '@type': ROUTE,
      name: 'prometheus_route',
      virtual_hosts: [{ name: 'prometheus_metrics_route', domains: ['*'], routes: [{ match: { path: '/metrics' }, route: { cluster: 'envoy-admin', prefix_rewrite: '/stats/prometheus' } }] }],
    },
  ];
}

/** The admin listener shape: an inline route_config sending everything to envoy-admin. */
function adminListener(port: number): object[] {
  return [
    httpListener(
      'envoy-admin-listener',
      {
        route_config: { name: 'admin_route', virtual_hosts: [{ name: 'admin_route', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'envoy-admin' } }] }] },
        use_remote_address: true,
        skip_xff_append: true,
        http_filters: [ROUTER],
      },
      address(port),
    ),
  ];
}

/** The load-balancing shape: an address-less listener, RDS, weighted EDS clusters with outlier detection. */
function lbResources(weights: Record<string, number>, routeExtra: object, router: object, clusterExtra: object = {}): object[] {
  return [
    httpListener('envoy-lb-listener', { rds: { route_config_name: 'lb_route' }, http_filters: [router] }),
    {
      '@type': ROUTE,
      name: 'lb_route',
      virtual_hosts: [
        {
          name: 'lb_route',
          domains: ['*'],
          routes: [{ match: { prefix: '/' }, route: { weighted_clusters: { clusters: Object.entries(weights).map(([name, weight]) => ({ name, weight })) }, ...routeExtra } }],
        },
      ],
    },
    ...Object.keys(weights).map((name) => ({
      '@type': CLUSTER,
      name,
      connect_timeout: '5s',
      lb_policy: 'ROUND_ROBIN',
      type: 'EDS',
      outlier_detection: { split_external_local_origin_errors: true, consecutive_local_origin_failure: 2 },
      ...clusterExtra,
    })),
  ];
}

const NODE = 'examples-node';

async function served(t: Parameters<Parameters<typeof t.test>[1]>[0], files: Record<string, object[]>): Promise<{ agent: TestAgent; envoy: EnvoyHandle }> {
  const agent = await startAgent(t, files, { kube: true, nodeName: NODE });
  const envoy = await startEnvoy(t, agent.bootstrap(NODE, 'sotw'));
  await agent.agent.cache.waitForAck(NODE, agent.agent.currentVersion, 30_000);
  return { agent, envoy };
}

async function proxyPort(envoy: EnvoyHandle, name: string): Promise<number> {
  return eventually(async () => (await envoy.configDump()).listeners[name]?.address?.socket_address?.port_value, 20_000, `listener ${name}`);
}

t.test('envoy-prometheus-metrics-listener: /metrics reaches the admin API over its unix socket, rewritten to /stats/prometheus', async (t) => {
  const port = await freePort();
  const { agent, envoy } = await served(t, { 'metrics.yaml': [ccec('envoy-prometheus-metrics-listener', { resources: metricsListener(port, NAME_ONLY_ROUTER) })] });
  t.same(agent.agent.issues(), [], 'no issues: the name-only router is filled in');
  t.match(envoy.adminUrl, /^unix:/, "Envoy's admin API itself is on a unix socket, not on the network");
  const metrics = await eventually(async () => {
    const r = await httpGet(port, '/metrics');
    return r.status === 200 && r;
  }, 20_000, '/metrics through the listener');
  t.match(metrics.body, /^# TYPE envoy_\S+ (counter|gauge|histogram)$/m, 'Prometheus exposition from the admin API');
  t.match(metrics.body, /envoy_cluster_manager_active_clusters/, "Envoy's own stats");
  t.equal((await httpGet(port, '/stats')).status, 404, 'only the routed path reaches the admin API');
  const listener = (await envoy.configDump()).listeners['envoy-prometheus-metrics-listener/envoy-prometheus-metrics-listener'];
  const filters = listener.filter_chains[0].filters[0].typed_config.http_filters;
  t.same(filters, [{ name: 'envoy.filters.http.router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } }], 'Envoy holds the router with its typed_config filled in');
});

t.test('envoy-admin-listener: every admin path through a CCEC listener; a namespaced CEC may not route there', async (t) => {
  const port = await freePort();
  const tenantPort = await freePort();
  const tenant = cec('sneaky', { resources: adminListener(tenantPort) }, 'tenant-a');
  const { agent } = await served(t, { 'admin.yaml': [ccec('envoy-admin-listener', { resources: adminListener(port) }), tenant] });
  const ready = await eventually(async () => {
    const r = await httpGet(port, '/ready');
    return r.status === 200 && r;
  }, 20_000, '/ready through the admin listener');
  t.equal(ready.body.trim(), 'LIVE', "the admin API's /ready");
  t.equal(JSON.parse((await httpGet(port, '/server_info')).body).node.id, NODE, "and /server_info, this node's Envoy");
  const issues = agent.agent.issues();
  t.equal(issues.length, 1, `one issue: ${issues}`);
  t.match(
    issues[0],
    /CiliumEnvoyConfig tenant-a\/sneaky: spec\.resources\[0\]: filter_chains\[0\]\.filters\[0\]\.typed_config\.route_config\.virtual_hosts\[0\]\.routes\[0\]\.route\.cluster: only a CiliumClusterwideEnvoyConfig may route to "envoy-admin"/,
    'the namespaced config is refused, naming the field',
  );
  await t.rejects(httpGet(tenantPort, '/ready'), /ECONNREFUSED/, "the tenant's listener was not served");
});

t.test('envoy-traffic-management: 50/50 weighted clusters with retries, a regex rewrite and a name-only router, redirecting two Services', async (t) => {
  const one = await startBackend(t, 'one');
  const two = await startBackend(t, 'two');
  const services = [service('echo-service-1', [{ port: 8080, name: 'http' }]), service('echo-service-2', [{ port: 8080, name: 'http' }], { clusterIP: '10.96.0.12' })];
  const slices = [endpointSlice('echo-service-1', 'http', one.port, [{ ip: '127.0.0.1' }]), endpointSlice('echo-service-2', 'http', two.port, [{ ip: '127.0.0.1' }])];
  const config = ccec('envoy-lb-listener', {
    services: [{ name: 'echo-service-1', namespace: 'default' }, { name: 'echo-service-2', namespace: 'default' }],
    resources: lbResources(
      { 'default/echo-service-1': 50, 'default/echo-service-2': 50 },
      { retry_policy: { retry_on: '5xx', num_retries: 3, per_try_timeout: '1s' }, regex_rewrite: { pattern: { google_re2: {}, regex: '^/foo.*$' }, substitution: '/' } },
      NAME_ONLY_ROUTER,
    ),
  });
  const { agent, envoy } = await served(t, { 'svc.yaml': [...services, ...slices], 'cec.yaml': [config] });
  t.same(agent.agent.issues(), []);
  const port = await proxyPort(envoy, 'envoy-lb-listener/envoy-lb-listener');
  t.same(
    agent.agent.redirects.map((r) => [r.service, r.listener, r.proxyPort]).sort(),
    [['default/echo-service-1', 'envoy-lb-listener/envoy-lb-listener', port], ['default/echo-service-2', 'envoy-lb-listener/envoy-lb-listener', port]],
    "both Services' traffic is steered into the listener",
  );
  const counts: Record<string, number> = {};
  for (let i = 0; i < 500; i++) {
    const r = await httpGet(port, `/foo/${i}`);
    t.equal(r.status, 200, 'ok', { diagnostic: false });
    if (i === 0) t.equal(JSON.parse(r.body).url, '/', '/foo/... is rewritten to /');
    counts[r.backend!] = (counts[r.backend!] ?? 0) + 1;
  }
  assertSplit(t, counts, { one: 50, two: 50 }, '50/50');
  t.equal(JSON.parse((await httpGet(port, '/bar')).body).url, '/bar', 'other paths pass unchanged');
});

t.test('envoy-helloworld-v1-90-v2-10: a namespaced CEC shifting 90/10 between two backend Services', async (t) => {
  const v1 = await startBackend(t, 'v1');
  const v2 = await startBackend(t, 'v2');
  const objs = [
    service('helloworld', [{ port: 5000, name: 'http' }]),
    service('helloworld-v1', [{ port: 5000, name: 'http' }], { clusterIP: '10.96.0.21' }),
    service('helloworld-v2', [{ port: 5000, name: 'http' }], { clusterIP: '10.96.0.22' }),
    endpointSlice('helloworld-v1', 'http', v1.port, [{ ip: '127.0.0.1' }]),
    endpointSlice('helloworld-v2', 'http', v2.port, [{ ip: '127.0.0.1' }]),
  ];
  const config = cec('envoy-lb-listener', {
    services: [{ name: 'helloworld', namespace: 'default' }],
    backendServices: [{ name: 'helloworld-v1', namespace: 'default' }, { name: 'helloworld-v2', namespace: 'default' }],
    resources: lbResources({ 'default/helloworld-v1': 90, 'default/helloworld-v2': 10 }, { retry_policy: { retry_on: '5xx', num_retries: 3, per_try_timeout: '1s' } }, ROUTER),
  });
  const { agent, envoy } = await served(t, { 'svc.yaml': objs, 'cec.yaml': [config] });
  t.same(agent.agent.issues(), []);
  const port = await proxyPort(envoy, 'default/envoy-lb-listener/envoy-lb-listener');
  const counts: Record<string, number> = {};
  for (let i = 0; i < 500; i++) {
    const r = await httpGet(port, `/${i}`);
    t.equal(r.status, 200, 'ok', { diagnostic: false });
    counts[r.backend!] = (counts[r.backend!] ?? 0) + 1;
  }
  assertSplit(t, counts, { v1: 90, v2: 10 }, '90/10');
});

/** A backend that holds every request until released: what makes requests pile up in front of a circuit breaker. */
async function gatedBackend(t: { teardown(fn: () => unknown): void }): Promise<{ port: number; held: () => number; release: () => void }> {
  const waiting: ServerResponse[] = [];
  const server = createServer((_req: IncomingMessage, res: ServerResponse) => {
    res.setHeader('x-backend', 'gated');
    waiting.push(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port, held: () => waiting.length, release: () => waiting.splice(0).forEach((r) => r.end('done')) };
}

/** One request on its own connection, so several can be in flight at once. */
function getAlone(port: number, path: string): Promise<{ status: number; overloaded: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 20_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, overloaded: res.headers['x-envoy-overloaded'] === 'true' }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

t.test('envoy-circuit-breaker: max_requests 2 on an EDS cluster fed by "ns/svc:port" sheds the rest of 8 concurrent requests', async (t) => {
  const gate = await gatedBackend(t);
  const objs = [service('echo-service', [{ port: 8080, name: 'http' }]), endpointSlice('echo-service', 'http', gate.port, [{ ip: '127.0.0.1' }])];
  const config = ccec('envoy-circuit-breaker', {
    services: [{ name: 'echo-service', namespace: 'default' }],
    resources: lbResources({ 'default/echo-service': 100 }, {}, ROUTER, {
      eds_cluster_config: { service_name: 'default/echo-service:8080' },
      circuit_breakers: { thresholds: [{ priority: 'DEFAULT', max_requests: 2, max_pending_requests: 1 }] },
    }),
  });
  const { agent, envoy } = await served(t, { 'svc.yaml': objs, 'cec.yaml': [config] });
  t.same(agent.agent.issues(), []);
  const port = await proxyPort(envoy, 'envoy-circuit-breaker/envoy-lb-listener');
  await eventually(async () => (await envoy.clusterHosts('default/echo-service')).length === 1, 20_000, 'the endpoint from default/echo-service:8080');
  const inFlight = Array.from({ length: 8 }, (_, i) => getAlone(port, `/${i}`));
  // Whether a request waits for a connection (max_pending_requests 1) or is
  // active on one (max_requests 2) depends on when the connection comes up;
  // either way the breaker admits at most two and sheds the rest at once.
  const c = 'cluster.default/echo-service.';
  const shedByEnvoy = async () => {
    const s = await envoy.stats(`${c}upstream_rq_(active|pending)_overflow`);
    return (s[`${c}upstream_rq_active_overflow`] ?? 0) + (s[`${c}upstream_rq_pending_overflow`] ?? 0);
  };
  const shedCount = await eventually(async () => {
    const n = await shedByEnvoy();
    return n + gate.held() === 8 && n;
  }, 20_000, 'every request either at the backend or turned away by the breaker');
  const held = gate.held();
  t.ok(held >= 1 && held <= 2, `the backend saw ${held} at once, within max_requests`);
  gate.release();
  const results = await Promise.all(inFlight);
  const ok = results.filter((r) => r.status === 200).length;
  const shed = results.filter((r) => r.status === 503 && r.overloaded).length;
  t.same([ok, shed], [held, shedCount], `the admitted ${held} served once released, the other ${shedCount} shed with x-envoy-overloaded`);
});

t.test('name-only filters elsewhere: listener filters filled in; names sluice cannot fill are refused, naming the field', async (t) => {
  const port = await freePort();
  const withListenerFilters = ccec('inspectors', {
    resources: metricsListener(port, NAME_ONLY_ROUTER).map((r: any, i) =>
      i === 0 ? { ...r, listener_filters: [{ name: 'envoy.filters.listener.tls_inspector' }, { name: 'envoy.filters.listener.http_inspector' }] } : r,
    ),
  });
  const unknown = ccec('unknown-filter', { resources: [httpListener('l', { rds: { route_config_name: 'r' }, http_filters: [{ name: 'envoy.filters.http.not_a_filter' }, ROUTER] })] });
  const needsConfig = ccec('needs-config', { resources: [{ '@type': LISTENER, name: 'l', filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy' }] }] }] });
  const { agent, envoy } = await served(t, { 'filters.yaml': [withListenerFilters, unknown, needsConfig] });
  const metrics = await eventually(async () => {
    const r = await httpGet(port, '/metrics');
    return r.status === 200 && r;
  }, 20_000, '/metrics through the listener with name-only listener filters');
  t.match(metrics.body, /^# TYPE envoy_/m);
  const listener = (await envoy.configDump()).listeners['inspectors/envoy-prometheus-metrics-listener'];
  t.same(
    listener.listener_filters.map((f: any) => f.typed_config['@type']),
    [`${T}envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector`, `${T}envoy.extensions.filters.listener.http_inspector.v3.HttpInspector`],
    'Envoy holds both listener filters with their types',
  );
  const issues = agent.agent.issues();
  t.equal(issues.length, 2, `two issues: ${issues.join(' | ')}`);
  const about = (name: string) => issues.find((i) => i.includes(`CiliumClusterwideEnvoyConfig ${name}:`));
  t.match(about('needs-config'), /spec\.resources\[0\]: filter_chains\[0\]\.filters\[0\]: "envoy\.filters\.network\.tcp_proxy" needs a typed_config/);
  t.match(about('unknown-filter'), /spec\.resources\[0\]: filter_chains\[0\]\.filters\[0\]\.typed_config\.http_filters\[0\]: "envoy\.filters\.http\.not_a_filter" has no typed_config/);
});

t.test("an internal listener, which Cilium's bootstrap enables: a request crosses from a listener into one reached by envoy_internal_address", async (t) => {
  const port = await freePort();
  const inner = {
    '@type': LISTENER,
    name: 'inner',
    internal_listener: {},
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: 'inner',
              route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'from the internal listener' } } }] }] },
              http_filters: [NAME_ONLY_ROUTER],
            },
          },
        ],
      },
    ],
  };
  const toInner = {
    '@type': CLUSTER,
    name: 'to-inner',
    type: 'STATIC',
    connect_timeout: '1s',
    // Endpoint addresses are not names the translator qualifies, so this one is written qualified.
    load_assignment: { cluster_name: 'to-inner', endpoints: [{ lb_endpoints: [{ endpoint: { address: { envoy_internal_address: { server_listener_name: 'internal-demo/inner' } } } }] }] },
    transport_socket: {
      name: 'envoy.transport_sockets.internal_upstream',
      typed_config: {
        '@type': `${T}envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport`,
        transport_socket: { name: 'envoy.transport_sockets.raw_buffer', typed_config: { '@type': `${T}envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer` } },
      },
    },
  };
  const front = httpListener('front', { route_config: { virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'to-inner' } }] }] }, http_filters: [ROUTER] }, address(port));
  const { agent } = await served(t, { 'internal.yaml': [ccec('internal-demo', { resources: [front, inner, toInner] })] });
  t.same(agent.agent.issues(), []);
  const r = await eventually(async () => {
    const res = await httpGet(port, '/');
    return res.status === 200 && res;
  }, 20_000, 'a request through the internal listener');
  t.equal(r.body, 'from the internal listener');
});
