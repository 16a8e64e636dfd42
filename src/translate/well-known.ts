// What Cilium lets CiliumEnvoyConfig authors leave implicit, made explicit so a
// stock Envoy accepts the same YAML:
// - a filter named without typed_config (Envoy 1.40 finds extensions by the
//   config's type URL only, so it NACKs these), for filters that need no
//   config: the empty config of the named type is what Cilium's Envoy used;
// - a route to the bootstrap's admin cluster, written "envoy-admin" in
//   Cilium's examples (its bootstrap calls it "/envoy-admin").
//
// Works on canonical proto3 JSON (camelCase, every Any expanded with @type),
// before names are qualified.

type Json = Record<string, any>;

const T = 'type.googleapis.com/envoy.extensions.filters.';

/** The bootstrap's static cluster in front of Envoy's admin socket. */
export const ADMIN_CLUSTER = '/envoy-admin';
/** The bootstrap's static cluster to the agent's gRPC socket: ADS, and the access logs Envoy streams back. */
export const AGENT_CLUSTER = 'sluice-xds';
const ADMIN_REFS = new Set(['envoy-admin', ADMIN_CLUSTER]);

type Kind = 'listener' | 'network' | 'http';

/** Filter name -> config type, per place; `false` marks a filter whose config has required fields. */
const FILTERS: Record<Kind, Record<string, string | false>> = {
  listener: {
    'envoy.filters.listener.tls_inspector': `${T}listener.tls_inspector.v3.TlsInspector`,
    'envoy.filters.listener.http_inspector': `${T}listener.http_inspector.v3.HttpInspector`,
    'envoy.filters.listener.original_dst': `${T}listener.original_dst.v3.OriginalDst`,
    'envoy.filters.listener.original_src': `${T}listener.original_src.v3.OriginalSrc`,
    'envoy.filters.listener.proxy_protocol': `${T}listener.proxy_protocol.v3.ProxyProtocol`,
  },
  network: {
    'envoy.filters.network.sni_cluster': `${T}network.sni_cluster.v3.SniCluster`,
    'envoy.filters.network.echo': `${T}network.echo.v3.Echo`,
    'envoy.filters.network.http_connection_manager': false,
    'envoy.filters.network.tcp_proxy': false,
  },
  http: {
    'envoy.filters.http.router': `${T}http.router.v3.Router`,
    'envoy.filters.http.upstream_codec': `${T}http.upstream_codec.v3.UpstreamCodec`,
    'envoy.filters.http.cors': `${T}http.cors.v3.Cors`,
    'envoy.filters.http.fault': `${T}http.fault.v3.HTTPFault`,
    'envoy.filters.http.grpc_web': `${T}http.grpc_web.v3.GrpcWeb`,
    'envoy.filters.http.grpc_stats': `${T}http.grpc_stats.v3.FilterConfig`,
    'envoy.filters.http.grpc_http1_bridge': `${T}http.grpc_http1_bridge.v3.Config`,
    'envoy.filters.http.buffer': false,
    'envoy.filters.http.compressor': false,
    'envoy.filters.http.ext_authz': false,
    'envoy.filters.http.health_check': false,
    'envoy.filters.http.local_ratelimit': false,
    'envoy.filters.http.lua': false,
    'envoy.filters.http.rbac': false,
  },
};

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

/** A filter or reference the author got wrong, with the path into the resource as they spell it. */
export class WellKnownError extends Error {}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * Fills in name-only filters and points "envoy-admin" routes at the admin
 * cluster, in place. Only a clusterwide config may route to the admin API:
 * it can reconfigure and stop the Envoy every namespace shares.
 */
export function applyWellKnown(q: { prefix: string }, r: Json): void {
  // A clusterwide config's prefix is "name/", a namespaced one's "ns/name/".
  const clusterwide = q.prefix.indexOf('/') === q.prefix.length - 1;
  if (r['@type'] === 'type.googleapis.com/envoy.config.cluster.v3.Cluster' && ADMIN_REFS.has(r.name))
    throw new WellKnownError(`name: "${r.name}" is the bootstrap's admin cluster; routes to it reach Envoy's admin API, so name this cluster otherwise`);
  walk(r, '', clusterwide);
}

function walk(node: unknown, path: string, clusterwide: boolean): void {
  if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${path}[${i}]`, clusterwide));
  if (!node || typeof node !== 'object') return;
  const o = node as Json;
  const at = (k: string) => (path ? `${path}.${snake(k)}` : snake(k));
  if (o['@type'] === 'type.googleapis.com/envoy.config.listener.v3.Listener') {
    fill(o.listenerFilters, at('listenerFilters'), 'listener');
    if (Array.isArray(o.filterChains)) o.filterChains.forEach((c: Json, i: number) => fill(c?.filters, `${at('filterChains')}[${i}].filters`, 'network'));
    fill(o.defaultFilterChain?.filters, `${at('defaultFilterChain')}.filters`, 'network');
  }
  if (o['@type'] === HCM) {
    fill(o.httpFilters, at('httpFilters'), 'http');
    if (Array.isArray(o.upgradeConfigs)) o.upgradeConfigs.forEach((u: Json, i: number) => fill(u?.filters, `${at('upgradeConfigs')}[${i}].filters`, 'http'));
  }
  // Route actions and TCP proxies name clusters in these fields.
  if (o['@type'] === TCP_PROXY || path.endsWith('.route') || path === 'route') adminRef(o, 'cluster', at('cluster'), clusterwide);
  for (const [k, v] of Object.entries(o)) {
    if (k === 'weightedClusters' && Array.isArray(v?.clusters))
      v.clusters.forEach((c: Json, i: number) => adminRef(c, 'name', `${at(k)}.clusters[${i}].name`, clusterwide));
    else if (k === 'requestMirrorPolicies' && Array.isArray(v)) v.forEach((m: Json, i: number) => adminRef(m, 'cluster', `${at(k)}[${i}].cluster`, clusterwide));
    walk(v, at(k), clusterwide);
  }
}

function fill(filters: unknown, path: string, kind: Kind): void {
  if (!Array.isArray(filters)) return;
  filters.forEach((f: Json, i: number) => {
    if (!f || typeof f !== 'object' || f.typedConfig || f.configDiscovery) return;
    const type = FILTERS[kind][f.name];
    if (type) f.typedConfig = { '@type': type };
    else if (type === false) throw new WellKnownError(`${path}[${i}]: "${f.name}" needs a typed_config: this filter has required settings`);
    else throw new WellKnownError(`${path}[${i}]: "${f.name ?? ''}" has no typed_config, and is not a ${kind} filter that works without one (${Object.keys(FILTERS[kind]).filter((n) => FILTERS[kind][n]).join(', ')})`);
  });
}

function adminRef(holder: Json | undefined, key: string, path: string, clusterwide: boolean): void {
  if (!holder || !ADMIN_REFS.has(holder[key])) return;
  if (!clusterwide) throw new WellKnownError(`${path}: only a CiliumClusterwideEnvoyConfig may route to "${holder[key]}" (Envoy's admin API)`);
  holder[key] = ADMIN_CLUSTER;
}
