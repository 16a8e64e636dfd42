// How `sluice observe` prints what the Observer API streams, the way `hubble
// observe` prints it: the compact one-liner per flow, and protojson with
// proto field names for -o json, so scripts written for hubble's output
// read ours.
import { readFileSync } from 'node:fs';
import { createFileRegistry, fromBinary, toJson, type FileRegistry, type JsonValue } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { dropReasonToJSON, L7FlowType, TrafficDirection, Verdict, verdictToJSON, type Flow as PbFlow } from '../gen/hubble/flow/flow.js';
import type { Timestamp } from '../gen/hubble/google/protobuf/timestamp.js';
import { GetFlowsResponse } from '../gen/hubble/observer/observer.js';
import { MessageType } from './flow-proto.js';

let registry: FileRegistry | undefined;

export function responseJson(r: GetFlowsResponse): JsonValue {
  registry ??= createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(new URL('../gen/hubble/descriptors.pb', import.meta.url))));
  const desc = registry.getMessage('observer.GetFlowsResponse')!;
  return toJson(desc, fromBinary(desc, GetFlowsResponse.encode(r).finish()), { useProtoFieldName: true, registry });
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, w = 2, c = '0') => String(n).padStart(w, c);

/** Go's StampMilli ("Jan _2 15:04:05.000") in local time: hubble's default. */
export function stampMilli(t: Timestamp | undefined): string {
  if (!t) return 'N/A';
  const d = new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6));
  return `${MONTHS[d.getMonth()]} ${pad(d.getDate(), 2, ' ')} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

const RESERVED: Record<number, string> = { 0: 'unknown', 1: 'host', 2: 'world', 3: 'unmanaged', 4: 'health', 5: 'init', 6: 'remote-node', 7: 'kube-apiserver', 8: 'ingress', 9: 'world-ipv4', 10: 'world-ipv6' };
const identity = (id: number) => `(${RESERVED[id] ?? `ID:${id}`})`;

const TRACE_POINTS: Record<number, string> = { 0: 'to-endpoint', 1: 'to-proxy', 2: 'to-host', 3: 'to-stack', 4: 'to-overlay', 5: 'from-endpoint', 6: 'from-proxy', 7: 'from-host', 8: 'from-stack', 9: 'from-overlay', 10: 'from-network', 11: 'to-network' };
const SOCK_POINTS: Record<number, string> = { 1: 'pre-xlate-fwd', 2: 'post-xlate-fwd', 3: 'pre-xlate-rev', 4: 'post-xlate-rev' };

function ports(f: PbFlow): [string, string] {
  const p = f.l4?.TCP ?? f.l4?.UDP ?? f.l4?.SCTP;
  return p ? [String(p.sourcePort), String(p.destinationPort)] : ['', ''];
}

function host(ip: string, port: string, ns: string, pod: string, svc: string): string {
  const name = pod ? [ns, pod].filter(Boolean).join('/') : svc ? [ns, svc].filter(Boolean).join('/') : ip;
  if (!port || port === '0') return name;
  return name.includes(':') ? `[${name}]:${port}` : `${name}:${port}`;
}

function flowType(f: PbFlow, dropDesc: (code: number) => string): string {
  if (f.l7) return `${f.l7.http ? 'http' : 'l7'}-${L7FlowType[f.l7.type]?.toLowerCase() ?? 'unknown'}`;
  const ev = f.eventType;
  switch (ev?.type) {
    case MessageType.Trace:
      return TRACE_POINTS[ev.subType] ?? String(ev.subType);
    case MessageType.Drop:
      return dropDesc(ev.subType);
    case MessageType.PolicyVerdict:
      return `policy-verdict:none ${TrafficDirection[f.trafficDirection]}`;
    case MessageType.TraceSock:
      return SOCK_POINTS[ev.subType] ?? 'SOCK_XLATE_POINT_UNKNOWN';
  }
  return 'UNKNOWN';
}

/** Cilium's drop reason texts for the reasons sluice reports; others print by their enum name. */
const DROP_TEXT: Record<number, string> = { 133: 'Policy denied', 181: 'Policy denied by denylist', 189: 'Authentication required' };

/** One line per response, as `hubble observe` prints it (compact output, no colour). */
export function compactLine(r: GetFlowsResponse): string {
  if (r.lostEvents) {
    const l = r.lostEvents;
    return `${stampMilli(r.time)} EVENTS LOST: ${l.source} CPU(${l.cpu ?? 0}) ${l.numEventsLost}`;
  }
  const f = r.flow;
  if (!f) return '';
  const [sp, dp] = ports(f);
  let src = host(f.IP?.source ?? '', sp, f.sourceService?.namespace || f.source?.namespace || '', f.source?.podName ?? '', f.sourceService?.name ?? '');
  let dst = host(f.IP?.destination ?? '', dp, f.destinationService?.namespace || f.destination?.namespace || '', f.destination?.podName ?? '', f.destinationService?.name ?? '');
  let srcId = identity(f.source?.identity ?? 0);
  let dstId = identity(f.destination?.identity ?? 0);
  let arrow = '<>';
  if (f.isReply === false) arrow = '->';
  else if (f.isReply === true) {
    [src, dst, srcId, dstId] = [dst, src, dstId, srcId];
    arrow = '<-';
  }
  const summary = f.Summary + (f.authType ? '; Auth: SPIRE' : '');
  const verdict = f.verdict === Verdict.VERDICT_UNKNOWN ? 'VERDICT_UNKNOWN' : verdictToJSON(f.verdict);
  return `${stampMilli(f.time)}: ${src} ${srcId} ${arrow} ${dst} ${dstId} ${flowType(f, (c) => DROP_TEXT[c] ?? dropReasonToJSON(c))} ${verdict} (${summary})`;
}
