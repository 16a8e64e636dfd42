// What the policy room computes for the kernel, in plain values. The policy
// translators produce it; the reconciler in src/redirect/ encodes it into the
// BPF maps of bpf/policy.c and applies it by diff. Both sides import only this
// file, so neither depends on the other.

/** Cilium's reserved identities, so `sluice endpoint list` reads like `cilium endpoint list`. */
export const ReservedIdentity = {
  /** No identity: as a policy key, "any peer". */
  Any: 0,
  Host: 1,
  World: 2,
  Unmanaged: 3,
  Health: 4,
  Init: 5,
  RemoteNode: 6,
  KubeApiserver: 7,
  WorldIPv4: 9,
  WorldIPv6: 10,
} as const;

/** Identities of pods' label sets are allocated from here up. */
export const FIRST_CLUSTER_IDENTITY = 256;
/** Identities of CIDRs named by policies (node-local, as in Cilium) start here. */
export const FIRST_CIDR_IDENTITY = 1 << 24;

/** An address prefix and the identity of whatever holds it. */
export interface IpcacheEntry {
  /** CIDR, "10.0.0.5/32" or "fd00::5/128"; IPv4 is stored v4-mapped in the map. */
  prefix: string;
  identity: number;
}

/** A pod on this node whose traffic the TC programs police. */
export interface EndpointEntry {
  /** "ns/name", for tools and logs. */
  pod: string;
  ip: string;
  /** Small stable number naming the endpoint in policy keys. */
  endpoint: number;
  identity: number;
  /** Some policy selects this endpoint in that direction: what no entry allows is dropped. */
  ingressEnforced: boolean;
  egressEnforced: boolean;
  /**
   * The pod is in the mesh (src/mesh/membership.ts): its new TCP flows to
   * meshDestinations go into the node's Envoy rather than onto the wire.
   */
  meshed?: boolean;
}

/**
 * mesh (egress only): allowed if the kernel steers the flow into the node
 * Envoy's mTLS tunnel (a meshed endpoint's TCP to an address in
 * meshDestinations), dropped otherwise. What a rule with authentication
 * required admits on egress: whether a flow can be authenticated depends on
 * its destination address, which only the datapath sees per flow.
 */
export type Verdict = 'allow' | 'deny' | 'redirect' | 'mesh';

/**
 * One policy map entry. The kernel looks up (endpoint, direction, identity,
 * proto, port) and (endpoint, direction, 0, proto, port) by longest prefix;
 * a deny from either lookup wins. Within one identity the translator makes the
 * longest match carry the final verdict (a deny covering a port keeps a
 * narrower allow under it from winning).
 */
export interface PolicyEntry {
  endpoint: number;
  direction: 'ingress' | 'egress';
  /** Remote identity; 0 matches any. */
  identity: number;
  /** IP protocol number (6 TCP, 17 UDP, 132 SCTP); 0 matches any, and then port must be wildcard. */
  proto: number;
  /** Destination port (the endpoint's port for ingress, the peer's for egress). */
  port: number;
  /** How many leading bits of port must match: 16 exact, 0 any; ranges become several prefixes. */
  portPrefixLen: number;
  verdict: Verdict;
  /** For redirect: the name of the Envoy listener that enforces the L7 rules; the wiring maps it to a proxy port. */
  listener?: string;
  /** For redirect, once the wiring has resolved the listener. */
  proxyPort?: number;
}

/** A meshed pod on another node, and the port of this node's Envoy that takes meshed pods' flows to it. */
export interface MeshDestination {
  /** "10.0.1.5/32" or "fd00::5/128". */
  prefix: string;
  proxyPort: number;
}

export interface PolicyDatapathState {
  ipcache: IpcacheEntry[];
  endpoints: EndpointEntry[];
  entries: PolicyEntry[];
  /** Absent: none, nothing is steered for the mesh. */
  meshDestinations?: MeshDestination[];
}
