// Envoy resources that translators build, in proto3 JSON.
const T = 'type.googleapis.com/';

/** A filter chain whose HTTP connection manager takes routes over RDS from the agent's ADS. */
export function httpFilterChain(statPrefix: string, routeConfigName: string, match?: Record<string, unknown>): Record<string, unknown> {
  return {
    ...(match ? { filter_chain_match: match } : {}),
    filters: [
      {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
          stat_prefix: statPrefix,
          rds: { route_config_name: routeConfigName, config_source: { ads: {}, resource_api_version: 'V3' } },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } }],
        },
      },
    ],
  };
}

/** A listener on 127.0.0.1:port whose HTTP connection manager takes routes over RDS from the agent's ADS. */
export function httpListener(name: string, port: number, routeConfigName: string): Record<string, unknown> {
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [httpFilterChain(name, routeConfigName)],
  };
}
