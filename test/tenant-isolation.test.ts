// Tenant isolation in the translators: what a namespaced CiliumEnvoyConfig may
// name, reference and bind, and who keeps a name when two objects want it. Pure.
import t from 'tap';
import { Model } from '../src/model/model.js';
import type { HTTPRoute, ModelObject } from '../src/model/objects.js';
import { checkKubeObject } from '../src/sources/kube-objects.js';
import { routeParentStatuses } from '../src/translate/route-status.js';
import { anyFromJson, anyToJson } from '../src/proto/any.js';
import { assemble, translateModel } from '../src/translate/assemble.js';
import type { TranslateContext } from '../src/translate/context.js';
import { translateEnvoyConfigs } from '../src/translate/envoy-config.js';
import { ccec, cec, endpointSlice, httpRoute, service, splitResources } from './helpers/kube.js';

const T = 'type.googleapis.com/';
const model = (...objects: object[]) => Model.from(objects.map((o, index) => ({ object: o as ModelObject, origin: { file: 't.yaml', index } })));
const ctx: TranslateContext = {
  nodeName: 'n',
  proxyPort: (k) => 13000 + (k.length % 100),
  proxyPortRange: [13000, 13999],
  reservedPorts: { "the node Envoy's admin interface": 9901, 'the Kubernetes API server': 6443 },
};
const names = (u: { resources: any[] }) => u.resources.map(anyToJson).map((r: any) => r.name ?? r.clusterName);
const cla = (name: string, ip = '10.9.9.9') => ({ '@type': `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`, cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: ip, port_value: 80 } } } }] }] });
const routeConfig = (name: string) => ({ '@type': `${T}envoy.config.route.v3.RouteConfiguration`, name, virtual_hosts: [{ name: 'x', domains: ['*'], routes: [{ match: { prefix: '/' }, direct_response: { status: 418 } }] }] });
const payments = [service('payments', [{ port: 80, name: 'http' }], { namespace: 'prod' }), endpointSlice('payments', 'http', 8080, [{ ip: '10.1.0.1' }], { namespace: 'prod' })];

t.test("a namespaced config's definitions always carry its namespace", async (t) => {
  const [u] = translateEnvoyConfigs(model(cec('evil', { resources: [cla('prod/payments:80'), routeConfig('gamma/prod/frontend:80'), cla('attacker/mine')] }, 'attacker')), ctx);
  t.same(u.issues, []);
  t.same(names(u), ['attacker/evil/prod/payments:80', 'attacker/evil/gamma/prod/frontend:80', 'attacker/mine'], 'foreign names get the full prefix; its own namespace is kept');
  const [c] = translateEnvoyConfigs(model(ccec('admin', { resources: [cla('prod/payments:80')] })), ctx);
  t.same(names(c), ['prod/payments:80'], 'a clusterwide config names what it likes');
});

t.test('references leaving the namespace are refused, naming the field', async (t) => {
  const res = splitResources({ 'prod/payments:80': 1, 'attacker/own': 1, bare: 1 }) as any[];
  res.push({ '@type': `${T}envoy.config.cluster.v3.Cluster`, name: 'eds', type: 'EDS', eds_cluster_config: { service_name: 'prod/payments' } });
  res[0].filter_chains[0].filters[0].typed_config.http_filters.unshift({
    name: 'envoy.filters.http.ext_authz',
    typed_config: { '@type': `${T}envoy.extensions.filters.http.ext_authz.v3.ExtAuthz`, grpc_service: { envoy_grpc: { cluster_name: 'authz' } }, transport_api_version: 'V3' },
  });
  res[1].virtual_hosts[0].routes.unshift({ match: { prefix: '/h' }, route: { cluster_header: 'x-cluster' } });
  res[1].virtual_hosts[0].request_mirror_policies = [{ cluster: 'prod/payments' }];
  res[0].filter_chains[0].filters[0].typed_config.http_filters.unshift({
    name: 'envoy.filters.http.jwt_authn',
    typed_config: { '@type': `${T}envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication`, providers: { p: { remote_jwks: { http_uri: { uri: 'http://x/jwks', cluster: 'prod/payments:80', timeout: '1s' } } } } },
  });
  const [u] = translateEnvoyConfigs(model(cec('evil', { resources: res }, 'attacker')), ctx);
  t.ok(u.rejected, 'the config is rejected');
  t.same(u.issues.map((i) => i.field), [
    'spec.resources[0].filterChains[0].filters[0].typedConfig.httpFilters[0].typedConfig.providers.p.remoteJwks.httpUri.cluster',
    'spec.resources[1].virtualHosts[0].requestMirrorPolicies[0].cluster',
    'spec.resources[1].virtualHosts[0].routes[0].route.clusterHeader',
    'spec.resources[1].virtualHosts[0].routes[1].route.weightedClusters.clusters[0].name',
    'spec.resources[5].edsClusterConfig.serviceName',
  ]);
  t.match(u.issues[3].message, /"prod\/payments:80" is outside namespace attacker/);
  const json = u.resources.map(anyToJson) as any[];
  const authz = json[0].filterChains[0].filters[0].typedConfig.httpFilters[1].typedConfig.grpcService.envoyGrpc.clusterName;
  t.equal(authz, 'attacker/evil/authz', 'a bare gRPC cluster name is qualified into the namespace');

  const [admin] = translateEnvoyConfigs(model(ccec('admin', { resources: res })), ctx);
  t.same(admin.issues, [], 'a clusterwide config may reference any namespace');
});

