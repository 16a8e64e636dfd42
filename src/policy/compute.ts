// The policy room's entry point: the model in, the datapath state, the L7
// listeners' input and the problems out. Pure but for the id allocators.
import type { Model } from '../model/model.js';
import { describeObject, type KubeObject, type ModelObject } from '../model/objects.js';
import type { TranslationIssue } from '../issues/issue.js';
import { parseCiliumPolicy } from './cilium-rules.js';
import type { EndpointEntry, PolicyDatapathState, PolicyEntry } from './datapath-state.js';
import { Rank, buildEntries, type Contribution } from './entries.js';
import { computeIdentities, type IdAllocator, type Identities } from './identities.js';
import { parseNetworkPolicy } from './k8s-networkpolicy.js';
import { l7Peers } from './l7-peers.js';
import { listenerName, type L7Listener } from './l7.js';
import { portRanges } from './named-ports.js';
import { PROTO } from './ports.js';
import type { Direction, Parsed, RuleSet } from './rules.js';
import { SelectorCache } from './selectors.js';

export interface PolicyContext {
  /** Pods on this node are the endpoints; without it, every pod with an address is. */
  nodeName?: string;
  /** Cilium's cluster name, a label of every pod identity. */
  cluster?: string;
  identities: IdAllocator;
  cidrIdentities: IdAllocator;
  endpoints: IdAllocator;
  /** This node's addresses beyond those its Node object lists. */
  hostIPs?: string[];
  /** Other nodes' addresses beyond the Node objects in the model. */
  remoteNodeIPs?: string[];
}

/** What trace needs to explain a verdict: the rule sets in force and what their selectors select. */
export interface CompiledPolicy {
  ruleSets: RuleSet[];
  identities: Identities;
  cache: SelectorCache;
}

export interface PolicyResult {
  state: PolicyDatapathState;
  l7: L7Listener[];
  issues: TranslationIssue[];
  compiled: CompiledPolicy;
  stats: { identities: number; selectors: number; selectorEvaluations: number };
  /**
   * The allocator keys this result uses. Once the datapath no longer holds the
   * previous state, the wiring may release every other key (numbers come back
   * late, see StableIds), so label sets that are gone do not hold numbers forever.
   */
  keys: { identities: string[]; cidrIdentities: string[]; endpoints: string[] };
}

const DIRECTIONS: Direction[] = ['ingress', 'egress'];

function parseAll(model: Model): { ruleSets: RuleSet[]; issues: TranslationIssue[] } {
  const objects: [KubeObject, () => Parsed][] = [
    ...model.list('CiliumNetworkPolicy').map((p) => [p, () => parseCiliumPolicy(p)] as [KubeObject, () => Parsed]),
    ...model.list('CiliumClusterwideNetworkPolicy').map((p) => [p, () => parseCiliumPolicy(p)] as [KubeObject, () => Parsed]),
    ...model.list('NetworkPolicy').map((p) => [p, () => parseNetworkPolicy(p)] as [KubeObject, () => Parsed]),
  ];
  objects.sort(([a], [b]) => (describeObject(a) < describeObject(b) ? -1 : 1));
  const ruleSets: RuleSet[] = [];
  const issues: TranslationIssue[] = [];
  for (const [o, parse] of objects) {
    const parsed = parse();
    const origin = model.originOf(o as ModelObject);
    // A policy with a problem is enforced not at all, never in part.
    if ('problems' in parsed) for (const p of parsed.problems) issues.push({ object: describeObject(o), ...(origin ? { origin } : {}), field: p.field, message: p.message });
    else ruleSets.push(...parsed.ruleSets.map((r) => (origin ? { ...r, origin } : r)));
  }
  return { ruleSets, issues };
}

