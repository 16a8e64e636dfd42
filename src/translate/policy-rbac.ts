// The RBAC HTTP filter of a policy listener: a request passes if some rule
// admits both its peer and the request; anything else is refused with 403.
import type { L7Listener } from '../policy/l7.js';
import { peerMatchers, ruleHeaders, setOf } from './policy-match.js';

type Json = Record<string, any>;

/** The RBAC policy name of rule i: the policy and field, so Envoy's logs and stats point at the YAML. */
export const rbacPolicyName = (l: L7Listener, i: number) => `${i}: ${l.rules[i].policy} ${l.rules[i].field}`;

export function rbacFilter(l: L7Listener): Json {
  const policies: Record<string, Json> = {};
  l.rules.forEach((r, i) => {
    const permissions: Json[] = ruleHeaders(r).map((header) => ({ header }));
    const principals: Json[] = [];
    if (r.peers === 'any') principals.push({ any: true });
    // Ingress peers are the connection's source; egress peers its original destination.
    else if (l.direction === 'ingress') principals.push(peerMatchers(r.peers, 'direct_remote_ip', 'principal'));
    else {
      principals.push({ any: true });
      permissions.push(peerMatchers(r.peers, 'destination_ip', 'permission'));
    }
    policies[rbacPolicyName(l, i)] = { permissions: [setOf('and_rules', 'rules', permissions, { any: true })], principals };
  });
  return {
    name: 'envoy.filters.http.rbac',
    typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC', rules: { action: 'ALLOW', policies } },
  };
}