t.test('Services of other namespaces: refused for a namespaced config, allowed clusterwide', async (t) => {
  const spec = { services: [{ name: 'payments', namespace: 'prod' }], backendServices: [{ name: 'payments', namespace: 'prod' }], resources: splitResources({ 'prod/payments:80': 1 }) };
  const [u] = translateEnvoyConfigs(model(...payments, cec('evil', spec, 'attacker')), ctx);
  t.ok(u.rejected);
  t.same(u.redirects, [], 'no Service of prod is steered');
  t.ok(!names(u).includes('prod/payments:80'), 'no endpoints of prod are generated');
  t.same(u.issues.map((i) => i.field).filter((f) => f.startsWith('spec.services') || f.startsWith('spec.backendServices')), ['spec.services[0].namespace', 'spec.backendServices[0].namespace']);
  const [own] = translateEnvoyConfigs(model(...payments, cec('ok', { ...spec, services: [{ name: 'payments' }], backendServices: [{ name: 'payments', namespace: 'prod' }], resources: splitResources({ 'prod/payments:80': 1 }) }, 'prod')), ctx);
  t.same(own.issues, [], 'naming its own namespace explicitly is fine');
  const [admin] = translateEnvoyConfigs(model(...payments, ccec('admin', spec)), ctx);
  t.same(admin.issues, []);
  t.same(admin.redirects.map((r) => r.service), ['prod/payments']);
});

