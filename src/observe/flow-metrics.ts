// Flow metrics under Hubble's names and labels, so dashboards and alerts
// written for Hubble read sluice's /metrics unchanged. Every labelled series
// set is capped: a busy cluster with many workloads must not grow the
// agent's memory or the scrape without bound, so label sets past the cap
// fold into one "other" series and the folding itself is counted.
import { Counter, Histogram, type Registry } from 'prom-client';
import { RESERVED } from '../policy/identities.js';
import type { Flow, FlowEndpoint } from './flow.js';

/** A flow, or a count of events a producer lost (source in Hubble's LostEventSource spelling). */
export type FlowEvent = { flow: Flow } | { lost: { source: string; count: number } };

/** What the metrics and the service map read: the agent's flow ring (src/observe/flow-ring.ts) has this shape. */
export interface FlowSource {
  /** The flows held, oldest first. */
  flows(): Iterable<Flow>;
  subscribe(fn: (e: FlowEvent) => void): () => void;
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

  /** Values in the order of `names`. */
  values(e: Endpoints): string[] {
    const out: string[] = [];
    if (this.src.length) out.push(firstOf(this.src, e.src, e.srcIp));
    if (this.dst.length) out.push(firstOf(this.dst, e.dst, e.dstIp));
    for (const [, fn] of this.extra) out.push(fn(e));
    return out;
  }
}

