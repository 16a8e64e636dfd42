// Our Flow as Hubble's flow.Flow, field for field, plus what Hubble's own
// parsers derive and its CLI prints: the monitor event type (the CLI names a
// flow's type from it), the Summary line, and is_reply for L7 responses.
import {
  DropReason,
  dropReasonFromJSON,
  Flow as PbFlow,
  FlowType,
  IPVersion,
  L7FlowType,
  SocketTranslationPoint,
  TraceObservationPoint,
  TrafficDirection,
  AuthType,
  verdictFromJSON,
  type Endpoint,
  type Layer4,
} from '../gen/hubble/flow/flow.js';
import type { Timestamp } from '../gen/hubble/google/protobuf/timestamp.js';
import type { Flow, FlowEndpoint, TcpFlags } from './flow.js';

/** Cilium's monitor message types (pkg/monitor/api), which Hubble's event_type carries. */
export const MessageType = { Drop: 1, Trace: 4, PolicyVerdict: 5, TraceSock: 7, AccessLog: 129 } as const;
/** Cilium's trace observation points as event sub-types (pkg/monitor/api: TraceToLxc...). */
const TraceSubType = { ToEndpoint: 0, ToProxy: 1, ToStack: 3 } as const;

export function dropReasonCode(name: string | undefined): number {
  const code = name ? dropReasonFromJSON(name) : DropReason.DROP_REASON_UNKNOWN;
  return code === DropReason.UNRECOGNIZED ? DropReason.DROP_REASON_UNKNOWN : code;
}

/**
 * The event a Cilium datapath or proxy would have reported for this flow: L7
 * from the access log, socket-LB translations as sock traces, drops as drop
 * notifications with the reason as sub-type, the rest as traces.
 */
export function eventTypeOf(f: Flow): { type: number; subType: number } {
  if (f.type === 'L7') return { type: MessageType.AccessLog, subType: 0 };
  if (f.type === 'SOCK') return { type: MessageType.TraceSock, subType: SocketTranslationPoint.SOCK_XLATE_POINT_POST_DIRECTION_FWD };
  if (f.verdict === 'DROPPED') return { type: MessageType.Drop, subType: dropReasonCode(f.dropReason) };
  if (f.verdict === 'REDIRECTED') return { type: MessageType.Trace, subType: TraceSubType.ToProxy };
  return { type: MessageType.Trace, subType: f.trafficDirection === 'EGRESS' ? TraceSubType.ToStack : TraceSubType.ToEndpoint };
}

const TCP_FLAG_ORDER: (keyof TcpFlags)[] = ['SYN', 'ACK', 'RST', 'FIN', 'PSH'];

/** Whether the flow goes against its connection's direction, where the producer did not say. */
export function isReplyOf(f: Flow): boolean | undefined {
  if (f.isReply !== undefined) return f.isReply;
  if (f.l7?.type === 'RESPONSE') return true;
  if (f.l7?.type === 'REQUEST') return false;
  // A handshake says which way it goes: SYN opens (original direction), SYN-ACK answers.
  const flags = f.l4?.protocol === 'TCP' ? f.l4.flags : undefined;
  if (flags?.SYN) return !!flags.ACK;
  return undefined;
}

/** The one-line summary Hubble's parsers write and `hubble observe` prints last. */
export function summaryOf(f: Flow): string {
  const http = f.l7?.http;
  if (http) {
    const proto = http.protocol || 'HTTP/1.1';
    const request = `${http.method} ${http.url}`;
    if (f.l7!.type === 'RESPONSE') return `${proto} ${http.code} ${Number((f.l7!.latencyNs ?? 0n) / 1_000_000n)}ms (${request})`;
    return `${proto} ${request}`;
  }
  if (f.l4?.protocol === 'TCP') {
    const flags = TCP_FLAG_ORDER.filter((k) => f.l4!.flags?.[k]);
    return flags.length ? `TCP Flags: ${flags.join(', ')}` : 'TCP';
  }
  return f.l4?.protocol ?? '';
}

export function timestampOf(ns: bigint): Timestamp {
  return { seconds: (ns / 1_000_000_000n).toString(), nanos: Number(ns % 1_000_000_000n) };
}

