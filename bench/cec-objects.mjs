// The objects of the CEC benches: for each i a Service, its EndpointSlice and a
// CiliumEnvoyConfig (a listener on its own proxy port, a route, an EDS cluster
// for the Service).
import { writeYaml } from './lib.mjs';

export const PER_FILE = 50;
const T = 'type.googleapis.com/';
export const TYPES = ['envoy.config.listener.v3.Listener', 'envoy.config.route.v3.RouteConfiguration', 'envoy.config.cluster.v3.Cluster', 'envoy.config.endpoint.v3.ClusterLoadAssignment'];

/** In cluster mode the API server allocates ClusterIPs and refuses loopback endpoints (nothing dials them here). */
export function objects(i, timeout = '2s', cluster = false) {
  const svc = `svc-${i}`;
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: svc, namespace: 'bench' }, spec: { ...(cluster ? {} : { clusterIP: `10.97.${i >> 8}.${i & 255}` }), ports: [{ name: 'http', port: 80 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${svc}-1`, namespace: 'bench', labels: { 'kubernetes.io/service-name': svc } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: [cluster ? `10.244.${i >> 8}.${i & 255}` : '127.0.0.1'], conditions: { ready: true } }],
    },
    {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumEnvoyConfig',
      metadata: { name: `cec-${i}`, namespace: 'bench' },
      spec: {
        services: [{ name: svc }],
        backendServices: [{ name: svc }],
        resources: [
          {
            '@type': `${T}envoy.config.listener.v3.Listener`,
            name: 'l',
            filter_chains: [
              {
                filters: [
                  {
                    name: 'hcm',
                    typed_config: {
                      '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
                      stat_prefix: `cec-${i}`,
                      rds: { route_config_name: 'r' },
                      http_filters: [{ name: 'router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } }],
                    },
                  },
                ],
              },
            ],
          },
          {
            '@type': `${T}envoy.config.route.v3.RouteConfiguration`,
            name: 'r',
            virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: `bench/${svc}:80`, timeout: timeout } }] }],
          },
          { '@type': `${T}envoy.config.cluster.v3.Cluster`, name: `bench/${svc}:80`, type: 'EDS', connect_timeout: '1s' },
        ],
      },
    },
  ];
}

/** Rewrites the file that holds object `i`; `tweak(j)` gives object j's route timeout. Objects from `cecs` on have no CEC. */
export function writeFile(dir, i, n, tweak, cecs = n) {
  const f = Math.floor(i / PER_FILE);
  const docs = [];
  for (let j = f * PER_FILE; j < Math.min(n, (f + 1) * PER_FILE); j++) docs.push(...objects(j, tweak?.(j)).slice(0, j < cecs ? 3 : 2));
  writeYaml(dir, `f${f}.yaml`, docs);
}

/** N Services with their EndpointSlices, the first `cecs` of them with a CEC, in files of PER_FILE. */
export function writeFiles(dir, n, cecs = n) {
  for (let i = 0; i < n; i += PER_FILE) writeFile(dir, i, n, undefined, cecs);
}
