// Decodes the datapath's flow event records (struct sluice_event in
// bpf/events.h) into Flows. Pure: the reader (bpf-event-reader.ts) feeds it
// what the ring buffers hold.
import { addrString } from '../redirect/policy-maps.js';
import type { Flow, FlowVerdict, TcpFlags } from './flow.js';

export const EVENT_RECORD_SIZE = 104;

export const EV = { flow: 1, drop: 2, tcpEnd: 3, sockXlate: 4 } as const;
const EV_F_REPLY = 0x1;
const EV_F_V4 = 0x2;
const EV_F_PROXY = 0x4;

/** policy.c's VERDICT_* */
const VERDICT_ALLOW = 1;
const VERDICT_REDIRECT = 3;

/**
 * Hubble's DropReason names for policy.c's DROP_* codes (the order of
 * DROP_REASONS in src/redirect/policy-maps.ts). A deny rule is POLICY_DENY, as
 * Cilium reports its deny policies, apart from POLICY_DENIED (no rule allows).
 * A redirect with no listener to hand the flow to is the failed socket lookup
 * Cilium reports for a missing proxy. A flow that a rule admits only over
 * mTLS but that cannot go into the mesh tunnel is Cilium's AUTH_REQUIRED.
 */
export const DROP_REASON_NAMES = ['POLICY_DENIED', 'POLICY_DENY', 'SOCKET_LOOKUP_FAILED', 'SOCKET_ASSIGN_FAILED', 'PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL', 'AUTH_REQUIRED'] as const;

const PROTOCOLS: Record<number, NonNullable<Flow['l4']>['protocol']> = { 1: 'ICMPv4', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };

export interface DecodeContext {
  nodeName: string;
  /** Added to the record's CLOCK_MONOTONIC time to give nanoseconds since the epoch. */
  monoToEpochNs: bigint;
  /** Names the Service behind a rev-NAT id; SOCK flows carry serviceId either way. */
  serviceOf?(revNatId: number): { namespace: string; name: string } | undefined;
}

/** CLOCK_MONOTONIC (what bpf_ktime_get_ns and process.hrtime read) to the epoch, as of now. */
export function monoToEpochNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
}

function tcpFlags(bits: number): TcpFlags | undefined {
  const f: TcpFlags = {};
  if (bits & 1) f.SYN = true;
  if (bits & 2) f.ACK = true;
  if (bits & 4) f.FIN = true;
  if (bits & 8) f.RST = true;
  return bits ? f : undefined;
}

/** An address in its canonical text (IPv6 compressed); '' for all zeroes, an address the hook did not know. */
function ipOf(rec: Buffer, at: number): string {
  const a = rec.subarray(at, at + 16);
  if (a.every((b) => b === 0)) return '';
  const text = addrString(a);
  return text.includes(':') ? new URL(`http://[${text}]/`).hostname.slice(1, -1) : text;
}

/** One record as a Flow; undefined for a record of a type this version does not know. */
export function decodeEvent(rec: Buffer, ctx: DecodeContext): Flow | undefined {
  if (rec.length < EVENT_RECORD_SIZE) return undefined;
  const type = rec.readUInt8(8);
  const verdictCode = rec.readUInt8(9);
  const reason = rec.readUInt8(10);
  const direction = rec.readUInt8(11);
  const proto = rec.readUInt8(12);
  const flags = rec.readUInt8(13);
  const v4 = (flags & EV_F_V4) !== 0;
  const protocol = PROTOCOLS[proto];
  const ports = proto === 6 || proto === 17 || proto === 132;
  const l4: Flow['l4'] = protocol
    ? {
        protocol,
        ...(ports && type !== EV.sockXlate ? { sourcePort: rec.readUInt16BE(16) } : {}),
        ...(ports ? { destinationPort: rec.readUInt16BE(18) } : {}),
        ...(proto === 6 && tcpFlags(rec.readUInt8(14)) ? { flags: tcpFlags(rec.readUInt8(14)) } : {}),
      }
    : undefined;
  const base = {
    timeNs: rec.readBigUInt64LE(0) + ctx.monoToEpochNs,
    nodeName: ctx.nodeName,
    ip: { source: ipOf(rec, 32), destination: ipOf(rec, 48), ipVersion: v4 ? ('IPv4' as const) : ('IPv6' as const) },
    ...(l4 ? { l4 } : {}),
    trafficDirection: direction === 0 ? ('INGRESS' as const) : direction === 1 ? ('EGRESS' as const) : ('TRAFFIC_DIRECTION_UNKNOWN' as const),
  };
  const proxyPort = rec.readUInt16LE(20);
  if (type === EV.sockXlate) {
    const revNatId = rec.readUInt16LE(22);
    const service = ctx.serviceOf?.(revNatId);
    return {
      ...base,
      verdict: 'TRANSLATED',
      type: 'SOCK',
      sockXlatePoint: 'SOCK_XLATE_POINT_POST_DIRECTION_FWD',
      translatedFrom: { ip: ipOf(rec, 64), port: rec.readUInt16BE(80) },
      serviceId: revNatId,
      ...(service ? { destinationService: service } : {}),
      ...(flags & EV_F_PROXY ? { proxyPort } : {}),
      socketCookie: rec.readBigUInt64LE(88),
      cgroupId: rec.readBigUInt64LE(96),
    };
  }
  if (type !== EV.flow && type !== EV.drop && type !== EV.tcpEnd) return undefined;
  let verdict: FlowVerdict = verdictCode === VERDICT_REDIRECT ? 'REDIRECTED' : verdictCode === VERDICT_ALLOW ? 'FORWARDED' : 'DROPPED';
  if (type === EV.drop) verdict = 'DROPPED';
  return {
    ...base,
    verdict,
    ...(type === EV.drop ? { dropReason: DROP_REASON_NAMES[reason] ?? 'DROP_REASON_UNKNOWN' } : {}),
    type: 'L3_L4',
    source: { identity: rec.readUInt32LE(24) },
    destination: { identity: rec.readUInt32LE(28) },
    ...(flags & EV_F_REPLY ? { isReply: true } : {}),
    ...(verdict === 'REDIRECTED' ? { proxyPort } : {}),
    interface: { index: rec.readUInt32LE(84) },
  };
}

/** A batch from the addon's ring reader (u32 length, u32 ring index, record, padding to 8) as Flows, in order. */
export function decodeBatch(batch: Buffer, ctx: DecodeContext): Flow[] {
  const out: Flow[] = [];
  for (let o = 0; o + 8 <= batch.length; ) {
    const len = batch.readUInt32LE(o);
    const flow = decodeEvent(batch.subarray(o + 8, o + 8 + len), ctx);
    if (flow) out.push(flow);
    o += 8 + ((len + 7) & ~7);
  }
  return out;
}
