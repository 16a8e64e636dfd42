import { typeUrlOf } from '../proto/registry.js';
import { Cluster_DiscoveryType } from '../gen/envoy/config/cluster/v3/cluster.js';

export const TypeUrl = {
  Listener: typeUrlOf('envoy.config.listener.v3.Listener'),
  RouteConfiguration: typeUrlOf('envoy.config.route.v3.RouteConfiguration'),
  Cluster: typeUrlOf('envoy.config.cluster.v3.Cluster'),
  ClusterLoadAssignment: typeUrlOf('envoy.config.endpoint.v3.ClusterLoadAssignment'),
  Secret: typeUrlOf('envoy.extensions.transport_sockets.tls.v3.Secret'),
} as const;

export type XdsTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

export const SERVED_TYPES: readonly XdsTypeUrl[] = Object.values(TypeUrl);

/**
 * Make-before-break: a cluster exists before endpoints fill it, endpoints
 * before listeners route to it, and so on. Removals go the other way round.
 */
export const APPLY_ORDER: readonly XdsTypeUrl[] = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
  TypeUrl.Secret,
];
export const REMOVE_ORDER: readonly XdsTypeUrl[] = [...APPLY_ORDER].reverse();

/**
 * Types whose resources point at resources of types earlier in APPLY_ORDER
 * (listeners and routes name clusters), so they must not reach a client ahead
 * of a change of those. Endpoints and secrets are not among them: a client gets
 * them only by a name it asked for, that is for something it already holds, so
 * they can never arrive too early; and Envoy withholds a CDS ACK until the
 * endpoints and secrets of the clusters it warms have come, so holding those
 * back behind a pending CDS change would never end.
 */
export function waitsForEarlierTypes(typeUrl: XdsTypeUrl): boolean {
  return typeUrl === TypeUrl.Listener || typeUrl === TypeUrl.RouteConfiguration;
}

/** Types whose state-of-the-world responses carry every resource, so omission means removal. */
export function isFullStateType(typeUrl: string): boolean {
  return typeUrl === TypeUrl.Listener || typeUrl === TypeUrl.Cluster;
}

export function isServedType(typeUrl: string): typeUrl is XdsTypeUrl {
  return (SERVED_TYPES as readonly string[]).includes(typeUrl);
}

/** The name Envoy subscribes by: `name`, except a ClusterLoadAssignment's `cluster_name`. */
export function resourceNameOf(typeUrl: XdsTypeUrl, message: { name?: string; clusterName?: string }): string {
  return (typeUrl === TypeUrl.ClusterLoadAssignment ? message.clusterName : message.name) ?? '';
}

/** The ClusterLoadAssignment an EDS cluster reads, or undefined for other clusters. */
export function edsNameOfCluster(cluster: { name: string; type?: number; edsClusterConfig?: { serviceName: string } }): string | undefined {
  if (cluster.type !== Cluster_DiscoveryType.EDS) return undefined;
  return cluster.edsClusterConfig?.serviceName || cluster.name;
}
