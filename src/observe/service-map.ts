// The service map's model: who talks to whom among workloads, from recent
// flows. Pure, so the page, the CLI and tests read the same graph.
import type { Flow, FlowEndpoint } from './flow.js';
import { reservedName } from './flow-metrics.js';

export type EdgeColour = 'forwarded' | 'dropped' | 'mixed';

export interface ServiceMapNode {
  /** "namespace/workload", "namespace/pod" without a workload, else a reserved name or an IP. */
  id: string;
  label: string;
  namespace?: string;
  kind: 'workload' | 'pod' | 'reserved' | 'ip';
}

export interface ServiceMapEdge {
  id: string;
  source: string;
  target: string;
  /** Flow counts by Hubble verdict name. */
  verdicts: Record<string, number>;
  colour: EdgeColour;
  lastHttpStatus?: number;
  /** Median of the L7 latencies seen on the edge (the newest ones, bounded). */
  latencyP50Ms?: number;
  /** Newest flow on the edge, ms since the epoch. */
  lastSeenMs: number;
}

export interface ServiceMap {
  nodes: ServiceMapNode[];
  edges: ServiceMapEdge[];
}

// Latencies kept per edge for the median: enough to be stable, small enough per edge.
const LATENCY_SAMPLES = 128;
const FORWARDING = new Set(['FORWARDED', 'REDIRECTED', 'TRANSLATED', 'TRACED', 'AUDIT']);

function nodeOf(ep: FlowEndpoint | undefined, ip: string | undefined): ServiceMapNode | undefined {
  const w = ep?.workloads?.[0]?.name;
  if (ep?.namespace && w) return { id: `${ep.namespace}/${w}`, label: w, namespace: ep.namespace, kind: 'workload' };
  if (ep?.namespace && ep.podName) return { id: `${ep.namespace}/${ep.podName}`, label: ep.podName, namespace: ep.namespace, kind: 'pod' };
  const reserved = ep ? reservedName(ep.identity) : undefined;
  if (reserved) return { id: `reserved:${reserved}`, label: reserved, kind: 'reserved' };
  if (ip) return { id: ip, label: ip, kind: 'ip' };
  return undefined;
}

/** Edges point from the requester: replies and L7 responses run the other way and swap. */
function requestDirection(f: Flow): boolean {
  return !(f.isReply || f.l7?.type === 'RESPONSE');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

interface EdgeAcc {
  edge: ServiceMapEdge;
  lastNs: bigint;
  lastHttpNs: bigint;
  latencies: number[];
}

export function buildServiceMap(flows: Iterable<Flow>): ServiceMap {
  const nodes = new Map<string, ServiceMapNode>();
  const edges = new Map<string, EdgeAcc>();
  for (const f of flows) {
    const forward = requestDirection(f);
    const a = nodeOf(f.source, f.ip?.source);
    const b = nodeOf(f.destination, f.ip?.destination);
    if (!a || !b) continue;
    const [src, dst] = forward ? [a, b] : [b, a];
    nodes.set(src.id, src);
    nodes.set(dst.id, dst);
    const id = `${src.id} -> ${dst.id}`;
    let acc = edges.get(id);
    if (!acc) {
      acc = { edge: { id, source: src.id, target: dst.id, verdicts: {}, colour: 'forwarded', lastSeenMs: 0 }, lastNs: -1n, lastHttpNs: -1n, latencies: [] };
      edges.set(id, acc);
    }
    const e = acc.edge;
    e.verdicts[f.verdict] = (e.verdicts[f.verdict] ?? 0) + (f.count ?? 1);
    if (f.timeNs > acc.lastNs) acc.lastNs = f.timeNs;
    const http = f.l7?.http;
    if (http && f.l7!.type !== 'REQUEST' && f.timeNs >= acc.lastHttpNs) {
      acc.lastHttpNs = f.timeNs;
      e.lastHttpStatus = http.code;
    }
    if (f.l7?.latencyNs !== undefined) {
      acc.latencies.push(Number(f.l7.latencyNs) / 1e6);
      if (acc.latencies.length > LATENCY_SAMPLES) acc.latencies.shift();
    }
  }
  const out: ServiceMapEdge[] = [];
  for (const acc of edges.values()) {
    const e = acc.edge;
    let fwd = 0;
    let drop = 0;
    for (const [v, n] of Object.entries(e.verdicts)) FORWARDING.has(v) ? (fwd += n) : (drop += n);
    e.colour = drop === 0 ? 'forwarded' : fwd === 0 ? 'dropped' : 'mixed';
    if (acc.latencies.length) e.latencyP50Ms = Math.round(median(acc.latencies) * 1000) / 1000;
    e.lastSeenMs = Number(acc.lastNs / 1_000_000n);
    out.push(e);
  }
  return {
    nodes: [...nodes.values()].sort((x, y) => x.id.localeCompare(y.id)),
    edges: out.sort((x, y) => x.id.localeCompare(y.id)),
  };
}