t.test('listener ports: tenants get the proxy range, administrators any port the node does not use', async (t) => {
  const at = (port: number | undefined, extra: object = {}) => splitResources({ a: 1 }, { listener: port === undefined ? extra : { address: { socket_address: { address: '127.0.0.1', port_value: port } }, ...extra } });
  const problems = (o: object) => translateEnvoyConfigs(model(service('np', [{ port: 80 }]), { ...(service('np2', [{ port: 80 }], { namespace: 'x' }) as any), spec: { type: 'NodePort', ports: [{ port: 80, nodePort: 30080 }] } }, o), ctx)[0].issues.map((i) => `${i.field}: ${i.message}`);
  t.same(problems(cec('c', { resources: at(undefined) }, 'tenant')), [], 'an address-less listener gets a proxy port');
  t.same(problems(cec('c', { resources: at(13500) }, 'tenant')), [], 'an explicit port inside the range is allowed');
  t.match(problems(cec('c', { resources: at(8080) }, 'tenant')), [/^spec\.resources\[0\]\.address\.socketAddress\.portValue: port 8080 is outside the proxy port range 13000-13999/]);
  t.match(problems(cec('c', { resources: at(undefined, { address: { pipe: { path: '/run/x.sock' } } }) }, 'tenant')), [/^spec\.resources\[0\]\.address: a namespaced config may listen only/]);
  t.match(problems(cec('c', { resources: at(13500, { additional_addresses: [{ address: { socket_address: { address: '0.0.0.0', port_value: 80 } } }] }) }, 'tenant')), [/additionalAddresses\[0\]\.address\.socketAddress\.portValue: port 80 is outside/]);
  t.same(problems(ccec('metrics', { resources: at(9090) })), [], "a clusterwide config may bind :9090, as Cilium's metrics example does");
  t.match(problems(ccec('admin', { resources: at(9901) })), [/portValue: port 9901 is taken on the node by the node Envoy's admin interface/]);
  t.match(problems(ccec('api', { resources: at(6443) })), [/port 6443 is taken on the node by the Kubernetes API server/]);
  t.match(problems(ccec('np', { resources: at(30080) })), [/port 30080 is taken on the node by NodePort of Service x\/np2/]);
  t.ok(translateEnvoyConfigs(model(ccec('admin', { resources: at(9901) })), ctx)[0].rejected, 'and the config is rejected');
});

t.test("generated resources keep their name against any written one, whatever the order", async (t) => {
  const route = httpRoute('r', { parentRefs: [{ group: '', kind: 'Service', name: 'payments', port: 80 }], rules: [{ backendRefs: [{ name: 'payments', port: 80 }] }] }, 'prod');
  // A clusterwide config (translated before the HTTPRoute) and a namespaced one of prod write the generated names.
  const m = model(...payments, route, ccec('admin', { resources: [cla('prod/payments:80'), routeConfig('gamma/prod/payments:80')] }), cec('mine', { resources: [cla('prod/payments:80', '10.7.7.7')] }, 'prod'));
  const { resources, issues, owners } = assemble(translateModel(m, ctx));
  const served = anyToJson(resources.find((r) => r.typeUrl === `${T}envoy.config.endpoint.v3.ClusterLoadAssignment` && r.name === 'prod/payments:80')!.any) as any;
  t.equal(served.endpoints[0].lbEndpoints[0].endpoint.address.socketAddress.address, '10.1.0.1', "the Service's real endpoints are served");
  t.equal(owners.get(`${T}envoy.config.route.v3.RouteConfiguration/gamma/prod/payments:80`), 'Service prod/payments:80', 'the GAMMA route config is the agent\'s');
  t.same(issues.map((i) => `${i.object}: ${i.field}`).sort(), [
    'CiliumClusterwideEnvoyConfig admin: spec.resources[0]',
    'CiliumClusterwideEnvoyConfig admin: spec.resources[1]',
    'CiliumEnvoyConfig prod/mine: spec.resources[0]',
  ]);
  t.ok(issues.every((i) => /generated by the agent/.test(i.message)), issues.map((i) => i.message).join('\n'));
});

t.test('between two written resources the first keeps the name', async (t) => {
  const unit = (object: string, ip: string) => ({ object, resources: [anyFromJson(cla('ns/x', ip))], redirects: [], issues: [], authored: 1 });
  const { issues, owners } = assemble([unit('A', '10.0.0.1'), unit('B', '10.0.0.2')]);
  t.equal(owners.get(`${T}envoy.config.endpoint.v3.ClusterLoadAssignment/ns/x`), 'A');
  t.match(issues, [{ object: 'B', field: 'spec.resources[0]', message: /also defined, differently, by A which keeps it/ }]);
});

t.test('GAMMA: consumer routes get a filter chain for their namespace\'s pods on this node; producer routes stay for everyone', async (t) => {
  const pod = (name: string, ns: string, ip: string, extra: object = {}) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns }, spec: { nodeName: 'n', ...extra }, status: { phase: 'Running', podIPs: [{ ip }] } });
  const parent = (ns?: string) => ({ parentRefs: [{ group: '', kind: 'Service', name: 'payments', namespace: ns, port: 80 }] });
  const objects = [
    ...payments,
    service('mine', [{ port: 80 }], { namespace: 'shop' }),
    pod('a', 'shop', '10.0.1.1'),
    pod('b', 'shop', 'fd00::1'),
    pod('c', 'blog', '10.0.1.2'),
    pod('elsewhere', 'shop', '10.0.9.9', { nodeName: 'other-node' }),
    pod('host', 'shop', '192.0.2.10', { hostNetwork: true }),
    httpRoute('producer', { ...parent(), rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/p' } }], backendRefs: [{ name: 'payments', port: 80 }] }] }, 'prod'),
    httpRoute('consumer', { ...parent('prod'), rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/p' } }], backendRefs: [{ name: 'mine', port: 80 }] }] }, 'shop'),
    httpRoute('nobody-here', { ...parent('prod'), rules: [{ backendRefs: [{ name: 'payments', namespace: 'prod', port: 80 }] }] }, 'empty'),
  ];
  const units = translateModel(model(...objects), ctx);
  const unit = units.find((u) => u.object === 'Service prod/payments:80')!;
  const json = unit.resources.map(anyToJson) as any[];
  const listener = json.find((r) => r['@type'].endsWith('Listener'));
  t.equal(listener.filterChains.length, 2, 'the default chain and one for shop; none for a namespace without pods here');
  t.same(listener.filterChains[1].filterChainMatch.sourcePrefixRanges, [{ addressPrefix: '10.0.1.1', prefixLen: 32 }, { addressPrefix: 'fd00::1', prefixLen: 128 }], "shop's pods on this node, not on others, not on the host network");
  const rcs = Object.fromEntries(json.filter((r) => r['@type'].endsWith('RouteConfiguration')).map((r) => [r.name, r.virtualHosts[0].routes]));
  t.same(rcs['gamma/prod/payments:80'].map((r: any) => r.route?.cluster ?? r.directResponse?.status), ['prod/payments:80', 404], 'everyone else: the producer route only');
  t.same(rcs['gamma/prod/payments:80/consumer/shop'].map((r: any) => r.route?.cluster ?? r.directResponse?.status), ['shop/mine:80', 'prod/payments:80', 404], 'shop: its consumer route before the producer route');

  const onlyConsumer = translateModel(model(...objects.filter((o: any) => o.metadata.name !== 'producer')), ctx).find((u) => u.object === 'Service prod/payments:80')!;
  const rc = (onlyConsumer.resources.map(anyToJson) as any[]).find((r) => r.name === 'gamma/prod/payments:80' && r['@type'].endsWith('RouteConfiguration'));
  t.same(rc.virtualHosts[0].routes, [{ match: { prefix: '/' }, route: { cluster: 'prod/payments:80' } }], 'with no producer route, other clients reach the Service as before');
  t.notOk(translateModel(model(...objects.filter((o: any) => !['producer', 'consumer'].includes(o.metadata.name))), ctx).some((u) => u.object === 'Service prod/payments:80'), 'no listener when no route applies to anyone here');
});

t.test('GAMMA: a backendRef into another namespace needs a ReferenceGrant there, for that kind, namespace and name', async (t) => {
  const grant = (from: object, to: object, ns = 'prod') => ({ apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'ReferenceGrant', metadata: { name: 'g', namespace: ns }, spec: { from: [from], to: [to] } });
  const from = { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'shop' };
  const route = httpRoute('r', { parentRefs: [{ group: '', kind: 'Service', name: 'mine', port: 80 }], rules: [{ backendRefs: [{ name: 'payments', namespace: 'prod', port: 80 }] }] }, 'shop');
  const issuesWith = (...extra: object[]) => translateModel(model(...payments, service('mine', [{ port: 80 }], { namespace: 'shop' }), route, ...extra), ctx).find((u) => u.object === 'HTTPRoute shop/r')!.issues;
  t.match(issuesWith(), [{ field: 'spec.rules[0].backendRefs[0]', message: /no ReferenceGrant in namespace prod lets HTTPRoutes of shop refer to Service payments/ }]);
  t.same(issuesWith(grant(from, { group: '', kind: 'Service' })), [], 'a grant for every Service');
  t.same(issuesWith(grant(from, { group: '', kind: 'Service', name: 'payments' })), [], 'a grant for this Service');
  t.equal(issuesWith(grant(from, { group: '', kind: 'Service', name: 'other' })).length, 1, 'a grant for another Service');
  t.equal(issuesWith(grant({ ...from, namespace: 'blog' }, { group: '', kind: 'Service' })).length, 1, 'a grant to another namespace');
  t.equal(issuesWith(grant(from, { group: '', kind: 'Service' }, 'shop')).length, 1, 'a grant in the wrong namespace');
  const units = translateModel(model(...payments, service('mine', [{ port: 80 }], { namespace: 'shop' }), route), ctx);
  const rc = (units.find((u) => u.object === 'Service shop/mine:80')!.resources.map(anyToJson) as any[]).find((r) => r['@type'].endsWith('RouteConfiguration'));
  t.equal(rc.virtualHosts[0].routes[0].route.cluster, '!invalid/prod/payments:80', 'a cluster name nothing defines, so the request gets 500');
  t.equal(rc.virtualHosts[0].routes[0].route.clusterNotFoundResponseCode, 'INTERNAL_SERVER_ERROR');
  const [status] = routeParentStatuses(route as HTTPRoute, units.find((u) => u.object === 'HTTPRoute shop/r')!.issues);
  t.match(status.conditions.find((c) => c.type === 'ResolvedRefs'), { status: 'False', reason: 'RefNotPermitted' });
});

t.test('ReferenceGrant YAML is shape-checked like the CRD would', async (t) => {
  const doc = (spec: object) => ({ apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'ReferenceGrant', metadata: { name: 'g', namespace: 'prod' }, spec });
  t.ok('object' in checkKubeObject(doc({ from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'shop' }], to: [{ group: '', kind: 'Service' }] }), {}));
  t.match(checkKubeObject(doc({ from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }], to: [{ group: '', kind: 'Service' }] }), {}), { issue: { field: 'spec.from[0].namespace' } });
  t.match(checkKubeObject(doc({ from: [], to: [] }), {}), { issue: { field: 'spec.from' } });
});

