// Hubble's FlowFilter semantics over our flows, as its server applies them: a
// flow passes when it matches any whitelist filter (or there is none) and no
// blacklist filter; within one filter every field given must match, and a
// field's values are alternatives. Malformed values (a bad regex, CIDR, port
// or status) are refused up front, as Hubble refuses the request.
import { IPVersion, iPVersionToJSON, trafficDirectionToJSON, verdictToJSON, type FlowFilter, type TCPFlags } from '../gen/hubble/flow/flow.js';
import { cidrContains, parseCidr, type Cidr } from '../policy/cidr.js';
import type { Flow, FlowEndpoint } from './flow.js';
import { dropReasonCode, eventTypeOf, isReplyOf, MessageType } from './flow-proto.js';
import { compileLabelSelector } from './label-selector.js';

export class FilterError extends Error {
  override name = 'FilterError';
}

type Pred = (f: Flow) => boolean;

/** "ns/prefix" or "prefix" (namespace "default"), as Hubble reads pod and service filters. */
function namespacedName(names: string[], get: (f: Flow) => { ns?: string; name?: string } | undefined): Pred {
  const parsed = names.map((n) => {
    if (n === '') throw new FilterError('invalid filter, name must not be empty');
    const parts = n.split('/');
    return parts.length > 1 ? { ns: parts[0], prefix: parts[1] } : { ns: 'default', prefix: parts[0] };
  });
  return (f) => {
    const v = get(f);
    if (!v || (!v.ns && !v.name)) return false;
    return parsed.some((p) => (p.prefix === '' || (v.name ?? '').startsWith(p.prefix)) && (p.ns === '' || p.ns === v.ns));
  };
}

const pod = (e: (f: Flow) => FlowEndpoint | undefined) => (f: Flow) => {
  const ep = e(f);
  return ep && { ns: ep.namespace, name: ep.podName };
};
const src = (f: Flow) => f.source;
const dst = (f: Flow) => f.destination;

function ips(values: string[], get: (f: Flow) => string | undefined): Pred {
  const cidrs: Cidr[] = values.map((v) => {
    const c = parseCidr(v);
    if (!c) throw new FilterError(`invalid IP ${v.includes('/') ? 'prefix' : 'address'} ${JSON.stringify(v)} in filter`);
    return c;
  });
  return (f) => {
    const ip = get(f);
    const addr = ip ? parseCidr(ip) : undefined;
    return !!addr && cidrs.some((c) => cidrContains(c, addr));
  };
}

function ports(values: string[], get: (f: Flow) => number | undefined): Pred {
  const want = values.map((p) => {
    if (!/^\d+$/.test(p) || Number(p) > 65535) throw new FilterError(`invalid port ${JSON.stringify(p)}`);
    return Number(p);
  });
  // ICMP has no ports: only TCP, UDP and SCTP flows can match.
  return (f) => !!f.l4 && ['TCP', 'UDP', 'SCTP'].includes(f.l4.protocol) && want.includes(get(f) ?? 0);
}

function labels(selectors: string[], get: (f: Flow) => readonly string[]): Pred {
  const ms = selectors.map((s) => {
    try {
      return compileLabelSelector(s);
    } catch (e) {
      throw new FilterError((e as Error).message);
    }
  });
  return (f) => {
    const ls = get(f);
    return ms.some((m) => m(ls));
  };
}

function regexes(values: string[], what: string): RegExp[] {
  return values.map((v) => {
    try {
      return new RegExp(v);
    } catch (e) {
      throw new FilterError(`invalid http ${what} filter ${JSON.stringify(v)}: ${(e as Error).message}`);
    }
  });
}

function statusCodes(values: string[]): Pred {
  const full: string[] = [];
  const prefix: string[] = [];
  for (const s of values) {
    if (/^[1-5][0-9]{2}$/.test(s)) full.push(s);
    else if (/^[1-5][0-9]?\+$/.test(s)) prefix.push(s.slice(0, -1));
    else throw new FilterError(`invalid http status code filter: invalid status code prefix ${JSON.stringify(s)}`);
  }
  return (f) => {
    const code = f.l7?.http?.code;
    if (!code) return false;
    const text = String(code).padStart(3, '0');
    return full.includes(text) || prefix.some((p) => text.startsWith(p));
  };
}