function firstOf(fns: ContextFn[], ep: FlowEndpoint | undefined, ip: string | undefined): string {
  for (const fn of fns) {
    const v = fn(ep, ip);
    if (v) return v;
  }
  return '';
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

/**
 * One metric's series, keyed by label values, up to a cap; past it every new
 * set lands in the one all-"other" series. Children are kept so a flow costs
 * a map lookup per metric rather than prom-client hashing a label object.
 */
class CappedSeries<C> {
  private readonly children = new Map<string, C>();
  private other?: C;

  constructor(
    private readonly name: string,
    private readonly width: number,
    private readonly cap: number,
    private readonly folded: Counter,
    private readonly make: (values: string[]) => C,
  ) {}

  get(values: string[], n: number): C {
    const key = values.join('\u0000');
    const hit = this.children.get(key);
    if (hit) return hit;
    if (this.children.size < this.cap) {
      const child = this.make(values);
      this.children.set(key, child);
      return child;
    }
    this.folded.inc({ metric: this.name }, n);
    return (this.other ??= this.make(new Array<string>(this.width).fill(OTHER)));
  }
}

type Inc = { inc(n: number): void };
type Observe = { observe(v: number): void };

function counter(registry: Registry, name: string, help: string, labelNames: string[], cap: number, folded: Counter): CappedSeries<Inc> {
  const c = new Counter({ name, help, labelNames, registers: [registry] });
  return new CappedSeries(name, labelNames.length, cap, folded, (v) => c.labels(...v));
}

export class FlowMetrics {
  private readonly ctx: FlowContext;
  private readonly lost: Counter;
  private readonly flows: CappedSeries<Inc>;
  private readonly drops: CappedSeries<Inc>;
  private readonly tcp: CappedSeries<Inc>;
  private readonly http: CappedSeries<Inc>;
  private readonly duration: CappedSeries<Observe>;
  private readonly policy: CappedSeries<Inc>;

  constructor(registry: Registry, options: FlowMetricsOptions = {}) {
    this.ctx = new FlowContext(options);
    const cap = options.maxSeriesPerMetric ?? 1000;
    const c = this.ctx.names;
    const folded = new Counter({ name: 'sluice_flow_metric_folded_total', help: 'Flows counted in the "other" series because the metric reached its cap of distinct label sets', labelNames: ['metric'], registers: [registry] });
    this.lost = new Counter({ name: 'hubble_lost_events_total', help: 'Flow events lost before the agent read them', labelNames: ['source'], registers: [registry] });
    this.flows = counter(registry, 'hubble_flows_processed_total', 'Total number of flows processed', ['protocol', 'type', 'subtype', 'verdict', ...c], cap, folded);
    this.drops = counter(registry, 'hubble_drop_total', 'Number of drops', ['reason', 'protocol', ...c], cap, folded);
    this.tcp = counter(registry, 'hubble_tcp_flags_total', 'TCP flag occurrences', ['flag', 'family', ...c], cap, folded);
    this.http = counter(registry, 'hubble_http_requests_total', 'Count of HTTP requests', [...c, 'method', 'reporter', 'protocol', 'status'], cap, folded);
    this.policy = counter(registry, 'hubble_policy_verdicts_total', 'Total number of Cilium network policy verdicts', ['direction', 'match', 'action', ...c], cap, folded);
    const durationNames = [...c, 'method', 'reporter'];
    const h = new Histogram({ name: 'hubble_http_request_duration_seconds', help: 'Histogram of HTTP request duration in seconds', labelNames: durationNames, buckets: DURATION_BUCKETS, registers: [registry] });
    this.duration = new CappedSeries('hubble_http_request_duration_seconds', durationNames.length, cap, folded, (v) => h.labels(...v));
  }

  /** Counts flows and losses as they arrive; returns the unsubscribe. */
  follow(source: Pick<FlowSource, 'subscribe'>): () => void {
    return source.subscribe((e) => ('flow' in e ? this.observe(e.flow) : this.addLost(e.lost.source, e.lost.count)));
  }

  /** Hubble labels lost events by its LostEventSource, lower-cased: "perf_event_ring_buffer". */
  addLost(source: string, count: number): void {
    if (count > 0) this.lost.inc({ source: source.toLowerCase() }, count);
  }

  observe(f: Flow): void {
    const n = f.count ?? 1;
    const ctx = this.ctx.values(endpointsOf(f, false));
    const protocol = flowProtocol(f);
    const [type, subtype] = typeAndSubtype(f);
    this.flows.get([protocol, type, subtype, f.verdict, ...ctx], n).inc(n);
    if (f.verdict === 'DROPPED') this.drops.get([f.dropReason ?? 'DROP_REASON_UNKNOWN', protocol, ...ctx], n).inc(n);
    this.tcpFlags(f, ctx, n);
    this.httpRequest(f, n);
    this.policyVerdict(f, ctx, n);
  }

  private tcpFlags(f: Flow, ctx: string[], n: number): void {
    const flags = f.l4?.protocol === 'TCP' ? f.l4.flags : undefined;
    if ((f.verdict !== 'FORWARDED' && f.verdict !== 'REDIRECTED') || !f.ip || !flags) return;
    const family = f.ip.ipVersion;
    if (flags.FIN) this.tcp.get(['FIN', family, ...ctx], n).inc(n);
    if (flags.SYN) this.tcp.get([flags.ACK ? 'SYN-ACK' : 'SYN', family, ...ctx], n).inc(n);
    if (flags.RST) this.tcp.get(['RST', family, ...ctx], n).inc(n);
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
    this.http.get([...ctx, http.method, reporter, http.protocol ?? '', String(http.code)], n).inc(n);
    const latency = f.l7!.latencyNs;
    if (latency === undefined) return;
    const child = this.duration.get([...ctx, http.method, reporter], n);
    const seconds = Number(latency) / 1e9;
    for (let i = 0; i < n; i++) child.observe(seconds);
  }

  /**
   * Policy verdicts are decided once per connection: L3/L4 events count at
   * connection start (no TCP flags, or a bare SYN) and not for replies or
   * host-originated traffic, as Hubble skips those; L7 ones count per
   * access-log record with match "l7/http".
   */
  private policyVerdict(f: Flow, ctx: string[], n: number): void {
    const direction = f.trafficDirection === 'TRAFFIC_DIRECTION_UNKNOWN' ? 'traffic_direction_unknown' : f.trafficDirection.toLowerCase();
    const action = f.verdict.toLowerCase();
    if (f.type === 'L7') {
      if (f.l7?.http && f.l7.type !== 'REQUEST') this.policy.get([direction, 'l7/http', action, ...ctx], n).inc(n);
      return;
    }
    if (f.type !== 'L3_L4' || f.isReply || f.source?.identity === 1) return;
    if (f.verdict === 'DROPPED' && f.dropReason !== 'POLICY_DENIED') return;
    if (f.verdict !== 'DROPPED' && f.verdict !== 'FORWARDED' && f.verdict !== 'REDIRECTED' && f.verdict !== 'AUDIT') return;
    const flags = f.l4?.flags;
    if (flags && !(flags.SYN && !flags.ACK)) return;
    this.policy.get([direction, f.policyMatchType ?? 'none', action, ...ctx], n).inc(n);
  }
}
