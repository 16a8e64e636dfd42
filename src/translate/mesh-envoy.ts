// The mesh plan as Envoy resources, in proto3 JSON.
//
// Outbound: a transparent listener on the node proxy address takes the
// connections the datapath steers from local meshed pods to meshed pods on
// other nodes. A filter chain per (source identity, destination identity,
// node) carries each into an HTTP/2 CONNECT tunnel whose authority is the
// original destination, over mTLS to that node's Envoy, presenting the
// source workload's own SVID and expecting the destination's SPIFFE ID.
//
// Inbound: a TLS listener on the node's InternalIPs (the addresses the other
// nodes' clusters dial, read from the same Node object; binding those rather
// than the wildcard opens the tunnel port nowhere else, not on loopback, the
// pods' gateways or the proxy address) picks a filter chain by
// SNI (one per local identity), presents that identity's SVID, requires a
// client SVID the bundle's SPIFFE validator accepts, and terminates CONNECT
// for the local pods of that identity only, so the node's Envoy is never a
// proxy into other addresses. RBAC on the peer's SPIFFE ID and the port in
// the authority decides; admitted tunnels go on in plaintext to the pod,
// which is on this node.
import { createHash } from 'node:crypto';
import { BUNDLE_SECRET_NAME, svidSecretName } from '../identity/types.js';
import { MESH_INBOUND_PORT, MESH_OUTBOUND_PORT } from '../mesh/membership.js';
import type { MeshAllow, MeshEndpointAuthz } from '../policy/mesh-authz.js';
import { agentAccessLog } from './access-log.js';
import type { TranslateContext } from './context.js';
import { proxyListenerAddress } from './envoy-json.js';
import type { InboundIdentity, OutboundTunnel } from './mesh-plan.js';
import { portRangesRegex } from './port-regex.js';
import { markedUpstreamBind } from './proxy-mark.js';

type Json = Record<string, any>;
const T = 'type.googleapis.com/';

export const MESH_OUTBOUND_LISTENER = 'sluice-mesh-outbound';
export const MESH_INBOUND_LISTENER = 'sluice-mesh-inbound';
export const MESH_INBOUND_CLUSTER = `${MESH_INBOUND_LISTENER}/original-dst`;
/** The HTTP filter names, which per-route RBAC configs are keyed by. */
export const MESH_DENY_FILTER = 'sluice.mesh.rbac.deny';
export const MESH_ALLOW_FILTER = 'sluice.mesh.rbac.allow';

export const meshClusterName = (t: Pick<OutboundTunnel, 'source' | 'destination' | 'node'>) => `sluice-mesh|${t.source}|${t.destination}|${t.node}`;

/**
 * The SNI naming a destination identity. A SPIFFE ID is no host name, and a
 * service account name with its namespace can outgrow one; a digest fits,
 * and both sides derive it from the same ID.
 */
export function meshSni(spiffeId: string): string {
  return `${createHash('sha256').update(spiffeId).digest('hex').slice(0, 40)}.svid.sluice.mesh`;
}

const sds = (name: string) => ({ name, sds_config: { ads: {}, resource_api_version: 'V3' } });
const socketAddress = (ip: string, port: number) => ({ socket_address: { address: ip, port_value: port } });
/** How an address appears in a CONNECT authority. */
const authorityHost = (ip: string) => (ip.includes(':') ? `[${ip}]` : ip);
const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function stdoutLog(format: string): Json[] {
  return [
    {
      name: 'envoy.access_loggers.stdout',
      typed_config: { '@type': `${T}envoy.extensions.access_loggers.stream.v3.StdoutAccessLog`, log_format: { text_format_source: { inline_string: format } } },
    },
  ];
}

const ipInput = (which: 'Destination' | 'Source') => ({
  name: `${which.toLowerCase()}-ip`,
  typed_config: { '@type': `${T}envoy.extensions.matching.common_inputs.network.v3.${which}IPInput` },
});

/**
 * Which chain takes a connection: its original destination, then its source,
 * each looked up exactly (both are single pod addresses). Kept apart from the
 * chains, whose content then never depends on pods: a pod coming or going
 * changes only this matcher and Envoy keeps every chain, and the tunnels open
 * on it, as it is. (With prefix_ranges on the chains, the real-Envoy test saw
 * the churned chain's open tunnel reset in 2 of 6 runs; with this, 0 of 8.)
 */
function chainMatcher(tunnels: readonly OutboundTunnel[]): Json {
  const byDestination = new Map<string, Json>();
  for (const t of tunnels)
    for (const dst of t.destinationIps) {
      const sources = byDestination.get(dst) ?? {};
      for (const src of t.sourceIps) sources[src] = { action: { name: 'chain', typed_config: { '@type': `${T}google.protobuf.StringValue`, value: meshClusterName(t) } } };
      byDestination.set(dst, sources);
    }
  const map: Json = {};
  for (const [dst, sources] of byDestination) map[dst] = { matcher: { matcher_tree: { input: ipInput('Source'), exact_match_map: { map: sources } } } };
  return { matcher_tree: { input: ipInput('Destination'), exact_match_map: { map } } };
}

