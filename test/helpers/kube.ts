// Kubernetes objects for tests, as users write them in YAML.
export function service(name: string, ports: { port: number; name?: string; targetPort?: number | string }[], opts: { namespace?: string; clusterIP?: string } = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: opts.namespace ?? 'default' },
    spec: { clusterIP: opts.clusterIP ?? '10.96.0.10', ports: ports.map((p) => ({ protocol: 'TCP', ...p })) },
  };
}

export interface SliceEndpoint {
  ip: string;
  ready?: boolean;
  terminating?: boolean;
}

export function endpointSlice(svc: string, portName: string | undefined, port: number, endpoints: SliceEndpoint[], opts: { namespace?: string; name?: string } = {}): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: opts.name ?? `${svc}-abc`, namespace: opts.namespace ?? 'default', labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: portName, port, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true, terminating: e.terminating ?? false } })),
  };
}

export function cec(name: string, spec: object, namespace = 'default'): object {
  return { apiVersion: 'cilium.io/v2', kind: 'CiliumEnvoyConfig', metadata: { name, namespace }, spec };
}

export function ccec(name: string, spec: object): object {
  return { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideEnvoyConfig', metadata: { name }, spec };
}

export function httpRoute(name: string, spec: object, namespace = 'default'): object {
  return { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace, creationTimestamp: '2026-01-01T00:00:00Z' }, spec };
}

const T = 'type.googleapis.com/';

/** The CEC resources of Cilium's traffic-splitting example shape: listener, weighted route, EDS clusters. */
export function splitResources(weights: Record<string, number>, opts: { listener?: object } = {}): object[] {
  return [
    {
      '@type': `${T}envoy.config.listener.v3.Listener`,
      name: 'listener',
      ...opts.listener,
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
                stat_prefix: 'split',
                rds: { route_config_name: 'route' },
                http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } }],
              },
            },
          ],
        },
      ],
    },
    {
      '@type': `${T}envoy.config.route.v3.RouteConfiguration`,
      name: 'route',
      virtual_hosts: [
        {
          name: 'split',
          domains: ['*'],
          routes: [{ match: { prefix: '/' }, route: { weighted_clusters: { clusters: Object.entries(weights).map(([name, weight]) => ({ name, weight })) } } }],
        },
      ],
    },
    ...Object.keys(weights).map((name) => ({ '@type': `${T}envoy.config.cluster.v3.Cluster`, name, type: 'EDS', connect_timeout: '2s', lb_policy: 'ROUND_ROBIN' })),
  ];
}
