// Peers named by address, and the namespace scoping Cilium gives selectors of
// namespaced policies.
import { ReservedIdentity } from './datapath-state.js';
import { cidrContains, formatCidr, parseCidr } from './cidr.js';
import { NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX } from './labels.js';
import { PolicyProblem } from './rules.js';
import type { Peer, Requirement } from './selectors.js';

/**
 * The CIDR identities within `cidr` but not within any of `except`. Pod
 * addresses never match: Cilium's CIDR rules are for peers outside the
 * cluster, and a pod's /32 holds its own identity.
 */
export function cidrPeer(cidr: unknown, except: unknown[], field: string): { peer: Peer; prefixes: string[] } {
  const c = typeof cidr === 'string' ? parseCidr(cidr) : undefined;
  if (!c) throw new PolicyProblem(field, `want a CIDR such as 10.0.0.0/8, not ${JSON.stringify(cidr)}`);
  const ex = except.map((e, i) => {
    const x = typeof e === 'string' ? parseCidr(e) : undefined;
    const f = `${field.replace(/\.cidr$/, '')}.except[${i}]`;
    if (!x) throw new PolicyProblem(f, `want a CIDR such as 10.0.0.0/8, not ${JSON.stringify(e)}`);
    if (!cidrContains(c, x)) throw new PolicyProblem(f, `${formatCidr(x)} is not within ${formatCidr(c)}`);
    return x;
  });
  const world = c.len === 0;
  const prefixes = [c, ...ex].map(formatCidr);
  return {
    prefixes,
    peer: {
      key: `cidr:${prefixes[0]}-${prefixes.slice(1).sort().join(',')}`,
      matches: (i) =>
        (world && ex.length === 0 && (i.id === ReservedIdentity.World || i.id === ReservedIdentity.WorldIPv4 || i.id === ReservedIdentity.WorldIPv6)) ||
        (i.kind === 'cidr' && cidrContains(c, i.cidr!) && !ex.some((x) => cidrContains(x, i.cidr!))),
    },
  };
}

/** Whether a peer selector already says which namespaces it means. */
export function namesNamespace(reqs: Requirement[]): boolean {
  return reqs.some((r) => r.key === NAMESPACE_LABEL || r.key.startsWith(NAMESPACE_LABELS_PREFIX) || r.source === 'reserved');
}

export function inNamespace(ns: string): Requirement {
  return { source: 'k8s', key: NAMESPACE_LABEL, op: 'In', values: [ns] };
}