export function outboundListener(ctx: TranslateContext, tunnels: readonly OutboundTunnel[]): Json {
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name: MESH_OUTBOUND_LISTENER,
    ...proxyListenerAddress(ctx, MESH_OUTBOUND_PORT),
    transparent: true,
    listener_filters: [{ name: 'envoy.filters.listener.original_dst', typed_config: { '@type': `${T}envoy.extensions.filters.listener.original_dst.v3.OriginalDst` } }],
    // No default chain: a connection steered here that no tunnel covers is closed, never sent on in plaintext.
    filter_chain_matcher: chainMatcher(tunnels),
    filter_chains: tunnels.map((t) => ({
      name: meshClusterName(t),
      filters: [
        {
          name: 'envoy.filters.network.tcp_proxy',
          typed_config: {
            '@type': `${T}envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`,
            stat_prefix: MESH_OUTBOUND_LISTENER,
            cluster: meshClusterName(t),
            // The original destination, as the listener restored it, is what the far side delivers to.
            tunneling_config: { hostname: '%DOWNSTREAM_LOCAL_ADDRESS%' },
            access_log: [
              ...stdoutLog(
                `[%START_TIME%] ${MESH_OUTBOUND_LISTENER} %DOWNSTREAM_REMOTE_ADDRESS% -> %DOWNSTREAM_LOCAL_ADDRESS% as ${t.source} to ${t.destination} via %UPSTREAM_HOST% flags=%RESPONSE_FLAGS% bytes=%BYTES_SENT%/%BYTES_RECEIVED%\n`,
              ),
              agentAccessLog({ direction: 'egress', proxyPort: MESH_OUTBOUND_PORT, listener: MESH_OUTBOUND_LISTENER }, 'tcp'),
            ],
          },
        },
      ],
    })),
  };
}

export function outboundCluster(t: OutboundTunnel): Json {
  const [first, ...rest] = t.nodeAddresses;
  return {
    '@type': `${T}envoy.config.cluster.v3.Cluster`,
    name: meshClusterName(t),
    type: 'STATIC',
    connect_timeout: '5s',
    load_assignment: {
      cluster_name: meshClusterName(t),
      endpoints: [
        {
          lb_endpoints: [
            {
              endpoint: {
                address: socketAddress(first, MESH_INBOUND_PORT),
                // A dual-stack node: Envoy tries its addresses happy-eyeballs style.
                ...(rest.length ? { additional_addresses: rest.map((a) => ({ address: socketAddress(a, MESH_INBOUND_PORT) })) } : {}),
              },
            },
          ],
        },
      ],
    },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': `${T}envoy.extensions.upstreams.http.v3.HttpProtocolOptions`,
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': `${T}envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`,
        sni: meshSni(t.destination),
        common_tls_context: {
          alpn_protocols: ['h2'],
          tls_certificate_sds_secret_configs: [sds(svidSecretName(t.source))],
          combined_validation_context: {
            default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: t.destination } }] },
            validation_context_sds_secret_config: sds(BUNDLE_SECRET_NAME),
          },
        },
      },
    },
    // The tunnel to the other node is the proxy's own traffic: the datapath must not steer it again.
    upstream_bind_config: markedUpstreamBind(),
  };
}

const anyPeer = { authenticated: {} };

function peersOf(principals: MeshAllow['principals']): Json {
  if (principals === 'any') return anyPeer;
  return { or_ids: { ids: principals.map((p) => ({ authenticated: { principal_name: { exact: p } } })) } };
}

function portsOf(ports: MeshAllow['ports']): Json {
  if (ports === 'any') return { any: true };
  if (ports.length === 0) return { not_rule: { any: true } };
  // The authority's host part is fixed by the route; this judges only its port.
  return { header: { name: ':authority', string_match: { safe_regex: { regex: `.*:${portRangesRegex(ports)}` } } } };
}

function rbacPolicies(rules: readonly MeshAllow[], what: string): Json {
  const policies: Json = {};
  rules.forEach((r, i) => {
    policies[`${what}[${i}]`] = { permissions: [portsOf(r.ports)], principals: [peersOf(r.principals)] };
  });
  return policies;
}

const rbacPerRoute = (action: 'ALLOW' | 'DENY', policies: Json) => ({
  '@type': `${T}envoy.extensions.filters.http.rbac.v3.RBACPerRoute`,
  rbac: { rules: { action, policies } },
});

