// Service backends as Envoy endpoints: the EDS side shared by CiliumEnvoyConfig
// backendServices and HTTPRoute backendRefs.
import type { Model } from '../model/model.js';
import type { EndpointSlice, Service, ServicePort } from '../model/objects.js';

const T = 'type.googleapis.com/';
export const CLA_TYPE = `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`;
export const CLUSTER_TYPE = `${T}envoy.config.cluster.v3.Cluster`;

/** Cilium's names for a Service's backend clusters: "ns/name", and "ns/name:port" for one port. */
export function backendClusterName(namespace: string, service: string, port?: number): string {
  return port === undefined ? `${namespace}/${service}` : `${namespace}/${service}:${port}`;
}

export interface BackendAddress {
  ip: string;
  port: number;
}

/**
 * Ready backends of one Service port: endpoints that are ready and not
 * terminating, at the target port their EndpointSlice names for that port;
 * with `onNode`, only the endpoints that slice places on that node.
 */
export function readyBackends(model: Model, svc: Service, port: ServicePort, onNode?: string): BackendAddress[] {
  return readyBackendsIn(model.endpointSlices(svc.metadata.namespace ?? 'default', svc.metadata.name), port, onNode);
}

/** readyBackends over slices the caller found, for callers that keep their own index of them. */
export function readyBackendsIn(slices: Iterable<EndpointSlice>, port: ServicePort, onNode?: string): BackendAddress[] {
  const out: BackendAddress[] = [];
  const seen = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    const target = slicePort(slice, port);
    if (target === undefined) continue;
    for (const ep of slice.endpoints ?? []) {
      if (ep.conditions?.ready === false || ep.conditions?.terminating === true) continue;
      if (onNode !== undefined && ep.nodeName !== onNode) continue;
      for (const ip of ep.addresses) {
        const key = `${ip}:${target}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ ip, port: target });
      }
    }
  }
  return out.sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
}

function slicePort(slice: EndpointSlice, port: ServicePort): number | undefined {
  const ports = slice.ports ?? [];
  // EndpointSlice ports carry the Service port's name; a single unnamed port matches any.
  const match = ports.find((p) => (p.name ?? '') === (port.name ?? '') && (p.protocol ?? 'TCP') === (port.protocol ?? 'TCP'));
  if (match?.port !== undefined) return match.port;
  if (typeof port.targetPort === 'number') return port.targetPort;
  if (port.targetPort === undefined) return port.port;
  return undefined;
}

/** A ClusterLoadAssignment in proto3 JSON. */
export function loadAssignment(clusterName: string, backends: BackendAddress[]): Record<string, unknown> {
  return {
    '@type': CLA_TYPE,
    cluster_name: clusterName,
    endpoints: backends.length
      ? [
          {
            lb_endpoints: backends.map((b) => ({
              endpoint: { address: { socket_address: { address: b.ip, port_value: b.port } } },
            })),
          },
        ]
      : [],
  };
}

/** An EDS cluster fed by the agent's ADS, in proto3 JSON. */
export function edsCluster(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    '@type': CLUSTER_TYPE,
    name,
    type: 'EDS',
    connect_timeout: '5s',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
    ...extra,
  };
}

/** Finds a Service port by number or name. */
export function findServicePort(svc: Service, port: number | string | undefined): ServicePort | undefined {
  const ports = svc.spec.ports ?? [];
  if (port === undefined) return ports.length === 1 ? ports[0] : undefined;
  return ports.find((p) => p.port === Number(port) || (typeof port === 'string' && p.name === port));
}
