// The objects of the CEC benches: CEC i with its listener (on a proxy port the
// agent gives), route, EDS cluster and backend Service with one EndpointSlice,
// PER_FILE CECs to a YAML file.
import { writeYaml } from './lib.mjs';

export const PER_FILE = 50;
const T = 'type.googleapis.com/';
export const TYPES = ['envoy.config.listener.v3.Listener', 'envoy.config.route.v3.RouteConfiguration', 'envoy.config.cluster.v3.Cluster', 'envoy.config.endpoint.v3.ClusterLoadAssignment'];

export function objects(i, timeout = '2s') {
  const svc = `svc-${i}`;
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: svc, namespace: 'bench' }, spec: { clusterIP: `10.97.${i >> 8}.${i & 255}`, ports: [{ name: 'http', port: 80 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${svc}-1`, namespace: 'bench', labels: { 'kubernetes.io/service-name': svc } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
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

export function writeFile(dir, f, n, tweak) {
  const docs = [];
  for (let i = f * PER_FILE; i < Math.min(n, (f + 1) * PER_FILE); i++) docs.push(...objects(i, tweak?.(i)));
  writeYaml(dir, `f${f}.yaml`, docs);
}