function pathOf(url: string): string | undefined {
  try {
    return new URL(url, 'http://placeholder').pathname;
  } catch {
    return undefined;
  }
}

function protocols(values: string[]): Pred {
  const l4: Record<string, (f: Flow) => boolean> = {
    icmp: (f) => f.l4?.protocol === 'ICMPv4' || f.l4?.protocol === 'ICMPv6',
    icmpv4: (f) => f.l4?.protocol === 'ICMPv4',
    icmpv6: (f) => f.l4?.protocol === 'ICMPv6',
    tcp: (f) => f.l4?.protocol === 'TCP',
    udp: (f) => f.l4?.protocol === 'UDP',
    sctp: (f) => f.l4?.protocol === 'SCTP',
    vrrp: () => false,
    igmp: () => false,
    http: (f) => !!f.l7?.http,
    dns: () => false,
  };
  const ps = values.map((v) => {
    const p = l4[v.toLowerCase()];
    if (!p) throw new FilterError(`invalid protocol filter: unknown protocol ${JSON.stringify(v)}`);
    return p;
  });
  return (f) => ps.some((p) => p(f));
}

function tcpFlags(wanted: TCPFlags[]): Pred {
  return (f) => {
    const have = f.l4?.protocol === 'TCP' ? f.l4.flags : undefined;
    if (!have) return false;
    return wanted.some((w) => (['SYN', 'ACK', 'FIN', 'RST', 'PSH'] as const).every((k) => !w[k] || have[k]) && !w.URG && !w.ECE && !w.CWR && !w.NS);
  };
}

