// Flow metrics under Hubble's names and labels, so dashboards and alerts
// written for Hubble read sluice's /metrics unchanged. Every labelled series
// set is capped: a busy cluster with many workloads must not grow the
// agent's memory or the scrape without bound, so label sets past the cap
// fold into one "other" series and the folding itself is counted.
import { Counter, Histogram, type Registry } from 'prom-client';
import { RESERVED } from '../policy/identities.js';
import type { Flow, FlowEndpoint } from './flow.js';

/** What the metrics (and the service map) read flows from; the agent's flow ring satisfies it. */
export interface FlowSource {
  recent(): Iterable<Flow>;
  subscribe(fn: (f: Flow) => void): () => void;
}

/** Hubble's context options: "workload-name|namespace" takes the first non-empty of those per flow. */
export interface FlowMetricsOptions {
  sourceContext?: string;
  destinationContext?: string;
  /** Hubble's labelsContext names, e.g. ['source_namespace', 'destination_workload']. */
  labelsContext?: string[];
  /** Distinct label sets per metric before folding into "other" (default 1000). */
  maxSeriesPerMetric?: number;
}

export const OTHER = 'other';
// prometheus.DefBuckets, which Hubble's HTTP duration histogram uses.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const RESERVED_NAMES = new Map(RESERVED.map((r) => [r.id, r.labels[0].key]));

/** "world" for identity 2 and so on; undefined for a pod's or a CIDR's identity. */
export function reservedName(identity: number): string | undefined {
  return RESERVED_NAMES.get(identity);
}

type ContextFn = (ep: FlowEndpoint | undefined, ip: string | undefined) => string;

function workload(ep: FlowEndpoint | undefined): string {
  return ep?.workloads?.[0]?.name ?? '';
}

function labelValue(ep: FlowEndpoint | undefined, key: string): string {
  const hit = ep?.labels?.find((l) => l.startsWith(`k8s:${key}=`));
  return hit ? hit.slice(key.length + 5) : '';
}

const CONTEXTS: Record<string, ContextFn> = {
  namespace: (ep) => ep?.namespace ?? '',
  pod: (ep) => (ep?.podName ? `${ep.namespace ?? ''}/${ep.podName}` : ''),
  'pod-name': (ep) => ep?.podName ?? '',
  'workload-name': workload,
  workload: (ep) => (workload(ep) ? `${ep?.namespace ?? ''}/${workload(ep)}` : ''),
  app: (ep) => labelValue(ep, 'app.kubernetes.io/name') || labelValue(ep, 'k8s-app') || labelValue(ep, 'app'),
  ip: (_ep, ip) => ip ?? '',
  identity: (ep) => (ep?.labels ?? []).join(','),
  'reserved-identity': (ep) => {
    const name = ep ? reservedName(ep.identity) : undefined;
    return name ? `reserved:${name}` : '';
  },
};

function parseContext(spec: string | undefined, option: string): ContextFn[] {
  if (!spec) return [];
  return spec.split('|').map((name) => {
    const fn = CONTEXTS[name.trim()];
    if (!fn) throw new Error(`${option}: unknown context "${name}" (known: ${Object.keys(CONTEXTS).join(', ')})`);
    return fn;
  });
}

interface Endpoints {
  src?: FlowEndpoint;
  dst?: FlowEndpoint;
  srcIp?: string;
  dstIp?: string;
  direction: string;
}

const LABELS_CONTEXT: Record<string, (e: Endpoints) => string> = {
  source_ip: (e) => e.srcIp ?? '',
  source_namespace: (e) => e.src?.namespace ?? '',
  source_pod: (e) => e.src?.podName ?? '',
  source_workload: (e) => workload(e.src),
  source_app: (e) => CONTEXTS.app(e.src, undefined),
  destination_ip: (e) => e.dstIp ?? '',
  destination_namespace: (e) => e.dst?.namespace ?? '',
  destination_pod: (e) => e.dst?.podName ?? '',
  destination_workload: (e) => workload(e.dst),
  destination_app: (e) => CONTEXTS.app(e.dst, undefined),
  traffic_direction: (e) => e.direction,
};

/** The label names and values a flow's endpoints add to every metric, as Hubble's ContextOptions do. */
class FlowContext {
  readonly names: string[] = [];
  private readonly src: ContextFn[];
  private readonly dst: ContextFn[];
  private readonly extra: [string, (e: Endpoints) => string][];

  constructor(o: FlowMetricsOptions) {
    this.src = parseContext(o.sourceContext, 'sourceContext');
    this.dst = parseContext(o.destinationContext, 'destinationContext');
    this.extra = (o.labelsContext ?? []).map((n) => {
      const fn = LABELS_CONTEXT[n];
      if (!fn) throw new Error(`labelsContext: unknown label "${n}" (known: ${Object.keys(LABELS_CONTEXT).join(', ')})`);
      return [n, fn];
    });
    if (this.src.length) this.names.push('source');
    if (this.dst.length) this.names.push('destination');
    for (const [n] of this.extra) this.names.push(n);
  }