t.test('a host socket is held by one listener: generated first, then the first object; a listener that lost steers nothing', async (t) => {
  const at = (port: number, address = '127.0.0.1') => splitResources({ a: 1 }, { listener: { address: { socket_address: { address, port_value: port } } } });
  const route = httpRoute('r', { parentRefs: [{ group: '', kind: 'Service', name: 'payments', port: 80 }], rules: [{ backendRefs: [{ name: 'payments', port: 80 }] }] }, 'prod');
  const gammaPort = ctx.proxyPort('gamma/prod/payments:80');
  const m = model(
    ...payments,
    service('web', [{ port: 80 }], { namespace: 'tenant' }),
    cec('squat', { services: [{ name: 'web' }], resources: at(gammaPort) }, 'tenant'),
    ccec('wild', { resources: at(9090, '0.0.0.0') }),
    ccec('metrics', { resources: at(9090, '127.0.0.1') }),
    ccec('v6', { resources: at(9091, '::1') }),
    ccec('v4', { resources: at(9091, '127.0.0.1') }),
    route,
  );
  const { issues, redirects } = assemble(translateModel(m, ctx));
  t.same(issues.map((i) => `${i.object}: ${i.field}: ${i.message}`), [
    'CiliumClusterwideEnvoyConfig metrics: spec.resources[0]: Listener "metrics/listener" cannot listen there: CiliumClusterwideEnvoyConfig wild already listens on 0.0.0.0:9090',
    `CiliumEnvoyConfig tenant/squat: spec.resources[0]: Listener "tenant/squat/listener" cannot listen there: Service prod/payments:80 already listens on 127.0.0.1:${gammaPort}`,
  ], 'distinct addresses on one port coexist; a wildcard holds them all');
  t.same(redirects.map((r) => r.service), ['prod/payments'], "the squatter's Service is not steered into prod's listener");
});

