// Envoy resources that translators build, in proto3 JSON.
import type { TranslateContext } from './context.js';

const T = 'type.googleapis.com/';

/**
 * Where a node-local listener listens: the proxy address of each family on one
 * port. freebind lets Envoy bind before the agent has put the address on the node.
 */
export function proxyListenerAddress(ctx: TranslateContext, port: number): Record<string, unknown> {
  const { v4, v6 } = ctx.proxyAddresses ?? { v4: '127.0.0.1', v6: '::1' };
  return {
    address: { socketAddress: { address: v4, portValue: port } },
    additionalAddresses: [{ address: { socketAddress: { address: v6, portValue: port } } }],
    freebind: true,
  };
}

/** A node-local listener whose HTTP connection manager takes routes over RDS from the agent's ADS. */
export function httpListener(ctx: TranslateContext, name: string, port: number, routeConfigName: string): Record<string, unknown> {
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name,
    ...proxyListenerAddress(ctx, port),
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
              stat_prefix: name,
              rds: { route_config_name: routeConfigName, config_source: { ads: {}, resource_api_version: 'V3' } },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } }],
            },
          },
        ],
      },
    ],
  };
}
