// The CiliumEnvoyConfig translator as a pure function of the model.
import t from 'tap';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';
import { anyToJson } from '../src/proto/any.js';
import { translateEnvoyConfigs } from '../src/translate/envoy-config.js';
import { ccec, cec, endpointSlice, service, splitResources } from './helpers/kube.js';

const model = (...objects: object[]) => Model.from(objects.map((o, index) => ({ object: o as ModelObject, origin: { file: 'test.yaml', index } })));
const ctx = { nodeName: 'node-a', proxyPort: (k: string) => 15000 + k.length };
const byName = (resources: any[]) => Object.fromEntries(resources.map((r) => [r.name ?? r.clusterName, r]));

t.test('names are qualified, references follow, config sources default to ADS, address-less listeners get a proxy port', async (t) => {
  const [u] = translateEnvoyConfigs(model(cec('split', { resources: splitResources({ 'default/echo': 1, local: 1 }) }, 'shop')), ctx);
  t.same(u.issues, []);
  const r = byName(u.resources.map(anyToJson));
  const l = r['shop/split/listener'];
  t.ok(l, 'listener qualified with namespace/cec/');
  t.same(l.address, { socketAddress: { address: '127.0.0.1', portValue: ctx.proxyPort('shop/split/listener') } });
  const hcm = l.filterChains[0].filters[0].typedConfig;
  t.equal(hcm.rds.routeConfigName, 'shop/split/route', 'RDS reference follows');
  t.same(hcm.rds.configSource, { ads: {}, resourceApiVersion: 'V3' }, 'missing RDS config source points at ADS');
  const wc = r['shop/split/route'].virtualHosts[0].routes[0].route.weightedClusters.clusters.map((c: any) => c.name);
  t.same(wc, ['default/echo', 'shop/split/local'], 'a name with / is left alone, a bare one is qualified');
  t.same(r['shop/split/local'].edsClusterConfig.edsConfig, { ads: {}, resourceApiVersion: 'V3' }, 'missing EDS config source points at ADS');
});

t.test('clusterwide configs qualify with the config name only', async (t) => {
  const [u] = translateEnvoyConfigs(model(ccec('global', { resources: splitResources({ a: 1 }) })), ctx);
  t.ok(byName(u.resources.map(anyToJson))['global/listener']);
});

t.test('services redirect to the listener; backends become ns/svc and ns/svc:port from ready endpoints', async (t) => {
  const m = model(
    service('web', [{ port: 80, name: 'http', targetPort: 8080 }, { port: 9090, name: 'metrics' }], { namespace: 'shop' }),
    {
      ...(endpointSlice('web', 'http', 8080, [{ ip: '10.0.0.1' }, { ip: '10.0.0.2', ready: false }, { ip: '10.0.0.3', terminating: true }], { namespace: 'shop' }) as any),
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'metrics', port: 9091, protocol: 'TCP' }],
    },
    cec('l7', { services: [{ name: 'web', ports: [80] }], backendServices: [{ name: 'web', number: ['http'] }], resources: splitResources({ 'shop/web:80': 1 }) }, 'shop'),
  );
  const [u] = translateEnvoyConfigs(m, ctx);
  t.same(u.issues, []);
  t.same(u.redirects, [{ service: 'shop/web', port: 80, listener: 'shop/l7/listener', proxyPort: ctx.proxyPort('shop/l7/listener') }]);
  const r = byName(u.resources.map(anyToJson));
  const hosts = (cla: any) => (cla?.endpoints ?? []).flatMap((e: any) => e.lbEndpoints.map((l: any) => `${l.endpoint.address.socketAddress.address}:${l.endpoint.address.socketAddress.portValue}`));
  t.same(hosts(r['shop/web:80']), ['10.0.0.1:8080'], 'only ready, non-terminating endpoints, at the target port');
  t.same(hosts(r['shop/web']), ['10.0.0.1:8080'], 'ns/svc with the selected ports');
  t.notOk(r['shop/web:9090'], 'backendServices ports filter applies');
});

t.test('nodeSelector limits a config to matching nodes', async (t) => {
  const node = (labels: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels } });
  const sel = { nodeSelector: { matchLabels: { role: 'edge' }, matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] }, resources: splitResources({ a: 1 }) };
  t.equal(translateEnvoyConfigs(model(node({ role: 'edge', zone: 'a' }), cec('c', sel)), ctx)[0].resources.length, 3, 'matching node gets it');
  t.equal(translateEnvoyConfigs(model(node({ role: 'edge', zone: 'c' }), cec('c', sel)), ctx)[0].resources.length, 0, 'In fails');
  t.equal(translateEnvoyConfigs(model(cec('c', sel)), ctx)[0].resources.length, 0, 'a node with no labels does not match');
});

t.test('bad resources are issues that name the field, and reject the config', async (t) => {
  const res = splitResources({ a: 1 }) as any[];
  res[0].filter_chains[0].filters[0].typed_config.nope = 1;
  res.push({ '@type': 'type.googleapis.com/envoy.config.core.v3.Address', socket_address: { address: '1.2.3.4', port_value: 1 } });
  res.push({ ...res[2] });
  const [u] = translateEnvoyConfigs(model(cec('bad', { resources: res, services: [{ name: 'missing' }] })), ctx);
  t.ok(u.rejected);
  const fields = u.issues.map((i) => `${i.field}: ${i.message}`);
  t.match(fields[0], /^spec\.resources\[0\]\.filter_chains\[0\]\.filters\[0\]\.typed_config\.nope: unknown field "nope" in envoy\.extensions\.filters\.network\.http_connection_manager/);
  t.match(fields[1], /^spec\.resources\[3\]\.@type: "type\.googleapis\.com\/envoy\.config\.core\.v3\.Address" cannot be served/);
  t.match(fields[2], /^spec\.resources\[4\]\.name: a second Cluster named "default\/bad\/a"/);
  t.match(fields[3], /^spec\.services\[0\]\.listener: this config has no listener/);
  t.ok(u.issues.every((i) => i.object === 'CiliumEnvoyConfig default/bad' && i.origin?.file === 'test.yaml'));
});

t.test('address-less listeners bind the node proxy addresses: IPv4, IPv6 as an additional address, freebind', async (t) => {
  const proxyAddresses = { v4: '169.254.90.1', v6: 'fd5c:1ce0:7e11::1' };
  const [u] = translateEnvoyConfigs(model(cec('split', { resources: splitResources({ a: 1 }) })), { ...ctx, proxyAddresses });
  const l = byName(u.resources.map(anyToJson))['default/split/listener'];
  const port = ctx.proxyPort('default/split/listener');
  t.same(l.address, { socketAddress: { address: proxyAddresses.v4, portValue: port } });
  t.same(l.additionalAddresses, [{ address: { socketAddress: { address: proxyAddresses.v6, portValue: port } } }]);
  t.equal(l.freebind, true, 'Envoy binds even before the agent has added the address');
  const own = { socketAddress: { address: '10.0.0.1', portValue: 8000 } };
  const [mine] = translateEnvoyConfigs(model(cec('own', { resources: splitResources({ a: 1 }, { listener: { address: own } }) })), { ...ctx, proxyAddresses });
  const ownL = byName(mine.resources.map(anyToJson))['default/own/listener'];
  t.same([ownL.address, ownL.additionalAddresses, ownL.freebind], [own, undefined, undefined], 'a listener with its own address keeps it');
});