t.test('a clusterwide config keeps a name against a namespaced one that wants it, whatever the order', async (t) => {
  // A tenant's names in namespace "shop" start "shop/", as may any name an administrator writes.
  const tenant = cec('x', { resources: [cla('own', '10.6.6.6')] }, 'shop');
  const admin = ccec('admin', { resources: [cla('shop/x/own', '10.1.1.1')] });
  for (const objects of [[tenant, admin], [admin, tenant]]) {
    const a = assemble(translateEnvoyConfigs(model(...objects), ctx));
    t.equal(a.owners.get(`${T}envoy.config.endpoint.v3.ClusterLoadAssignment/shop/x/own`), 'CiliumClusterwideEnvoyConfig admin');
    t.match(a.issues.map((i) => `${i.object}: ${i.message}`), [/CiliumEnvoyConfig shop\/x: .*also defined, differently, by CiliumClusterwideEnvoyConfig admin/]);
  }
});

t.test("a tenant cannot take another namespace's proxy port by writing it down", async (t) => {
  const port = ctx.proxyPort('victim/own/listener');
  const squat = splitResources({ a: 1 }, { listener: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } });
  const m = model(cec('squat', { resources: squat }, 'attacker'), cec('own', { resources: splitResources({ a: 1 }) }, 'victim'));
  const { issues, owners } = assemble(translateModel(m, ctx));
  t.equal(owners.get(`${T}envoy.config.listener.v3.Listener/victim/own/listener`), 'CiliumEnvoyConfig victim/own', "the victim's listener keeps the port the agent gave it");
  t.match(issues.map((i) => `${i.object}: ${i.message}`), [new RegExp(`^CiliumEnvoyConfig attacker/squat: Listener "attacker/squat/listener" cannot listen there: CiliumEnvoyConfig victim/own already listens on 127.0.0.1:${port}$`)]);
});