  values(e: Endpoints): Record<string, string> {
    const out: Record<string, string> = {};
    const first = (fns: ContextFn[], ep: FlowEndpoint | undefined, ip: string | undefined) => {
      for (const fn of fns) {
        const v = fn(ep, ip);
        if (v) return v;
      }
      return '';
    };
    if (this.src.length) out.source = first(this.src, e.src, e.srcIp);
    if (this.dst.length) out.destination = first(this.dst, e.dst, e.dstIp);
    for (const [n, fn] of this.extra) out[n] = fn(e);
    return out;
  }
}

function endpointsOf(f: Flow, swap: boolean): Endpoints {
  const direction = f.trafficDirection === 'TRAFFIC_DIRECTION_UNKNOWN' ? 'unknown' : f.trafficDirection.toLowerCase();
  const e = { src: f.source, dst: f.destination, srcIp: f.ip?.source, dstIp: f.ip?.destination, direction };
  return swap ? { src: e.dst, dst: e.src, srcIp: e.dstIp, dstIp: e.srcIp, direction } : e;
}

/** Hubble's v1.FlowProtocol: the L7 protocol if any, else the L4 one. */
export function flowProtocol(f: Flow): string {
  if (f.type === 'L7') return f.l7?.http ? 'HTTP' : 'Unknown L7';
  if (f.type === 'SOCK') return 'Unknown flow';
  return f.l4?.protocol ?? 'Unknown L4';
}

/**
 * Hubble's flow metric type/subtype. Our datapath reports L3/L4 events as
 * policy verdicts or drops; socket-LB translations are Cilium's trace-sock
 * (message type 7), which Hubble's flow metric files under "Unknown".
 */
function typeAndSubtype(f: Flow): [string, string] {
  if (f.type === 'L7') return ['L7', f.l7?.http ? 'HTTP' : ''];
  if (f.type === 'SOCK') return ['Unknown', '7'];
  return f.verdict === 'DROPPED' ? ['Drop', ''] : ['PolicyVerdict', ''];
}

type Labels = Record<string, string>;

/** Admits label sets up to a cap; past it every new set becomes the one all-"other" set. */
class SeriesCap {
  private readonly seen = new Set<string>();
  constructor(
    private readonly metric: string,
    private readonly cap: number,
    private readonly folded: Counter,
  ) {}

  admit(labels: Labels, n: number): Labels {
    const key = Object.values(labels).join('\u0000');
    if (this.seen.has(key)) return labels;
    if (this.seen.size < this.cap) {
      this.seen.add(key);
      return labels;
    }
    this.folded.inc({ metric: this.metric }, n);
    return Object.fromEntries(Object.keys(labels).map((k) => [k, OTHER]));
  }
}

export class FlowMetrics {
  private readonly ctx: FlowContext;
  private readonly folded: Counter;
  private readonly lost: Counter;
  private readonly lostSeen = new Map<string, number>();
  private readonly flows: Counter;
  private readonly drops: Counter;
  private readonly tcp: Counter;
  private readonly http: Counter;
  private readonly duration: Histogram;
  private readonly policy: Counter;
  private readonly caps = new Map<object, SeriesCap>();

  constructor(registry: Registry, options: FlowMetricsOptions = {}) {
    this.ctx = new FlowContext(options);
    const cap = options.maxSeriesPerMetric ?? 1000;
    const registers = [registry];
    const c = this.ctx.names;
    this.folded = new Counter({ name: 'sluice_flow_metric_folded_total', help: 'Flows counted in the "other" series because the metric reached its cap of distinct label sets', labelNames: ['metric'], registers });
    this.lost = new Counter({ name: 'hubble_lost_events_total', help: 'Flow events lost before the agent read them', labelNames: ['source'], registers });
    this.flows = new Counter({ name: 'hubble_flows_processed_total', help: 'Total number of flows processed', labelNames: ['protocol', 'type', 'subtype', 'verdict', ...c], registers });
    this.drops = new Counter({ name: 'hubble_drop_total', help: 'Number of drops', labelNames: ['reason', 'protocol', ...c], registers });
    this.tcp = new Counter({ name: 'hubble_tcp_flags_total', help: 'TCP flag occurrences', labelNames: ['flag', 'family', ...c], registers });
    this.http = new Counter({ name: 'hubble_http_requests_total', help: 'Count of HTTP requests', labelNames: [...c, 'method', 'reporter', 'protocol', 'status'], registers });
    this.duration = new Histogram({ name: 'hubble_http_request_duration_seconds', help: 'Histogram of HTTP request duration in seconds', labelNames: [...c, 'method', 'reporter'], buckets: DURATION_BUCKETS, registers });
    this.policy = new Counter({ name: 'hubble_policy_verdicts_total', help: 'Total number of Cilium network policy verdicts', labelNames: ['direction', 'match', 'action', ...c], registers });
    const names: [object, string][] = [
      [this.flows, 'hubble_flows_processed_total'],
      [this.drops, 'hubble_drop_total'],
      [this.tcp, 'hubble_tcp_flags_total'],
      [this.http, 'hubble_http_requests_total'],
      [this.duration, 'hubble_http_request_duration_seconds'],
      [this.policy, 'hubble_policy_verdicts_total'],
    ];
    for (const [m, name] of names) this.caps.set(m, new SeriesCap(name, cap, this.folded));
  }

