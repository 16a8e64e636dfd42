// What Cilium lets CEC authors leave implicit, made explicit by the translator
// (pure; test/cec-cilium-examples.test.ts shows a real Envoy taking the result).
import t from 'tap';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';
import { anyToJson } from '../src/proto/any.js';
import { translateEnvoyConfigs } from '../src/translate/envoy-config.js';
import { ccec, cec } from './helpers/kube.js';

const T = 'type.googleapis.com/';
const HCM = `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`;
const ctx = { nodeName: 'node-a', proxyPort: () => 15000 };
const translate = (o: object) => translateEnvoyConfigs(Model.from([{ object: o as ModelObject, origin: { file: 'x.yaml', index: 0 } }]), ctx)[0];

/** A listener whose HCM has `httpFilters`, an upgrade with `upgradeFilters`, and a route to `cluster`. */
function listener(opts: { listenerFilters?: object[]; httpFilters?: object[]; upgradeFilters?: object[]; cluster?: string; defaultChain?: object[] }): object {
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name: 'l',
    listener_filters: opts.listenerFilters ?? [],
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: 'l',
              route_config: { virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: opts.cluster ?? 'c' } }] }] },
              http_filters: opts.httpFilters ?? [{ name: 'envoy.filters.http.router' }],
              upgrade_configs: opts.upgradeFilters ? [{ upgrade_type: 'websocket', filters: opts.upgradeFilters }] : [],
            },
          },
        ],
      },
    ],
    ...(opts.defaultChain ? { default_filter_chain: { filters: opts.defaultChain } } : {}),
  };
}

t.test('name-only filters that need no config get their type, wherever filters are listed', async (t) => {
  const u = translate(
    ccec('x', {
      resources: [
        listener({
          listenerFilters: [{ name: 'envoy.filters.listener.original_dst' }, { name: 'envoy.filters.listener.proxy_protocol' }],
          httpFilters: [{ name: 'envoy.filters.http.cors' }, { name: 'envoy.filters.http.router' }],
          upgradeFilters: [{ name: 'envoy.filters.http.router' }],
          defaultChain: [{ name: 'envoy.filters.network.echo' }],
        }),
      ],
    }),
  );
  t.same(u.issues, []);
  const l = anyToJson(u.resources[0]) as any;
  const types = (fs: any[]) => fs.map((f) => f.typedConfig['@type'].split('.').pop());
  t.same(types(l.listenerFilters), ['OriginalDst', 'ProxyProtocol']);
  const hcm = l.filterChains[0].filters[0].typedConfig;
  t.same(types(hcm.httpFilters), ['Cors', 'Router']);
  t.same(types(hcm.upgradeConfigs[0].filters), ['Router']);
  t.same(types(l.defaultFilterChain.filters), ['Echo']);
});

t.test('a filter given its typed_config is left as written', async (t) => {
  const router = { name: 'my-router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router`, suppress_envoy_headers: true } };
  const u = translate(ccec('x', { resources: [listener({ httpFilters: [router] })] }));
  t.same(u.issues, []);
  const hcm = (anyToJson(u.resources[0]) as any).filterChains[0].filters[0].typedConfig;
  t.same(hcm.httpFilters, [{ name: 'my-router', typedConfig: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router`, suppressEnvoyHeaders: true } }]);
});

t.test('names that cannot be filled are errors naming the field, and cost only their own config', async (t) => {
  const cases: [object, RegExp][] = [
    [listener({ listenerFilters: [{ name: 'envoy.filters.listener.nope' }] }), /^listener_filters\[0\]: "envoy\.filters\.listener\.nope" has no typed_config, and is not a listener filter that works without one \(.*tls_inspector/],
    [listener({ httpFilters: [{ name: 'envoy.filters.http.ext_authz' }, { name: 'envoy.filters.http.router' }] }), /^filter_chains\[0\]\.filters\[0\]\.typed_config\.http_filters\[0\]: "envoy\.filters\.http\.ext_authz" needs a typed_config/],
    [listener({ httpFilters: [{}] }), /http_filters\[0\]: "" has no typed_config/],
    // A network filter name is not an HTTP filter.
    [listener({ httpFilters: [{ name: 'envoy.filters.network.echo' }] }), /http_filters\[0\]: "envoy\.filters\.network\.echo" has no typed_config, and is not a http filter/],
  ];
  for (const [resource, message] of cases) {
    const u = translate(ccec('x', { resources: [resource] }));
    t.equal(u.rejected, true, 'the config is rejected');
    t.equal(u.issues.length, 1);
    t.equal(u.issues[0]?.field, 'spec.resources[0]');
    t.match(u.issues[0]?.message, message);
  }
});

t.test('envoy-admin: clusterwide routes reach the bootstrap cluster; namespaced ones and look-alike clusters are refused', async (t) => {
  for (const name of ['envoy-admin', '/envoy-admin']) {
    const u = translate(ccec('metrics', { resources: [listener({ cluster: name })] }));
    t.same(u.issues, []);
    const route = (anyToJson(u.resources[0]) as any).filterChains[0].filters[0].typedConfig.routeConfig.virtualHosts[0].routes[0].route;
    t.equal(route.cluster, '/envoy-admin', `${name} names the bootstrap's cluster, unqualified`);
  }
  const weighted = translate(
    ccec('w', {
      resources: [
        {
          '@type': `${T}envoy.config.route.v3.RouteConfiguration`,
          name: 'r',
          virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { weighted_clusters: { clusters: [{ name: 'envoy-admin', weight: 1 }, { name: 'local', weight: 1 }] } } }] }],
        },
      ],
    }),
  );
  t.same((anyToJson(weighted.resources[0]) as any).virtualHosts[0].routes[0].route.weightedClusters.clusters.map((c: any) => c.name), ['/envoy-admin', 'w/local'], 'in weighted clusters too');

  const tenant = translate(cec('metrics', { resources: [listener({ cluster: 'envoy-admin' })] }, 'team-a'));
  t.equal(tenant.rejected, true);
  t.match(tenant.issues[0]?.message, /route\.cluster: only a CiliumClusterwideEnvoyConfig may route to "envoy-admin" \(Envoy's admin API\)/);
  const tenantSlash = translate(cec('metrics', { resources: [listener({ cluster: '/envoy-admin' })] }, 'team-a'));
  t.equal(tenantSlash.rejected, true, 'nor by its full name');

  const lookAlike = translate(ccec('x', { resources: [{ '@type': `${T}envoy.config.cluster.v3.Cluster`, name: 'envoy-admin', type: 'STATIC', connect_timeout: '1s' }] }));
  t.match(lookAlike.issues[0]?.message, /^name: "envoy-admin" is the bootstrap's admin cluster/);
});