/** "cluster/node" or "node" with '*' wildcards; a flow's bare node name is in cluster "default". */
function nodeNames(patterns: string[]): Pred {
  const res = patterns.map((p) => {
    if (p === '') throw new FilterError('invalid node name filter: empty pattern');
    const parts = p.split('/');
    if (parts.length > 2) throw new FilterError(`invalid node name filter ${JSON.stringify(p)}: too many slashes`);
    const [cluster, node] = parts.length === 2 ? parts : ['', parts[0]];
    const glob = (g: string) => (g === '' ? '[^/]*' : g.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*'));
    return new RegExp(`^${glob(cluster)}/${glob(node)}$`);
  });
  return (f) => !!f.nodeName && res.some((r) => r.test(f.nodeName.includes('/') ? f.nodeName : `default/${f.nodeName}`));
}

const httpOnly = (ff: FlowFilter) => ff.eventType.length === 0 || ff.eventType.some((t) => t.type === MessageType.AccessLog);

/** One filter: every field it sets must match. */
export function compileFilter(ff: FlowFilter): Pred {
  const ps: Pred[] = [];
  const none: Pred = () => false;
  if (ff.experimental?.celExpression.length) throw new FilterError('CEL expression filters are not supported by sluice');
  // Fields of data our flows never carry match nothing, as in Hubble when a flow lacks them.
  for (const field of ['uuid', 'sourceIpXlated', 'sourceFqdn', 'destinationFqdn', 'sourceService', 'dnsQuery', 'traceId', 'ipTraceId', 'interface', 'sourceClusterName', 'destinationClusterName'] as const)
    if (ff[field].length) ps.push(none);
  if (ff.sourceIp.length) ps.push(ips(ff.sourceIp, (f) => f.ip?.source));
  if (ff.destinationIp.length) ps.push(ips(ff.destinationIp, (f) => f.ip?.destination));
  if (ff.sourcePod.length) ps.push(namespacedName(ff.sourcePod, pod(src)));
  if (ff.destinationPod.length) ps.push(namespacedName(ff.destinationPod, pod(dst)));
  if (ff.destinationService.length) ps.push(namespacedName(ff.destinationService, (f) => f.destinationService && { ns: f.destinationService.namespace, name: f.destinationService.name }));
  if (ff.sourceLabel.length) ps.push(labels(ff.sourceLabel, (f) => f.source?.labels ?? []));
  if (ff.destinationLabel.length) ps.push(labels(ff.destinationLabel, (f) => f.destination?.labels ?? []));
  if (ff.nodeLabels.length) ps.push(labels(ff.nodeLabels, () => []));
  for (const [ws, get] of [
    [ff.sourceWorkload, src],
    [ff.destinationWorkload, dst],
  ] as const)
    if (ws.length) ps.push((f) => (get(f)?.workloads ?? []).some((w) => ws.some((x) => (!x.name || x.name === w.name) && (!x.kind || x.kind === w.kind))));
  if (ff.trafficDirection.length) {
    const want = ff.trafficDirection.map(trafficDirectionToJSON);
    ps.push((f) => want.includes(f.trafficDirection));
  }
  if (ff.verdict.length) {
    const want = ff.verdict.map(verdictToJSON);
    ps.push((f) => want.includes(f.verdict));
  }
  if (ff.dropReasonDesc.length) ps.push((f) => f.verdict === 'DROPPED' && ff.dropReasonDesc.includes(dropReasonCode(f.dropReason)));
  if (ff.eventType.length)
    ps.push((f) => {
      const ev = eventTypeOf(f);
      return ff.eventType.some((t) => (t.type === 0 || t.type === ev.type) && (!t.matchSubType || t.subType === ev.subType));
    });
  const http = ff.httpStatusCode.length || ff.httpMethod.length || ff.httpPath.length || ff.httpUrl.length || ff.httpHeader.length;
  if (http && !httpOnly(ff)) throw new FilterError("filtering by http fields requires the event type filter to only match 'l7' events");
  if (ff.httpStatusCode.length) ps.push(statusCodes(ff.httpStatusCode));
  if (ff.httpMethod.length) ps.push((f) => !!f.l7?.http?.method && ff.httpMethod.some((m) => m.toLowerCase() === f.l7!.http!.method.toLowerCase()));
  if (ff.httpPath.length) {
    const res = regexes(ff.httpPath, 'path');
    ps.push((f) => {
      const path = f.l7?.http?.url ? pathOf(f.l7.http.url) : undefined;
      return path !== undefined && res.some((r) => r.test(path));
    });
  }
  if (ff.httpUrl.length) {
    const res = regexes(ff.httpUrl, 'url');
    ps.push((f) => !!f.l7?.http?.url && res.some((r) => r.test(f.l7!.http!.url)));
  }
  if (ff.httpHeader.length) ps.push((f) => (f.l7?.http?.headers ?? []).some((h) => ff.httpHeader.some((w) => w.key === h.key && w.value === h.value)));
  if (ff.protocol.length) ps.push(protocols(ff.protocol));
  if (ff.sourcePort.length) ps.push(ports(ff.sourcePort, (f) => f.l4?.sourcePort));
  if (ff.destinationPort.length) ps.push(ports(ff.destinationPort, (f) => f.l4?.destinationPort));
  if (ff.reply.length)
    ps.push((f) => {
      const r = isReplyOf(f);
      if (r === undefined && f.verdict !== 'DROPPED') return false;
      return ff.reply.includes(r ?? false);
    });
  if (ff.sourceIdentity.length) ps.push((f) => !!f.source && ff.sourceIdentity.includes(f.source.identity));
  if (ff.destinationIdentity.length) ps.push((f) => !!f.destination && ff.destinationIdentity.includes(f.destination.identity));
  if (ff.tcpFlags.length) ps.push(tcpFlags(ff.tcpFlags));
  if (ff.nodeName.length) ps.push(nodeNames(ff.nodeName));
  if (ff.ipVersion.length) {
    const want = ff.ipVersion.map(iPVersionToJSON);
    ps.push((f) => want.includes(f.ip?.ipVersion ?? iPVersionToJSON(IPVersion.IP_NOT_USED)));
  }
  // sluice sees no IPsec/WireGuard: every flow is unencrypted on the IP layer.
  if (ff.encrypted.length) ps.push(() => ff.encrypted.includes(false));
  return (f) => ps.every((p) => p(f));
}

/** The whitelist minus the blacklist, as GetFlows applies them. */
export function compileFilters(whitelist: readonly FlowFilter[], blacklist: readonly FlowFilter[]): Pred {
  const wl = whitelist.map(compileFilter);
  const bl = blacklist.map(compileFilter);
  return (f) => (wl.length === 0 || wl.some((p) => p(f))) && !bl.some((p) => p(f));
}
