// Explains one connection: which rule of which policy decides it, per
// direction, with the same precedence as the entries the datapath holds.
import { parseCidr } from './cidr.js';
import type { PolicyResult } from './compute.js';
import type { PolicyDatapathState } from './datapath-state.js';
import { httpRuleMatches } from './http.js';
import { identityOfIp } from './identities.js';
import { listenerName } from './l7.js';
import { portRanges } from './named-ports.js';
import { PROTO } from './ports.js';
import type { Direction, HttpRule, PeerRule, PortRule } from './rules.js';

export interface TraceQuery {
  /** "ns/name" of a pod, or an address. */
  from: string;
  to: string;
  port: number;
  proto?: 'TCP' | 'UDP' | 'SCTP';
  method?: string;
  path?: string;
  host?: string;
  headers?: Record<string, string>;
}

export interface TraceStep {
  direction: Direction;
  verdict: 'allow' | 'deny' | 'redirect';
  /**
   * rule: an L3/L4 rule; l7-rule: an http rule admitted the request;
   * l7-no-match: redirected and no http rule matches (Envoy answers 403);
   * default-deny: policies select the endpoint and none admits this;
   * not-enforced: no policy selects the endpoint in this direction;
   * mesh-only: on egress, only a rule with authentication required admits
   * this, so it passes exactly when the kernel steers it into the mesh tunnel
   * (`steered` says whether it does).
   */
  reason: 'rule' | 'l7-rule' | 'l7-no-match' | 'default-deny' | 'not-enforced' | 'mesh-only';
  steered?: boolean;
  /** "Kind ns/name" of the deciding policy (for default-deny, those that enforce it). */
  policy?: string;
  /** The deciding field, e.g. spec.ingress[0].toPorts[0].ports[0]. */
  field?: string;
  listener?: string;
  /**
   * A rule with `authentication: {mode: required}` would admit this, but only
   * over the mesh's mTLS: in plaintext, as traced here, it does not count.
   */
  authRequired?: { policy: string; field: string };
}

export interface TraceResult {
  verdict: 'allow' | 'deny';
  /** Set when the request reaches Envoy: 200 passes on, 403 is Envoy's denial. */
  httpStatus?: 403;
  decidedBy: TraceStep;
  steps: TraceStep[];
  fromIdentity: number;
  toIdentity: number;
}

/**
 * What the kernel steers into the mesh tunnel: the datapath state with the
 * mesh merged in (src/mesh/datapath.ts withMesh), as the node's reconciler gets it.
 */
export type MeshSteering = Pick<PolicyDatapathState, 'endpoints' | 'meshDestinations'>;

interface Party {
  identity: number;
  /** Only pods have policies of their own. */
  pod: boolean;
  key: string;
  ips: string[];
}

function party(result: PolicyResult, who: string): Party {
  const p = result.compiled.identities.pods.get(who);
  if (p) return { identity: p.identity, pod: true, key: who, ips: p.ips };
  if (parseCidr(who)) return { identity: identityOfIp(result.state.ipcache, who), pod: false, key: who, ips: [who.replace(/\/\d+$/, '')] };
  throw new Error(`${who}: neither a known pod (ns/name) nor an address`);
}

function portMatch(result: PolicyResult, ports: PortRule[] | undefined, proto: number, port: number, direction: Direction, subject: number, remote: number): PortRule | undefined | 'all' {
  if (!ports) return 'all';
  const named = result.compiled.identities.namedPorts;
  return ports.find((p) => (p.proto === PROTO.ANY || p.proto === proto) && portRanges(named, p, direction, subject, remote).some((r) => r.lo <= port && port <= r.hi));
}

/** As bpf/policy.c decides per flow: a meshed endpoint's TCP to an address of a meshed pod on another node. */
function steered(mesh: MeshSteering | undefined, from: Party, to: Party, proto: number): boolean {
  if (!mesh || proto !== PROTO.TCP) return false;
  if (!mesh.endpoints.some((e) => e.pod === from.key && e.meshed)) return false;
  const dst = new Set((mesh.meshDestinations ?? []).map((d) => d.prefix.replace(/\/\d+$/, '')));
  return to.ips.some((ip) => dst.has(ip));
}