function endpoint(e: FlowEndpoint | undefined): Endpoint | undefined {
  if (!e) return undefined;
  return { ID: 0, identity: e.identity, clusterName: '', namespace: e.namespace ?? '', labels: e.labels ?? [], podName: e.podName ?? '', workloads: e.workloads ?? [] };
}

function layer4(f: Flow): Layer4 | undefined {
  const l4 = f.l4;
  if (!l4) return undefined;
  const ports = { sourcePort: l4.sourcePort ?? 0, destinationPort: l4.destinationPort ?? 0 };
  switch (l4.protocol) {
    case 'TCP': {
      const fl = l4.flags ?? {};
      return { TCP: { ...ports, flags: { SYN: !!fl.SYN, ACK: !!fl.ACK, FIN: !!fl.FIN, RST: !!fl.RST, PSH: !!fl.PSH, URG: false, ECE: false, CWR: false, NS: false } } };
    }
    case 'UDP':
      return { UDP: ports };
    case 'SCTP':
      return { SCTP: { ...ports, chunkType: 0 } };
    case 'ICMPv4':
      return { ICMPv4: { type: 0, code: 0 } };
    case 'ICMPv6':
      return { ICMPv6: { type: 0, code: 0 } };
  }
}

const traceObservationPoint = (sub: number): TraceObservationPoint =>
  sub === TraceSubType.ToProxy ? TraceObservationPoint.TO_PROXY : sub === TraceSubType.ToStack ? TraceObservationPoint.TO_STACK : TraceObservationPoint.TO_ENDPOINT;

export function toProtoFlow(f: Flow): PbFlow {
  const ev = eventTypeOf(f);
  const count = f.count ?? 1;
  return PbFlow.fromPartial({
    time: timestampOf(f.timeNs),
    verdict: verdictFromJSON(f.verdict),
    dropReasonDesc: f.verdict === 'DROPPED' ? dropReasonCode(f.dropReason) : DropReason.DROP_REASON_UNKNOWN,
    dropReason: f.verdict === 'DROPPED' ? dropReasonCode(f.dropReason) : 0,
    IP: f.ip ? { source: f.ip.source, destination: f.ip.destination, ipVersion: f.ip.ipVersion === 'IPv6' ? IPVersion.IPv6 : IPVersion.IPv4 } : undefined,
    l4: layer4(f),
    source: endpoint(f.source),
    destination: endpoint(f.destination),
    Type: FlowType[f.type],
    nodeName: f.nodeName,
    l7: f.l7
      ? {
          type: L7FlowType[f.l7.type],
          latencyNs: (f.l7.latencyNs ?? 0n).toString(),
          http: f.l7.http ? { code: f.l7.http.code, method: f.l7.http.method, url: f.l7.http.url, protocol: f.l7.http.protocol || 'HTTP/1.1', headers: f.l7.http.headers ?? [] } : undefined,
        }
      : undefined,
    isReply: isReplyOf(f),
    reply: isReplyOf(f) ?? false,
    eventType: ev,
    destinationService: f.destinationService,
    trafficDirection: TrafficDirection[f.trafficDirection],
    traceObservationPoint: ev.type === MessageType.Trace ? traceObservationPoint(ev.subType) : TraceObservationPoint.UNKNOWN_POINT,
    sockXlatePoint: f.type === 'SOCK' ? SocketTranslationPoint.SOCK_XLATE_POINT_POST_DIRECTION_FWD : SocketTranslationPoint.SOCK_XLATE_POINT_UNKNOWN,
    proxyPort: f.proxyPort ?? 0,
    // Cilium's mutual auth is SPIFFE too: the CLI then prints "Auth: SPIRE" after the summary.
    authType: f.sourceSpiffeId ? AuthType.SPIRE : AuthType.DISABLED,
    Summary: summaryOf(f),
    aggregate:
      count > 1
        ? {
            ingressFlowCount: f.trafficDirection === 'INGRESS' ? count : 0,
            egressFlowCount: f.trafficDirection === 'EGRESS' ? count : 0,
            unknownDirectionFlowCount: f.trafficDirection === 'TRAFFIC_DIRECTION_UNKNOWN' ? count : 0,
          }
        : undefined,
  });
}