t.test("other extensions' cluster fields stay in a tenant's namespace too (aggregate clusters, UDP proxy)", async (t) => {
  const aggregate = {
    '@type': `${T}envoy.config.cluster.v3.Cluster`,
    name: 'agg',
    connect_timeout: '1s',
    lb_policy: 'CLUSTER_PROVIDED',
    cluster_type: { name: 'envoy.clusters.aggregate', typed_config: { '@type': `${T}envoy.extensions.clusters.aggregate.v3.ClusterConfig`, clusters: ['mine', 'prod/payments:80'] } },
  };
  const udp = {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name: 'udp',
    address: { socket_address: { protocol: 'UDP', address: '127.0.0.1', port_value: 13500 } },
    listener_filters: [{ name: 'envoy.filters.udp_listener.udp_proxy', typed_config: { '@type': `${T}envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig`, stat_prefix: 'u', cluster: 'prod/dns' } }],
  };
  const [u] = translateEnvoyConfigs(model(cec('evil', { resources: [aggregate, udp] }, 'attacker')), ctx);
  t.ok(u.rejected, 'the config is rejected');
  t.same(u.issues.map((i) => i.field), ['spec.resources[0].clusterType.typedConfig.clusters[1]', 'spec.resources[1].listenerFilters[0].typedConfig.cluster']);
  const [ok] = translateEnvoyConfigs(model(cec('fine', { resources: [{ ...aggregate, cluster_type: { ...aggregate.cluster_type, typed_config: { ...aggregate.cluster_type.typed_config, clusters: ['mine'] } } }] }, 'attacker')), ctx);
  t.same(ok.issues, []);
  t.same((anyToJson(ok.resources[0]) as any).clusterType.typedConfig.clusters, ['attacker/fine/mine'], 'a bare name is qualified into the namespace');
  const [admin] = translateEnvoyConfigs(model(ccec('admin', { resources: [aggregate] })), ctx);
  t.same(admin.issues, [], 'a clusterwide config may name any cluster');
});

t.test("a namespaced config cannot present a workload's SVID or the mesh's bundle", async (t) => {
  const { svidSecretName, BUNDLE_SECRET_NAME } = await import('../src/identity/types.js');
  const stolen = svidSecretName('spiffe://cluster.local/ns/prod/sa/payments');
  const cluster = (sds: string[], validation?: string) => ({
    '@type': `${T}envoy.config.cluster.v3.Cluster`,
    name: 'out',
    type: 'STATIC',
    load_assignment: { cluster_name: 'out', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.9.9.9', port_value: 443 } } } }] }] },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': `${T}envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`,
        common_tls_context: { tls_certificate_sds_secret_configs: sds.map((name) => ({ name })), ...(validation ? { validation_context_sds_secret_config: { name: validation } } : {}) },
      },
    },
  });
  const [u] = translateEnvoyConfigs(model(cec('thief', { resources: [cluster([stolen])] }, 'attacker')), ctx);
  t.ok(u.rejected, "another namespace's SVID: rejected");
  t.match(u.issues[0].message, /is outside namespace attacker/);
  t.match(u.issues[0].field, /tlsCertificateSdsSecretConfigs\[0\]\.name$/);
  const [own] = translateEnvoyConfigs(model(cec('thief', { resources: [cluster([svidSecretName('spiffe://cluster.local/ns/attacker/sa/x')])] }, 'attacker')), ctx);
  t.ok(own.rejected, "not even its own namespace's: SVIDs are the mesh's, named outside every namespace");
  const [bundle] = translateEnvoyConfigs(model(cec('b', { resources: [cluster([], BUNDLE_SECRET_NAME)] }, 'attacker')), ctx);
  const json = anyToJson(bundle.resources[0]) as any;
  t.equal(json.transportSocket.typedConfig.commonTlsContext.validationContextSdsSecretConfig.name, `attacker/b/${BUNDLE_SECRET_NAME}`, "the bare bundle name is qualified into the namespace: the tenant's own secret, not the mesh's");
});