function nodeAddresses(model: Model, ctx: PolicyContext): { host: string[]; remote: string[] } {
  const host = [...(ctx.hostIPs ?? [])];
  const remote = [...(ctx.remoteNodeIPs ?? [])];
  for (const n of model.list('Node')) {
    const ips = (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP').map((a) => a.address);
    (n.metadata.name === ctx.nodeName ? host : remote).push(...ips);
  }
  return { host, remote };
}

/** Remote identities a rule admits: [0] for any. */
function peerIdentities(cache: SelectorCache, peers: RuleSet['rules'][number]['peers']): number[] {
  if (peers.some((p) => p.any)) return [0];
  const ids = new Set<number>();
  for (const p of peers) for (const id of cache.select(p)) ids.add(id);
  return [...ids].sort((a, b) => a - b);
}

export function computePolicy(model: Model, ctx: PolicyContext): PolicyResult {
  const { ruleSets, issues } = parseAll(model);
  const nodes = nodeAddresses(model, ctx);
  const identities = computeIdentities(
    model,
    ruleSets.flatMap((r) => r.cidrs),
    { cluster: ctx.cluster ?? 'default', identities: ctx.identities, cidrIdentities: ctx.cidrIdentities, hostIPs: nodes.host, remoteNodeIPs: nodes.remote },
  );
  const cache = new SelectorCache(identities.all);
  const local = [...identities.pods.entries()]
    .filter(([, p]) => p.ips.length > 0 && (!ctx.nodeName || p.pod.spec?.nodeName === ctx.nodeName))
    .sort(([a], [b]) => (a < b ? -1 : 1));

  // Everything below is per subject identity; endpoints of one identity share it.
  const perIdentity = new Map<number, { enforced: Record<Direction, boolean>; entries: PolicyEntry[]; l7: Map<string, L7Listener> }>();
  const forIdentity = (subject: number) => {
    const known = perIdentity.get(subject);
    if (known) return known;
    const applicable = ruleSets.filter((rs) => cache.select(rs.subject).has(subject));
    const enforced = { ingress: false, egress: false };
    const entries: PolicyEntry[] = [];
    const l7 = new Map<string, L7Listener>();
    for (const direction of DIRECTIONS) {
      const contributions: Contribution[] = [];
      for (const rs of applicable) {
        if (rs.enforce[direction]) enforced[direction] = true;
        for (const r of rs.rules) {
          // An mTLS-only rule admits nothing in plaintext. On ingress it adds no entry: the tunnel ends
          // in the node's Envoy, which checks the peer's SPIFFE ID (mesh-authz-compute.ts). On egress
          // the source's check runs before the kernel decides whether to steer the flow into the
          // tunnel, so the rule's peers get a mesh-only verdict: allowed exactly when the flow is
          // steered (a meshed endpoint's TCP to a meshed pod on another node), dropped otherwise. That
          // is decided per flow by destination address, which an identity cannot say: pods of one
          // label set may be meshed or not. Same-node meshed peers are not steered, so not admitted,
          // matching their ingress side, which has no plaintext entry for such a rule either.
          if (r.direction !== direction || (r.authRequired && direction === 'ingress')) continue;
          const ids = peerIdentities(cache, r.peers);
          for (const pr of r.ports ?? [{ field: r.field, proto: PROTO.ANY, lo: 0, hi: 65535 }]) {
            // Peers by the listener their port's L7 rules go to (a named port may differ per peer).
            const l7ids = new Map<number, number[]>();
            for (const identity of ids)
              for (const { lo, hi } of portRanges(identities.namedPorts, pr, direction, subject, identity)) {
                const listener = pr.http ? listenerName(direction, subject, lo) : undefined;
                // The parser refuses authentication with http rules or on a deny (cilium-rules.ts).
                const rank = r.deny ? Rank.Deny : r.authRequired ? Rank.MeshOnly : listener ? Rank.Redirect : Rank.Allow;
                contributions.push({ identity, proto: pr.proto, lo, hi, rank, ...(listener ? { listener } : {}) });
                if (listener) l7ids.set(lo, [...(l7ids.get(lo) ?? []), identity]);
              }
            for (const [port, peerIds] of l7ids) {
              const listener = listenerName(direction, subject, port);
              let l = l7.get(listener);
              if (!l) l7.set(listener, (l = { listener, direction, identity: subject, proto: 'TCP', port, endpoints: [], rules: [] }));
              const peers = l7Peers(identities, peerIds);
              for (const { field, ...http } of pr.http ?? []) l.rules.push({ policy: rs.policy, field, peers, ...http });
            }
          }
        }
      }
      // Rules that do not turn default deny on (enableDefaultDeny: false) still deny and redirect; the rest passes.
      if (!enforced[direction] && contributions.length) {
        contributions.push({ identity: 0, proto: PROTO.ANY, lo: 0, hi: 65535, rank: Rank.DefaultAllow });
        enforced[direction] = true;
      }
      entries.push(...buildEntries(0, direction, contributions));
    }
    const result = { enforced, entries, l7 };
    perIdentity.set(subject, result);
    return result;
  };

  const endpoints: EndpointEntry[] = [];
  const entries: PolicyEntry[] = [];
  const l7 = new Map<string, L7Listener>();
  for (const [key, p] of local) {
    const endpoint = ctx.endpoints.idFor(key);
    const r = forIdentity(p.identity);
    for (const ip of p.ips) endpoints.push({ pod: key, ip, endpoint, identity: p.identity, ingressEnforced: r.enforced.ingress, egressEnforced: r.enforced.egress });
    for (const e of r.entries) entries.push({ ...e, endpoint });
    for (const [name, l] of r.l7) {
      let mine = l7.get(name);
      if (!mine) l7.set(name, (mine = { ...l, endpoints: [] }));
      for (const ip of p.ips) mine.endpoints.push({ pod: key, ip, endpoint });
    }
  }
  return {
    state: { ipcache: identities.ipcache, endpoints, entries },
    l7: [...l7.values()],
    issues,
    compiled: { ruleSets, identities, cache },
    stats: { identities: identities.all.length, selectors: cache.size, selectorEvaluations: cache.evaluations },
    keys: {
      identities: [...new Set([...identities.pods.values()].map((p) => p.key))].sort(),
      cidrIdentities: identities.all.filter((i) => i.kind === 'cidr').map((i) => `cidr:${i.labels[0].key}`),
      endpoints: local.map(([key]) => key),
    },
  };
}

