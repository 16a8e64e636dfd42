// The observe room's flow: one event the datapath or Envoy reported, enriched
// with what the model knows of its endpoints. Shaped after Hubble's
// flow.Flow (field names and enum spellings match, so the Observer API maps
// it one to one) but plain data, so producers don't depend on generated code.

/** Hubble's flow.Verdict names. */
export type FlowVerdict = 'FORWARDED' | 'DROPPED' | 'ERROR' | 'AUDIT' | 'REDIRECTED' | 'TRACED' | 'TRANSLATED';

/** Hubble's flow.FlowType names: L3_L4 from the kernel, L7 from Envoy, SOCK for socket-LB translations. */
export type FlowType = 'L3_L4' | 'L7' | 'SOCK';

export type TrafficDirection = 'INGRESS' | 'EGRESS' | 'TRAFFIC_DIRECTION_UNKNOWN';

export interface FlowEndpoint {
  /** Cilium's numeric identity (src/policy/datapath-state.ts: reserved ones below 256). */
  identity: number;
  namespace?: string;
  podName?: string;
  /** Cilium-style "k8s:key=value" labels, sorted. */
  labels?: string[];
  /** The owning workload, e.g. { kind: 'Deployment', name: 'web' }; best effort. */
  workloads?: { kind: string; name: string }[];
}

export interface TcpFlags {
  SYN?: boolean;
  ACK?: boolean;
  FIN?: boolean;
  RST?: boolean;
  PSH?: boolean;
}

export interface HttpRecord {
  code: number;
  method: string;
  url: string;
  protocol?: string;
  headers?: { key: string; value: string }[];
}

export interface Flow {
  /** Nanoseconds since the epoch (bigint: ns timestamps exceed 2^53). */
  timeNs: bigint;
  verdict: FlowVerdict;
  /** Hubble's DropReason name (e.g. 'POLICY_DENIED') when verdict is DROPPED. */
  dropReason?: string;
  type: FlowType;
  nodeName: string;
  ip?: { source: string; destination: string; ipVersion: 'IPv4' | 'IPv6' };
  l4?: { protocol: 'TCP' | 'UDP' | 'ICMPv4' | 'ICMPv6' | 'SCTP'; sourcePort?: number; destinationPort?: number; flags?: TcpFlags };
  source?: FlowEndpoint;
  destination?: FlowEndpoint;
  trafficDirection: TrafficDirection;
  isReply?: boolean;
  /** The Service a socket-LB translation picked a backend of: "ns/name". */
  destinationService?: { namespace: string; name: string };
  /** For L7 (Envoy) flows. */
  l7?: { type: 'REQUEST' | 'RESPONSE' | 'SAMPLE'; latencyNs?: bigint; http?: HttpRecord };
  /** The peer's SPIFFE ID where mTLS carried the flow. */
  sourceSpiffeId?: string;
  /** Envoy's proxy port for redirected flows. */
  proxyPort?: number;
  /** Which rule part matched an L3/L4 verdict, in Hubble's metric spelling ('l3-only', 'l3-l4', 'l4-only', 'all'); 'none' when absent. */
  policyMatchType?: 'none' | 'l3-only' | 'l3-l4' | 'l4-only' | 'all' | 'l3-proto' | 'proto-only';
  /** How many events this one stands for when the producer aggregated (sampling); 1 if absent. */
  count?: number;
  /** The interface the kernel saw the packet on (L3_L4 flows). */
  interface?: { index: number; name?: string };
  /** SOCK flows: the socket (bpf_get_socket_cookie) and the cgroup v2 id of the task that made the translation, to find its pod. */
  socketCookie?: bigint;
  cgroupId?: bigint;
  /** SOCK flows: one event after the translation, so the destination is the backend and this is the frontend the socket asked for. */
  sockXlatePoint?: 'SOCK_XLATE_POINT_POST_DIRECTION_FWD';
  translatedFrom?: { ip: string; port: number };
  /** SOCK flows: the datapath's id of the Service frontend (rev-NAT id), for whoever names destinationService. */
  serviceId?: number;
}