  /** Counts flows as they arrive; returns the unsubscribe. */
  follow(source: FlowSource): () => void {
    return source.subscribe((f) => this.observe(f));
  }

  /**
   * The datapath's loss counter is a running total read from the kernel; the
   * counter follows it by deltas so a restart of the reader never counts twice.
   */
  setLost(source: string, total: number): void {
    const prev = this.lostSeen.get(source) ?? 0;
    if (total > prev) this.lost.inc({ source }, total - prev);
    this.lostSeen.set(source, Math.max(prev, total));
  }

  private inc(m: Counter, labels: Labels, n: number): void {
    m.inc(this.caps.get(m)!.admit(labels, n), n);
  }

  observe(f: Flow): void {
    const n = f.count ?? 1;
    const ctx = this.ctx.values(endpointsOf(f, false));
    const protocol = flowProtocol(f);
    const [type, subtype] = typeAndSubtype(f);
    this.inc(this.flows, { protocol, type, subtype, verdict: f.verdict, ...ctx }, n);
    if (f.verdict === 'DROPPED') this.inc(this.drops, { reason: f.dropReason ?? 'DROP_REASON_UNKNOWN', protocol, ...ctx }, n);
    this.tcpFlags(f, ctx, n);
    this.httpRequest(f, n);
    this.policyVerdict(f, ctx, n);
  }

  private tcpFlags(f: Flow, ctx: Labels, n: number): void {
    const flags = f.l4?.protocol === 'TCP' ? f.l4.flags : undefined;
    if ((f.verdict !== 'FORWARDED' && f.verdict !== 'REDIRECTED') || !f.ip || !flags) return;
    const family = f.ip.ipVersion;
    const hits: string[] = [];
    if (flags.FIN) hits.push('FIN');
    if (flags.SYN) hits.push(flags.ACK ? 'SYN-ACK' : 'SYN');
    if (flags.RST) hits.push('RST');
    for (const flag of hits) this.inc(this.tcp, { flag, family, ...ctx }, n);
  }

  /**
   * Hubble's httpV2: one count per completed exchange, labelled from the
   * request's side. A RESPONSE flow runs server → client, so its endpoints
   * swap; a SAMPLE (Envoy's access log, one record per exchange) already
   * reads client → server. REQUEST flows have no status yet and are skipped.
   */
  private httpRequest(f: Flow, n: number): void {
    const http = f.l7?.http;
    if (f.type !== 'L7' || !http || f.l7!.type === 'REQUEST') return;
    const ctx = this.ctx.values(endpointsOf(f, f.l7!.type === 'RESPONSE'));
    const reporter = f.trafficDirection === 'EGRESS' ? 'client' : f.trafficDirection === 'INGRESS' ? 'server' : 'unknown';
    const common = { ...ctx, method: http.method, reporter };
    this.inc(this.http, { ...common, protocol: http.protocol ?? '', status: String(http.code) }, n);
    const latency = f.l7!.latencyNs;
    if (latency === undefined) return;
    const labels = this.caps.get(this.duration)!.admit(common, n);
    const seconds = Number(latency) / 1e9;
    for (let i = 0; i < n; i++) this.duration.observe(labels, seconds);
  }

  /**
   * Policy verdicts are decided once per connection: L3/L4 events count at
   * connection start (no TCP flags, or a bare SYN) and not for replies or
   * host-originated traffic, as Hubble skips those; L7 ones count per
   * access-log record with match "l7/http".
   */
  private policyVerdict(f: Flow, ctx: Labels, n: number): void {
    const direction = f.trafficDirection === 'TRAFFIC_DIRECTION_UNKNOWN' ? 'traffic_direction_unknown' : f.trafficDirection.toLowerCase();
    const action = f.verdict.toLowerCase();
    if (f.type === 'L7') {
      if (f.l7?.http && f.l7.type !== 'REQUEST') this.inc(this.policy, { direction, match: 'l7/http', action, ...ctx }, n);
      return;
    }
    if (f.type !== 'L3_L4' || f.isReply || f.source?.identity === 1) return;
    if (f.verdict === 'DROPPED' && f.dropReason !== 'POLICY_DENIED') return;
    if (f.verdict !== 'DROPPED' && f.verdict !== 'FORWARDED' && f.verdict !== 'REDIRECTED' && f.verdict !== 'AUDIT') return;
    const flags = f.l4?.flags;
    if (flags && !(flags.SYN && !flags.ACK)) return;
    this.inc(this.policy, { direction, match: f.policyMatchType ?? 'none', action, ...ctx }, n);
  }
}
