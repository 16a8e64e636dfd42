// Cilium-compatible naming for CiliumEnvoyConfig resources: names are
// qualified with "namespace/cec-name/" (clusterwide: "cec-name/") so configs
// cannot collide, and so are the references between them. Config sources that
// are left out point at the agent's ADS.
//
// A clusterwide config is an administrator's: a name that already holds a "/"
// is left alone, so it may define and reference anything. A namespaced config
// is a tenant's: what it defines always lands in its namespace (a name outside
// "<ns>/" gets the full prefix, as Cilium's forced namespace does), and a
// reference that resolves outside "<ns>/" is refused, because that name belongs
// to another namespace, a clusterwide config or the agent.
//
// Works on canonical proto3 JSON (camelCase, every Any expanded with @type).

import { applyWellKnown } from './well-known.js';
import { isServedType } from '../resources/types.js';

type Json = Record<string, any>;

const T = 'type.googleapis.com/';
const ADS = (): Json => ({ ads: {}, resourceApiVersion: 'V3' });

export interface Qualifier {
  prefix: string;
  /** Set for a namespaced config: definitions are forced into it and references confined to it. */
  namespace?: string;
  /** References that left the namespace, with the field that holds each. */
  refused: { field: string; message: string }[];
}

export function qualifier(namespace: string | undefined, name: string): Qualifier {
  return { prefix: namespace ? `${namespace}/${name}/` : `${name}/`, namespace, refused: [] };
}

/** The name a resource this config defines gets. */
export function qualify(q: Qualifier, name: string): string {
  if (q.namespace === undefined) return name.includes('/') ? name : `${q.prefix}${name}`;
  return name.startsWith(`${q.namespace}/`) ? name : `${q.prefix}${name}`;
}

/** The name a reference resolves to; one leaving a namespaced config's namespace is recorded as refused. */
function reference(q: Qualifier, name: string, field: string): string {
  const out = name.includes('/') ? name : `${q.prefix}${name}`;
  if (q.namespace !== undefined && !out.startsWith(`${q.namespace}/`))
    q.refused.push({ field, message: `"${name}" is outside namespace ${q.namespace}; a CiliumEnvoyConfig may reference only names in its own namespace` });
  return out;
}

function refuse(q: Qualifier, field: string, message: string): void {
  if (q.namespace !== undefined) q.refused.push({ field, message });
}

function each(list: unknown, path: string, fn: (x: Json, path: string) => void): void {
  if (Array.isArray(list)) list.forEach((x, i) => x && typeof x === 'object' && fn(x, `${path}[${i}]`));
}

function clusterRefs(q: Qualifier, holder: Json | undefined, path: string): void {
  if (!holder) return;
  if (typeof holder.cluster === 'string') holder.cluster = reference(q, holder.cluster, `${path}.cluster`);
  each(holder.weightedClusters?.clusters, `${path}.weightedClusters.clusters`, (c, p) => {
    if (typeof c.name === 'string') c.name = reference(q, c.name, `${p}.name`);
  });
  each(holder.requestMirrorPolicies, `${path}.requestMirrorPolicies`, (m, p) => {
    if (typeof m.cluster === 'string') m.cluster = reference(q, m.cluster, `${p}.cluster`);
  });
  // Clusters picked per request cannot be checked here, and could be any namespace's.
  for (const k of ['clusterHeader', 'clusterSpecifierPlugin', 'inlineClusterSpecifierPlugin'])
    if (holder[k] !== undefined) refuse(q, `${path}.${k}`, `${k} picks a cluster per request, which could be another namespace's; name clusters instead`);
}

function routeConfig(q: Qualifier, rc: Json, topLevel: boolean, path: string): void {
  if (topLevel && typeof rc.name === 'string') rc.name = qualify(q, rc.name);
  each(rc.virtualHosts, `${path}.virtualHosts`, (vh, p) => {
    // A virtual host may mirror too.
    clusterRefs(q, vh, p);
    each(vh.routes, `${p}.routes`, (r, rp) => clusterRefs(q, r.route, `${rp}.route`));
  });
}

function sdsConfigs(q: Qualifier, node: unknown, path: string): void {
  // SdsSecretConfig sits at a handful of places in TLS contexts; find them by field name.
  if (Array.isArray(node)) return node.forEach((n, i) => sdsConfigs(q, n, `${path}[${i}]`));
  if (!node || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === 'tlsCertificateSdsSecretConfigs') each(v, `${path}.${k}`, (s, p) => sdsSecret(q, s, p));
    else if (k === 'validationContextSdsSecretConfig' && v && typeof v === 'object') sdsSecret(q, v as Json, `${path}.${k}`);
    else sdsConfigs(q, v, `${path}.${k}`);
  }
}