function evaluate(result: PolicyResult, direction: Direction, subject: number, remote: number, proto: number, q: TraceQuery, isSteered = false): TraceStep {
  const { ruleSets, cache } = result.compiled;
  const applicable = ruleSets.filter((rs) => cache.select(rs.subject).has(subject));
  type Hit = { policy: string; rule: PeerRule; port: PortRule | 'all' };
  const hits: Hit[] = [];
  let mtls: Hit | undefined;
  for (const rs of applicable)
    for (const rule of rs.rules) {
      if (rule.direction !== direction || !rule.peers.some((p) => p.any || cache.select(p).has(remote))) continue;
      const port = portMatch(result, rule.ports, proto, q.port, direction, subject, rule.peers.some((p) => p.any) ? 0 : remote);
      if (!port) continue;
      // Rules that require authentication have no plaintext entries (see compute.ts).
      if (rule.authRequired) mtls ??= { policy: rs.policy, rule, port };
      else hits.push({ policy: rs.policy, rule, port });
    }
  const fieldOf = (h: Hit) => (h.port === 'all' ? h.rule.field : h.port.field);
  const authRequired = mtls ? { authRequired: { policy: mtls.policy, field: fieldOf(mtls) } } : {};
  const deny = hits.find((h) => h.rule.deny);
  if (deny) return { direction, verdict: 'deny', reason: 'rule', policy: deny.policy, field: fieldOf(deny) };
  const allow = hits.find((h) => h.port === 'all' || !h.port.http);
  if (allow) return { direction, verdict: 'allow', reason: 'rule', policy: allow.policy, field: fieldOf(allow) };
  const l7 = hits.filter((h) => h.port !== 'all' && h.port.http);
  if (l7.length) {
    const listener = listenerName(direction, subject, q.port);
    if (q.method === undefined && q.path === undefined) return { direction, verdict: 'redirect', reason: 'rule', policy: l7[0].policy, field: fieldOf(l7[0]), listener };
    for (const h of l7)
      for (const r of (h.port as PortRule).http as HttpRule[])
        if (httpRuleMatches(r, q)) return { direction, verdict: 'allow', reason: 'l7-rule', policy: h.policy, field: r.field, listener };
    return { direction, verdict: 'deny', reason: 'l7-no-match', policy: l7.map((h) => h.policy).join(', '), listener };
  }
  // Below every plaintext admission, as Rank.MeshOnly in entries.ts; on ingress the node Envoy decides (mesh authz).
  if (mtls && direction === 'egress')
    return { direction, verdict: isSteered ? 'allow' : 'deny', reason: 'mesh-only', policy: mtls.policy, field: fieldOf(mtls), steered: isSteered, ...authRequired };
  const enforcing = applicable.filter((rs) => rs.enforce[direction]);
  if (enforcing.length) return { direction, verdict: 'deny', reason: 'default-deny', policy: [...new Set(enforcing.map((rs) => rs.policy))].join(', '), ...authRequired };
  return { direction, verdict: 'allow', reason: 'not-enforced' };
}

/**
 * The verdict for one connection (and request), and the rule that decides it.
 * Without `mesh`, nothing is steered into the mesh tunnel, as on a node whose
 * mesh is off: an egress rule with authentication required then admits nothing.
 */
export function trace(result: PolicyResult, q: TraceQuery, mesh?: MeshSteering): TraceResult {
  const from = party(result, q.from);
  const to = party(result, q.to);
  const proto = PROTO[q.proto ?? 'TCP'];
  const steps: TraceStep[] = [];
  if (from.pod) steps.push(evaluate(result, 'egress', from.identity, to.identity, proto, q, steered(mesh, from, to, proto)));
  if (to.pod) steps.push(evaluate(result, 'ingress', to.identity, from.identity, proto, q));
  const denied = steps.find((s) => s.verdict === 'deny');
  // An allow is explained by the last rule that admitted it, the receiving side's when both did.
  const decidedBy = denied ??
    [...steps].reverse().find((s) => s.reason === 'l7-rule' || s.reason === 'rule' || s.reason === 'mesh-only') ??
    steps.at(-1) ?? { direction: 'ingress', verdict: 'allow', reason: 'not-enforced' };
  return {
    verdict: denied ? 'deny' : 'allow',
    ...(denied?.reason === 'l7-no-match' ? { httpStatus: 403 as const } : {}),
    decidedBy,
    steps,
    fromIdentity: from.identity,
    toIdentity: to.identity,
  };
}
