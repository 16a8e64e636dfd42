// `hubble observe`'s flags as a GetFlowsRequest, with the CLI's meaning: a
// symmetric flag (--pod, --ip, --label, --port, --identity, --namespace)
// makes two filters, one with it on the source side and one with it on the
// destination side, so either end matches; one-sided flags (--from-*, --to-*)
// and the rest go into both.
import { dropReasonFromJSON, FlowFilter, Verdict, verdictFromJSON, type EventTypeFilter } from '../gen/hubble/flow/flow.js';
import type { GetFlowsRequest } from '../gen/hubble/observer/observer.js';

export interface ObserveFlags {
  pod?: string[];
  fromPod?: string[];
  toPod?: string[];
  namespace?: string[];
  fromNamespace?: string[];
  toNamespace?: string[];
  label?: string[];
  fromLabel?: string[];
  toLabel?: string[];
  ip?: string[];
  fromIp?: string[];
  toIp?: string[];
  port?: string[];
  fromPort?: string[];
  toPort?: string[];
  identity?: string[];
  fromIdentity?: string[];
  toIdentity?: string[];
  service?: string[];
  fromService?: string[];
  toService?: string[];
  verdict?: string[];
  dropReasonDesc?: string[];
  protocol?: string[];
  httpStatus?: string[];
  httpMethod?: string[];
  httpPath?: string[];
  httpUrl?: string[];
  type?: string[];
  nodeName?: string[];
  trafficDirection?: string[];
  last?: string;
  first?: string;
  all?: boolean;
  since?: string;
  until?: string;
  follow?: boolean;
}

const RESERVED_IDENTITIES: Record<string, number> = { host: 1, world: 2, unmanaged: 3, health: 4, init: 5, 'remote-node': 6, 'kube-apiserver': 7, ingress: 8, 'world-ipv4': 9, 'world-ipv6': 10 };
const EVENT_TYPES: Record<string, number> = { drop: 1, debug: 2, capture: 3, trace: 4, 'policy-verdict': 5, 'trace-sock': 7, l7: 129, agent: 130 };
const TRACE_POINTS = ['to-endpoint', 'to-proxy', 'to-host', 'to-stack', 'to-overlay', 'from-endpoint', 'from-proxy', 'from-host', 'from-stack', 'from-overlay', 'from-network', 'to-network'];

function identityOf(v: string): number {
  if (v in RESERVED_IDENTITIES) return RESERVED_IDENTITIES[v];
  if (/^\d+$/.test(v)) return Number(v);
  throw new Error(`invalid security identity ${JSON.stringify(v)}, expected one of ${Object.keys(RESERVED_IDENTITIES).join(', ')} or a number`);
}

function eventType(v: string): EventTypeFilter {
  const [t, sub] = v.split(':', 2);
  const type = EVENT_TYPES[t] ?? (/^\d+$/.test(t) ? Number(t) : NaN);
  if (Number.isNaN(type)) throw new Error(`unknown event type ${JSON.stringify(t)}: one of ${Object.keys(EVENT_TYPES).join(', ')} or a number`);
  if (sub === undefined) return { type, matchSubType: false, subType: 0 };
  const point = type === EVENT_TYPES.trace ? TRACE_POINTS.indexOf(sub) : -1;
  const subType = point >= 0 ? point : /^\d+$/.test(sub) ? Number(sub) : NaN;
  if (Number.isNaN(subType)) throw new Error(`unknown event sub-type ${JSON.stringify(sub)}`);
  return { type, matchSubType: true, subType };
}

/** Go-style durations ("30s", "5m", "1h30m") back from now, or an absolute time. */
export function parseTime(v: string, nowMs = Date.now()): { seconds: string; nanos: number } {
  let ms: number;
  if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v)) {
    const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6 };
    let back = 0;
    for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) back += Number(m[1]) * unit[m[2]];
    ms = nowMs - back;
  } else {
    ms = Date.parse(v);
    if (Number.isNaN(ms)) throw new Error(`cannot parse time ${JSON.stringify(v)}: give a duration back from now (30s, 5m, 1h30m) or an RFC 3339 time`);
  }
  return { seconds: String(Math.floor(ms / 1000)), nanos: Math.round((ms % 1000) * 1e6) };
}

/** The namespace prefix on each pod (or service) filter, as hubble applies --namespace. */
function withNamespaces(names: string[], namespaces: string[]): string[] {
  if (!namespaces.length || !names.length) return names;
  return names.flatMap((n) => (n.includes('/') ? [n] : namespaces.map((ns) => `${ns}/${n}`)));
}

function applyNamespaces(ff: FlowFilter, ns: string[], side: 'source' | 'destination'): void {
  const pods = side === 'source' ? 'sourcePod' : 'destinationPod';
  const svcs = side === 'source' ? 'sourceService' : 'destinationService';
  if (!ff[pods].length && !ff[svcs].length) ff[pods] = [''];
  ff[pods] = withNamespaces(ff[pods], ns);
  ff[svcs] = withNamespaces(ff[svcs], ns);
}

