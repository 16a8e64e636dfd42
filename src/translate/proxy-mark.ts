// The mark the node's Envoy puts on its own upstream sockets (SO_MARK) of
// policy listeners. The proxy opens these connections on behalf of a flow the
// policy datapath already steered into it and the RBAC filter admitted, so the
// TC programs must let packets carrying it pass instead of enforcing (or
// steering) them a second time: without that the proxy's connection would be
// judged as coming from the host and a redirect would loop back into Envoy.
//
// 0x1ce0 avoids the bits kube-proxy (0x4000, 0x8000), Calico (0xffff0000) and
// Weave (0x20000, 0x40000) use. The datapath compares skb->mark under
// PROXY_UPSTREAM_MARK_MASK, so a CNI's own high bits on the packet do not hide it.
export const PROXY_UPSTREAM_MARK = 0x1ce0;
export const PROXY_UPSTREAM_MARK_MASK = 0xffff;

/** Linux's SOL_SOCKET and SO_MARK, as Envoy's SocketOption wants them. */
export const SOL_SOCKET = 1;
export const SO_MARK = 36;

const markOption = { level: SOL_SOCKET, name: SO_MARK, int_value: PROXY_UPSTREAM_MARK, state: 'STATE_PREBIND' };

/** A cluster's upstream_bind_config whose sockets, of either family, carry PROXY_UPSTREAM_MARK. */
export function markedUpstreamBind(): Record<string, unknown> {
  return {
    source_address: { address: '0.0.0.0', port_value: 0 },
    extra_source_addresses: [{ address: { address: '::', port_value: 0 }, socket_options: { socket_options: [markOption] } }],
    socket_options: [markOption],
  };
}