function sdsSecret(q: Qualifier, s: Json, path: string): void {
  if (typeof s.name === 'string') s.name = reference(q, s.name, `${path}.name`);
  s.sdsConfig ??= ADS();
}

function typedConfigs(q: Qualifier, node: unknown, path: string): void {
  if (Array.isArray(node)) return node.forEach((n, i) => typedConfigs(q, n, `${path}[${i}]`));
  if (!node || typeof node !== 'object') return;
  const o = node as Json;
  switch (o['@type']) {
    case `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`:
      if (o.rds) {
        if (typeof o.rds.routeConfigName === 'string') o.rds.routeConfigName = reference(q, o.rds.routeConfigName, `${path}.rds.routeConfigName`);
        o.rds.configSource ??= ADS();
      }
      if (o.routeConfig) routeConfig(q, o.routeConfig, false, `${path}.routeConfig`);
      break;
    case `${T}envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`:
      clusterRefs(q, o, path);
      break;
    default:
      // The served resources themselves (a RouteConfiguration's routes, say) are qualified above.
      if (q.namespace !== undefined && typeof o['@type'] === 'string' && !isServedType(o['@type'])) otherClusterFields(q, o, path);
  }
  // gRPC side services (ext_authz, ext_proc, rate limits, access logs) dial a cluster by name. Cilium leaves
  // these alone, so a clusterwide config keeps reaching bootstrap clusters; a tenant's stay in its namespace.
  if (q.namespace !== undefined && typeof o.envoyGrpc?.clusterName === 'string')
    o.envoyGrpc.clusterName = reference(q, o.envoyGrpc.clusterName, `${path}.envoyGrpc.clusterName`);
  // So do HttpUri fields (JWKS fetches, ext_authz over HTTP): a uri with the cluster that carries it.
  if (q.namespace !== undefined && typeof o.uri === 'string' && typeof o.cluster === 'string') o.cluster = reference(q, o.cluster, `${path}.cluster`);
  for (const [k, v] of Object.entries(o)) typedConfigs(q, v, `${path}.${k}`);
}

/**
 * Every other extension that names clusters (UDP proxy, aggregate clusters,
 * thrift/dubbo/redis routes, ...) does so in fields called `cluster` or
 * `clusters`: in a tenant's config each must stay in its namespace. Nested
 * typed configs are left to typedConfigs, which visits them itself.
 */
function otherClusterFields(q: Qualifier, node: unknown, path: string): void {
  if (Array.isArray(node)) return node.forEach((n, i) => otherClusterFields(q, n, `${path}[${i}]`));
  if (!node || typeof node !== 'object') return;
  const o = node as Json;
  if (typeof o.cluster === 'string' && typeof o.uri !== 'string') o.cluster = reference(q, o.cluster, `${path}.cluster`);
  if (Array.isArray(o.clusters)) o.clusters = o.clusters.map((c: unknown, i: number) => (typeof c === 'string' ? reference(q, c, `${path}.clusters[${i}]`) : c));
  for (const [k, v] of Object.entries(o)) if (v && typeof v === 'object' && !(v as Json)['@type']) otherClusterFields(q, v, `${path}.${k}`);
}

/** Rewrites one resource in place; `path` is where it sits in its object, for refused references. */
export function qualifyResource(q: Qualifier, r: Json, path: string): void {
  applyWellKnown(q, r);
  switch (r['@type']) {
    case `${T}envoy.config.listener.v3.Listener`:
      r.name = qualify(q, r.name ?? '');
      break;
    case `${T}envoy.config.route.v3.RouteConfiguration`:
      routeConfig(q, r, true, path);
      break;
    case `${T}envoy.config.cluster.v3.Cluster`:
      r.name = qualify(q, r.name ?? '');
      if (r.type === 'EDS') {
        r.edsClusterConfig ??= {};
        r.edsClusterConfig.edsConfig ??= ADS();
        if (r.edsClusterConfig.serviceName) r.edsClusterConfig.serviceName = reference(q, r.edsClusterConfig.serviceName, `${path}.edsClusterConfig.serviceName`);
      }
      break;
    case `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`:
      r.clusterName = qualify(q, r.clusterName ?? '');
      break;
    case `${T}envoy.extensions.transport_sockets.tls.v3.Secret`:
      r.name = qualify(q, r.name ?? '');
      break;
  }
  typedConfigs(q, r, path);
  sdsConfigs(q, r, path);
}
