import { httpListener } from '../../src/translate/envoy-json.js';
// Envoy resources for tests, written the way users write them: proto3 JSON with @type.
const T = 'type.googleapis.com/';

/** Tests build listeners the way the translators do. */
export function listener(name: string, port: number, routeName: string): object {
  return httpListener({ nodeName: '', proxyPort: () => port }, name, port, routeName);
}

export function route(name: string, cluster: string | Record<string, number>): object {
  const action =
    typeof cluster === 'string'
      ? { cluster }
      : { weighted_clusters: { clusters: Object.entries(cluster).map(([n, weight]) => ({ name: n, weight })) } };
  return {
    '@type': `${T}envoy.config.route.v3.RouteConfiguration`,
    name,
    virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: action }] }],
  };
}

export function edsCluster(name: string): object {
  return {
    '@type': `${T}envoy.config.cluster.v3.Cluster`,
    name,
    type: 'EDS',
    connect_timeout: '1s',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
  };
}

export function endpoints(clusterName: string, ports: number[]): object {
  return {
    '@type': `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`,
    cluster_name: clusterName,
    endpoints: [{ locality: { zone: 'local' }, load_balancing_weight: 1, lb_endpoints: ports.map((p) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: p } } } })) }],
  };
}
