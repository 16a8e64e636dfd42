// Ingress policy as the node Envoy that ends mTLS tunnels can check it: the
// peers a rule selects become the SPIFFE IDs of the meshed pods among them,
// resolved through the same selector cache as the plaintext entries, so both
// paths agree on who a selector means (namespace scoping included).
import type { Model } from '../model/model.js';
import { meshWorkloads } from '../mesh/membership.js';
import type { PolicyResult } from './compute.js';
import type { MeshAllow, MeshAuthz, MeshEndpointAuthz, MeshPortRange } from './mesh-authz.js';
import { portRanges, type NamedPorts } from './named-ports.js';
import { PROTO } from './ports.js';
import type { PeerRule } from './rules.js';
import type { SelectorCache } from './selectors.js';

/**
 * Peers every authenticated workload satisfies: all of them, and the cluster
 * (a peer of our trust domain runs in the cluster). Other entities (host,
 * remote-node, world) and CIDR peers cannot present an SVID, so they add no
 * principal: what they may send stays with the plaintext entries.
 */
const ANY_AUTHENTICATED = new Set(['entity:all', 'entity:cluster']);

function principals(rule: PeerRule, cache: SelectorCache, spiffeIds: ReadonlyMap<number, ReadonlySet<string>>): string[] | 'any' {
  if (rule.peers.some((p) => p.any || ANY_AUTHENTICATED.has(p.key))) return 'any';
  const out = new Set<string>();
  // Selected pods outside the mesh have no identity to present: they contribute none.
  for (const p of rule.peers) for (const id of cache.select(p)) for (const s of spiffeIds.get(id) ?? []) out.add(s);
  return [...out].sort();
}

/** The rule's TCP ports at this destination; undefined when none is TCP (or a name no local port has). */
function ports(rule: PeerRule, named: NamedPorts, subject: number): MeshPortRange[] | 'any' | undefined {
  if (!rule.ports) return 'any';
  const ranges: MeshPortRange[] = [];
  for (const pr of rule.ports) {
    if (pr.proto !== PROTO.TCP && pr.proto !== PROTO.ANY) continue;
    // On ingress a named port is the destination's own, as the plaintext entries resolve it.
    for (const { lo, hi } of portRanges(named, pr, 'ingress', subject, 0)) ranges.push({ from: lo, to: hi });
  }
  if (!ranges.length) return undefined;
  ranges.sort((a, b) => a.from - b.from || a.to - b.to);
  const merged: MeshPortRange[] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r.from <= last.to + 1) last.to = Math.max(last.to, r.to);
    else merged.push({ ...r });
  }
  // Port 0 appears only in the whole range, which is any port.
  return merged.length === 1 && merged[0].from <= 1 && merged[0].to === 65535 ? 'any' : merged;
}

function pushUnique(list: MeshAllow[], a: MeshAllow): void {
  const key = JSON.stringify(a);
  if (!list.some((x) => JSON.stringify(x) === key)) list.push(a);
}

/**
 * Per meshed pod among the result's local endpoints that an ingress rule
 * selects: the SPIFFE IDs allowed and denied per port. Pure; its cost is one
 * pass over rules per distinct identity of local meshed pods.
 */
export function computeMeshAuthz(model: Model, result: PolicyResult, trustDomain: string): MeshAuthz {
  const { ruleSets, cache, identities } = result.compiled;
  const meshed = meshWorkloads(model, trustDomain);
  // Identity → the SPIFFE IDs of its meshed pods, on any node.
  const spiffeIds = new Map<number, Set<string>>();
  for (const w of meshed) {
    const id = identities.pods.get(w.pod)?.identity;
    if (id === undefined) continue;
    let set = spiffeIds.get(id);
    if (!set) spiffeIds.set(id, (set = new Set()));
    set.add(w.spiffeId);
  }
  const local = new Map(result.state.endpoints.map((e) => [e.pod, e.identity]));

  const perIdentity = new Map<number, Omit<MeshEndpointAuthz, 'pod' | 'ips'> | undefined>();
  const forIdentity = (subject: number) => {
    if (perIdentity.has(subject)) return perIdentity.get(subject);
    const applicable = ruleSets.filter((rs) => cache.select(rs.subject).has(subject));
    const rules = applicable.flatMap((rs) => rs.rules.filter((r) => r.direction === 'ingress'));
    let out: Omit<MeshEndpointAuthz, 'pod' | 'ips'> | undefined;
    if (rules.length || applicable.some((rs) => rs.enforce.ingress)) {
      const allow: MeshAllow[] = [];
      const deny: MeshAllow[] = [];
      // Both plain and mTLS-only rules admit their meshed peers here.
      for (const r of rules) {
        const p = ports(r, identities.namedPorts, subject);
        const who = principals(r, cache, spiffeIds);
        if (p === undefined || who.length === 0) continue;
        pushUnique(r.deny ? deny : allow, { ports: p, principals: who });
      }
      // As in compute.ts: rules that do not turn default deny on still deny; the rest passes.
      const enforced = applicable.some((rs) => rs.enforce.ingress);
      if (!enforced) allow.push({ ports: 'any', principals: 'any' });
      out = { enforced: true, allow, deny };
    }
    perIdentity.set(subject, out);
    return out;
  };

  const authz = new Map<string, MeshEndpointAuthz>();
  for (const w of meshed) {
    const subject = local.get(w.pod);
    if (subject === undefined) continue;
    const a = forIdentity(subject);
    if (a) authz.set(w.pod, { pod: w.pod, ips: w.ips, enforced: a.enforced, allow: a.allow, deny: a.deny });
  }
  return authz;
}