export function observeFilters(o: ObserveFlags): FlowFilter[] {
  const left = FlowFilter.fromPartial({});
  const right = FlowFilter.fromPartial({});
  const add = (f: FlowFilter, k: keyof FlowFilter, vs: unknown[] | undefined) => {
    if (vs?.length) (f[k] as unknown[]) = [...(f[k] as unknown[]), ...vs];
  };
  /** Into the source side of one filter and the destination side of the other. */
  const split = (src: keyof FlowFilter, dst: keyof FlowFilter, vs: unknown[] | undefined) => {
    add(left, src, vs);
    add(right, dst, vs);
  };
  const both = (k: keyof FlowFilter, vs: unknown[] | undefined) => split(k, k, vs);
  /** A flag family: either side (two filters), --from-* and --to-* (both filters). */
  const sides = (src: keyof FlowFilter, dst: keyof FlowFilter, either: unknown[] | undefined, from: unknown[] | undefined, to: unknown[] | undefined) => {
    split(src, dst, either);
    both(src, from);
    both(dst, to);
  };
  sides('sourcePod', 'destinationPod', o.pod, o.fromPod, o.toPod);
  sides('sourceLabel', 'destinationLabel', o.label, o.fromLabel, o.toLabel);
  sides('sourceIp', 'destinationIp', o.ip, o.fromIp, o.toIp);
  sides('sourcePort', 'destinationPort', o.port, o.fromPort, o.toPort);
  sides('sourceIdentity', 'destinationIdentity', o.identity?.map(identityOf), o.fromIdentity?.map(identityOf), o.toIdentity?.map(identityOf));
  sides('sourceService', 'destinationService', o.service, o.fromService, o.toService);
  both(
    'verdict',
    o.verdict?.map((v) => {
      const code = verdictFromJSON(v);
      if (code <= Verdict.VERDICT_UNKNOWN) throw new Error(`invalid --verdict value ${JSON.stringify(v)}`);
      return code;
    }),
  );
  both('protocol', o.protocol);
  both('httpStatusCode', o.httpStatus);
  both('httpMethod', o.httpMethod);
  both('httpPath', o.httpPath);
  both('httpUrl', o.httpUrl);
  both('eventType', o.type?.map(eventType));
  both('nodeName', o.nodeName);
  both(
    'trafficDirection',
    o.trafficDirection?.map((d) => {
      if (d !== 'ingress' && d !== 'egress') throw new Error(`invalid --traffic-direction ${JSON.stringify(d)}: ingress or egress`);
      return d === 'ingress' ? 1 : 2;
    }),
  );
  both(
    'dropReasonDesc',
    o.dropReasonDesc?.map((d) => {
      const code = dropReasonFromJSON(d);
      if (code < 0) throw new Error(`invalid --drop-reason-desc ${JSON.stringify(d)}`);
      return code;
    }),
  );
  if (o.toNamespace?.length) for (const f of [left, right]) applyNamespaces(f, o.toNamespace, 'destination');
  if (o.fromNamespace?.length) for (const f of [left, right]) applyNamespaces(f, o.fromNamespace, 'source');
  if (o.namespace?.length) {
    applyNamespaces(left, o.namespace, 'source');
    applyNamespaces(right, o.namespace, 'destination');
  }
  const empty = JSON.stringify(FlowFilter.toJSON(FlowFilter.fromPartial({})));
  const l = JSON.stringify(FlowFilter.toJSON(left));
  const r = JSON.stringify(FlowFilter.toJSON(right));
  if (l === empty && r === empty) return [];
  return l === r ? [left] : [left, right];
}

const U64_MAX = '18446744073709551615';
const DEFAULT_LAST = '20';

/** The flags with the negated ones (flag, value) moved into a flags set of their own, for the blacklist. */
function splitNegated(o: ObserveFlags, negated: readonly [keyof ObserveFlags, string][]): { white: ObserveFlags; black: ObserveFlags } {
  const white: Record<string, unknown> = { ...o };
  const black: Record<string, string[]> = {};
  for (const [k, v] of negated) {
    const list = [...((white[k] as string[] | undefined) ?? [])];
    const i = list.indexOf(v);
    if (i >= 0) list.splice(i, 1);
    white[k] = list;
    (black[k] ??= []).push(v);
  }
  return { white: white as ObserveFlags, black: black as ObserveFlags };
}

export function observeRequest(o: ObserveFlags, negated: readonly [keyof ObserveFlags, string][] = [], nowMs = Date.now()): GetFlowsRequest {
  const { white, black } = splitNegated(o, negated);
  if (o.first && o.follow) throw new Error('cannot set both --first and --follow');
  if (o.first && (o.last || o.all)) throw new Error('cannot set --first with --last or --all');
  const since = o.since ? parseTime(o.since, nowMs) : undefined;
  const until = o.until && !o.follow ? parseTime(o.until, nowMs) : undefined;
  let number = o.first ?? o.last ?? '0';
  if (!/^\d+$/.test(number)) throw new Error(`--last and --first take a count, got ${JSON.stringify(number)}`);
  if (!since && !until && !o.first) {
    if (o.all) number = U64_MAX;
    else if (number === '0' && !o.follow) number = DEFAULT_LAST;
  }
  return {
    number,
    first: !!o.first,
    follow: !!o.follow,
    whitelist: observeFilters(white),
    blacklist: observeFilters(black),
    since,
    until,
    fieldMask: undefined,
    experimental: undefined,
    extensions: undefined,
  };
}
