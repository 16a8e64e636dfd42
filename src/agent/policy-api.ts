// The agent's local API for the operator tools, shaped like the endpoints
// Cilium's agent answers cilium-dbg on: the endpoints of this node, the
// policies in force, and a trace of one connection. Plain values out, so the
// CLI formats the agent's answer and an offline computation the same way.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TranslationIssue } from '../issues/issue.js';
import type { Origin } from '../model/model.js';
import { trace, type MeshSteering, type PolicyResult, type TraceQuery, type TraceResult } from '../policy/index.js';
import type { Label } from '../policy/labels.js';
import type { Direction } from '../policy/rules.js';
import type { Peer } from '../policy/selectors.js';

/** Where the agent serves this API by default: beside its default xDS socket. */
export const DEFAULT_API_SOCKET = '/var/run/sluice/api.sock';

export interface EndpointView {
  id: number;
  pod: string;
  identity: number;
  /** "source:key=value", as Cilium prints identity labels. */
  labels: string[];
  ingressEnforced: boolean;
  egressEnforced: boolean;
  ips: string[];
}

export interface PeerView {
  selector: string;
  /** The identities it selects now; [0] for any peer at all. */
  identities: number[];
}

export interface RuleView {
  field: string;
  direction: Direction;
  deny: boolean;
  peers: PeerView[];
  /** Absent: every port and protocol. */
  ports?: { field: string; proto: string; ports: string; http?: object[] }[];
}

export interface RuleSetView {
  policy: string;
  origin?: Origin;
  selector: string;
  /** Pods on this node it selects. */
  endpoints: string[];
  /** Directions in which the pods it selects drop what no rule allows. */
  enforces: Direction[];
  rules: RuleView[];
}

export interface PolicyView {
  /** Policies in force; a policy with an issue is not in force at all. */
  policies: RuleSetView[];
  issues: TranslationIssue[];
}

export interface TraceView extends TraceResult {
  query: TraceQuery;
}

const labelText = (l: Label) => `${l.source}:${l.key}${l.value ? `=${l.value}` : ''}`;
const PROTO_NAMES: Record<number, string> = { 0: 'ANY', 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

export function endpointsView(r: PolicyResult): EndpointView[] {
  const byId = new Map<number, EndpointView>();
  for (const e of r.state.endpoints) {
    const known = byId.get(e.endpoint);
    if (known) {
      known.ips.push(e.ip);
      continue;
    }
    const labels = (r.compiled.identities.byId.get(e.identity)?.labels ?? []).map(labelText);
    byId.set(e.endpoint, { id: e.endpoint, pod: e.pod, identity: e.identity, labels, ingressEnforced: e.ingressEnforced, egressEnforced: e.egressEnforced, ips: [e.ip] });
  }
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

export function policyView(r: PolicyResult): PolicyView {
  const { ruleSets, cache } = r.compiled;
  const peer = (p: Peer): PeerView => ({ selector: p.key, identities: p.any ? [0] : [...cache.select(p)].sort((a, b) => a - b) });
  const policies = ruleSets.map((rs): RuleSetView => {
    const selected = cache.select(rs.subject);
    return {
      policy: rs.policy,
      ...(rs.origin ? { origin: rs.origin } : {}),
      selector: rs.subject.key,
      endpoints: [...new Set(r.state.endpoints.filter((e) => selected.has(e.identity)).map((e) => e.pod))],
      enforces: (['ingress', 'egress'] as const).filter((d) => rs.enforce[d]),
      rules: rs.rules.map((rule) => ({
        field: rule.field,
        direction: rule.direction,
        deny: rule.deny,
        peers: rule.peers.map(peer),
        ...(rule.ports
          ? {
              ports: rule.ports.map((p) => ({
                field: p.field,
                proto: PROTO_NAMES[p.proto] ?? String(p.proto),
                ports: p.name ?? (p.lo === p.hi ? String(p.lo) : `${p.lo}-${p.hi}`),
                ...(p.http ? { http: p.http.map(({ headers, headerMatches, ...h }) => ({ ...h, ...(headers.length ? { headers } : {}), ...(headerMatches.length ? { headerMatches } : {}) })) } : {}),
              })),
            }
          : {}),
      })),
    };
  });
  return { policies, issues: r.issues };
}

/** A trace query from URL parameters (the agent API) or flags (the CLI); throws on a malformed one. */
export function traceQuery(p: { from?: string; to?: string; port?: string; proto?: string; method?: string; path?: string; host?: string; headers?: string[] }): TraceQuery {
  if (!p.from || !p.to) throw new Error('want from and to: NAMESPACE/POD or an address');
  const port = Number(p.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`port: want 1-65535, got ${JSON.stringify(p.port ?? '')}`);
  const proto = (p.proto ?? 'tcp').toUpperCase();
  if (proto !== 'TCP' && proto !== 'UDP' && proto !== 'SCTP') throw new Error(`proto: want tcp, udp or sctp, got ${JSON.stringify(p.proto)}`);
  const headers: Record<string, string> = {};
  for (const h of p.headers ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new Error(`header: want NAME:VALUE, got ${JSON.stringify(h)}`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return {
    from: p.from,
    to: p.to,
    port,
    proto,
    ...(p.method !== undefined ? { method: p.method } : {}),
    ...(p.path !== undefined ? { path: p.path } : {}),
    ...(p.host !== undefined ? { host: p.host } : {}),
    ...(Object.keys(headers).length ? { headers } : {}),
  };
}

/** `mesh`: the state the kernel holds, so mesh-only egress rules are traced as the kernel steers. */
export function traceView(r: PolicyResult, q: TraceQuery, mesh?: MeshSteering): TraceView {
  return { query: q, ...trace(r, q, mesh) };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.statusCode = status;
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body) + '\n');
}

/**
 * Answers /v1/endpoints, /v1/policy and /v1/policy/trace; returns false for
 * other paths. `policy` is the current model's, undefined before there is one.
 */
export function policyApi(policy: () => PolicyResult | undefined, mesh?: () => MeshSteering | undefined): (req: IncomingMessage, res: ServerResponse) => boolean {
  const views: Record<string, (r: PolicyResult, q: URLSearchParams) => unknown> = {
    '/v1/endpoints': (r) => endpointsView(r),
    '/v1/policy': (r) => policyView(r),
    '/v1/policy/trace': (r, q) => {
      const get = (k: string) => q.get(k) ?? undefined;
      return traceView(r, traceQuery({ from: get('from'), to: get('to'), port: get('port'), proto: get('proto'), method: get('method'), path: get('path'), host: get('host'), headers: q.getAll('header') }), mesh?.());
    },
  };
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    const view = views[url.pathname.replace(/\/+$/, '')];
    if (!view) return false;
    if (req.method !== 'GET') {
      send(res, 405, { error: 'only GET' });
      return true;
    }
    let r: PolicyResult | undefined;
    try {
      r = policy();
    } catch (e) {
      send(res, 500, { error: `computing the policy failed: ${(e as Error).message}` });
      return true;
    }
    if (!r) {
      send(res, 503, { error: 'not ready: the agent has no model from its sources yet' });
      return true;
    }
    try {
      send(res, 200, view(r, url.searchParams));
    } catch (e) {
      // The views only throw on what the caller asked (a bad query, an unknown pod).
      send(res, 400, { error: (e as Error).message });
    }
    return true;
  };
}