/** A pod without an entry, or not enforced, admits any peer the bundle authenticates; deny rules hold either way. */
function podRbac(authz: MeshEndpointAuthz | undefined): Json {
  const allow = !authz || !authz.enforced ? { 'not enforced': { permissions: [{ any: true }], principals: [anyPeer] } } : rbacPolicies(authz.allow, 'allow');
  return {
    [MESH_DENY_FILTER]: rbacPerRoute('DENY', rbacPolicies(authz?.deny ?? [], 'deny')),
    [MESH_ALLOW_FILTER]: rbacPerRoute('ALLOW', allow),
  };
}

function rbacFilter(name: string, action: 'ALLOW' | 'DENY'): Json {
  // Routes carry the real rules; outside them an ALLOW with no policy admits nothing.
  return { name, typed_config: { '@type': `${T}envoy.extensions.filters.http.rbac.v3.RBAC`, rules: { action, policies: {} } } };
}

export const meshRouteName = (spiffeId: string) => `${MESH_INBOUND_LISTENER}/${spiffeId}`;

/**
 * The CONNECT routes of one local identity: a virtual host per local pod
 * holding it, with that pod's RBAC. Served over RDS rather than inline, so a
 * policy change reaches tunnels already open (a listener change would leave
 * them on the old config until they drain).
 */
export function inboundRoutes(id: InboundIdentity, authz: ReadonlyMap<string, MeshEndpointAuthz>): Json {
  const virtualHosts = id.pods.map((p) => ({
    name: p.pod,
    domains: p.ips.map((ip) => `${authorityHost(ip)}:*`),
    routes: [
      {
        match: {
          connect_matcher: {},
          // Only "address:port" of this pod: the original-destination cluster connects wherever the authority says.
          headers: [{ name: ':authority', string_match: { safe_regex: { regex: `(?:${p.ips.map((ip) => reEscape(authorityHost(ip))).join('|')}):[0-9]{1,5}` } } }],
        },
        route: { cluster: MESH_INBOUND_CLUSTER, upgrade_configs: [{ upgrade_type: 'CONNECT', connect_config: {} }] },
      },
    ],
    typed_per_filter_config: podRbac(authz.get(p.pod)),
  }));
  return { '@type': `${T}envoy.config.route.v3.RouteConfiguration`, name: meshRouteName(id.spiffeId), virtual_hosts: virtualHosts };
}

function inboundChain(id: InboundIdentity): Json {
  const sni = meshSni(id.spiffeId);
  return {
    name: id.spiffeId,
    filter_chain_match: { server_names: [sni] },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': `${T}envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext`,
        require_client_certificate: true,
        common_tls_context: {
          alpn_protocols: ['h2'],
          tls_certificate_sds_secret_configs: [sds(svidSecretName(id.spiffeId))],
          validation_context_sds_secret_config: sds(BUNDLE_SECRET_NAME),
        },
      },
    },
    filters: [
      {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
          stat_prefix: MESH_INBOUND_LISTENER,
          codec_type: 'HTTP2',
          http2_protocol_options: { allow_connect: true },
          upgrade_configs: [{ upgrade_type: 'CONNECT' }],
          rds: { route_config_name: meshRouteName(id.spiffeId), config_source: { ads: {}, resource_api_version: 'V3' } },
          http_filters: [
            rbacFilter(MESH_DENY_FILTER, 'DENY'),
            rbacFilter(MESH_ALLOW_FILTER, 'ALLOW'),
            { name: 'envoy.filters.http.router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } },
          ],
          access_log: [
            ...stdoutLog(
              `[%START_TIME%] ${MESH_INBOUND_LISTENER} peer=%DOWNSTREAM_PEER_URI_SAN% from=%DOWNSTREAM_REMOTE_ADDRESS% to=%REQ(:AUTHORITY)% as=${id.spiffeId} status=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% upstream=%UPSTREAM_HOST%\n`,
            ),
            agentAccessLog({ direction: 'ingress', proxyPort: MESH_INBOUND_PORT, listener: MESH_INBOUND_LISTENER }),
          ],
          // A tunnel lives as long as its connection: say who came in as soon as it is up, not only when it ends.
          access_log_options: { flush_log_on_tunnel_successfully_established: true },
        },
      },
    ],
  };
}

export function inboundListener(nodeAddresses: readonly string[], identities: readonly InboundIdentity[]): Json {
  const [first, ...rest] = nodeAddresses;
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name: MESH_INBOUND_LISTENER,
    address: socketAddress(first, MESH_INBOUND_PORT),
    ...(rest.length ? { additional_addresses: rest.map((a) => ({ address: socketAddress(a, MESH_INBOUND_PORT) })) } : {}),
    freebind: true,
    listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': `${T}envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector` } }],
    filter_chains: identities.map(inboundChain),
  };
}

export function inboundCluster(): Json {
  return {
    '@type': `${T}envoy.config.cluster.v3.Cluster`,
    name: MESH_INBOUND_CLUSTER,
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: '5s',
    original_dst_lb_config: { use_http_header: true, http_header_name: ':authority' },
    upstream_bind_config: markedUpstreamBind(),
  };
}
