// Cilium-compatible naming for CiliumEnvoyConfig resources: names are
// qualified with "namespace/cec-name/" (clusterwide: "cec-name/") so configs
// cannot collide, and so are the references between them. A reference that
// already holds a "/" names something outside the CEC (such as the
// "ns/svc:port" backend clusters) and is left alone. Config sources that are
// left out point at the agent's ADS.
//
// Works on canonical proto3 JSON (camelCase, every Any expanded with @type).

import { applyWellKnown } from './well-known.js';

type Json = Record<string, any>;

const T = 'type.googleapis.com/';
const ADS = (): Json => ({ ads: {}, resourceApiVersion: 'V3' });

export interface Qualifier {
  prefix: string;
}

export function qualify(q: Qualifier, name: string): string {
  return name.includes('/') ? name : `${q.prefix}${name}`;
}

function each(list: unknown, fn: (x: Json) => void): void {
  if (Array.isArray(list)) for (const x of list) if (x && typeof x === 'object') fn(x);
}

function qualifyClusterRefs(q: Qualifier, holder: Json | undefined): void {
  if (!holder) return;
  if (typeof holder.cluster === 'string') holder.cluster = qualify(q, holder.cluster);
  each(holder.weightedClusters?.clusters, (c) => {
    if (typeof c.name === 'string') c.name = qualify(q, c.name);
  });
  each(holder.requestMirrorPolicies, (m) => {
    if (typeof m.cluster === 'string') m.cluster = qualify(q, m.cluster);
  });
}

function routeConfig(q: Qualifier, rc: Json, topLevel: boolean): void {
  if (topLevel && typeof rc.name === 'string') rc.name = qualify(q, rc.name);
  each(rc.virtualHosts, (vh) => each(vh.routes, (r) => qualifyClusterRefs(q, r.route)));
}

function sdsConfigs(q: Qualifier, node: unknown): void {
  // SdsSecretConfig sits at a handful of places in TLS contexts; find them by field name.
  if (Array.isArray(node)) return node.forEach((n) => sdsConfigs(q, n));
  if (!node || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === 'tlsCertificateSdsSecretConfigs') each(v, (s) => sdsSecret(q, s));
    else if (k === 'validationContextSdsSecretConfig' && v && typeof v === 'object') sdsSecret(q, v as Json);
    else sdsConfigs(q, v);
  }
}

function sdsSecret(q: Qualifier, s: Json): void {
  if (typeof s.name === 'string') s.name = qualify(q, s.name);
  s.sdsConfig ??= ADS();
}

function typedConfigs(q: Qualifier, node: unknown): void {
  if (Array.isArray(node)) return node.forEach((n) => typedConfigs(q, n));
  if (!node || typeof node !== 'object') return;
  const o = node as Json;
  switch (o['@type']) {
    case `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`:
      if (o.rds) {
        if (typeof o.rds.routeConfigName === 'string') o.rds.routeConfigName = qualify(q, o.rds.routeConfigName);
        o.rds.configSource ??= ADS();
      }
      if (o.routeConfig) routeConfig(q, o.routeConfig, false);
      break;
    case `${T}envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`:
      qualifyClusterRefs(q, o);
      break;
  }
  for (const v of Object.values(o)) typedConfigs(q, v);
}

/** Rewrites one resource in place. */
export function qualifyResource(q: Qualifier, r: Json): void {
  applyWellKnown(q, r);
  switch (r['@type']) {
    case `${T}envoy.config.listener.v3.Listener`:
      r.name = qualify(q, r.name ?? '');
      break;
    case `${T}envoy.config.route.v3.RouteConfiguration`:
      routeConfig(q, r, true);
      break;
    case `${T}envoy.config.cluster.v3.Cluster`:
      r.name = qualify(q, r.name ?? '');
      if (r.type === 'EDS') {
        r.edsClusterConfig ??= {};
        r.edsClusterConfig.edsConfig ??= ADS();
        if (r.edsClusterConfig.serviceName) r.edsClusterConfig.serviceName = qualify(q, r.edsClusterConfig.serviceName);
      }
      break;
    case `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`:
      r.clusterName = qualify(q, r.clusterName ?? '');
      break;
    case `${T}envoy.extensions.transport_sockets.tls.v3.Secret`:
      r.name = qualify(q, r.name ?? '');
      break;
  }
  typedConfigs(q, r);
  sdsConfigs(q, r);
}
