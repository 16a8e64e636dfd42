// Tenant isolation in the translators: what a namespaced CiliumEnvoyConfig may
// name, reference and bind, and who keeps a name when two objects want it. Pure.
import t from 'tap';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';
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
  const [u] = translateEnvoyConfigs(model(cec('evil', { resources: res }, 'attacker')), ctx);
  t.ok(u.rejected, 'the config is rejected');
  t.same(u.issues.map((i) => i.field), [
    'spec.resources[1].virtualHosts[0].routes[0].route.clusterHeader',
    'spec.resources[1].virtualHosts[0].routes[1].route.weightedClusters.clusters[0].name',
    'spec.resources[5].edsClusterConfig.serviceName',
  ]);
  t.match(u.issues[1].message, /"prod\/payments:80" is outside namespace attacker/);
  const json = u.resources.map(anyToJson) as any[];
  const authz = json[0].filterChains[0].filters[0].typedConfig.httpFilters[0].typedConfig.grpcService.envoyGrpc.clusterName;
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
  const { snapshot, issues, owners } = assemble(translateModel(m, ctx));
  const served = anyToJson(snapshot.get(`${T}envoy.config.endpoint.v3.ClusterLoadAssignment`).get('prod/payments:80')!.any) as any;
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
