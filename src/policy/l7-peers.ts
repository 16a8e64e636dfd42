// Remote identities as the addresses an Envoy RBAC rule can check.
import type { Identities } from './identities.js';
import { cidrContains, parseCidr } from './cidr.js';
import type { L7Peer } from './l7.js';

export function l7Peers(identities: Identities, ids: number[]): 'any' | L7Peer[] {
  if (ids.includes(0)) return 'any';
  const byIdentity = new Map<number, string[]>();
  for (const e of identities.ipcache) {
    const list = byIdentity.get(e.identity);
    if (list) list.push(e.prefix);
    else byIdentity.set(e.identity, [e.prefix]);
  }
  return ids.map((identity) => {
    const prefixes = byIdentity.get(identity) ?? [];
    const own = prefixes.map((p) => parseCidr(p)!);
    // Only prefixes shorter than a host route can hide others' addresses inside them.
    const except = own.some((c) => c.len < (c.v6 ? 128 : 32))
      ? identities.ipcache.filter((e) => e.identity !== identity && own.some((c) => { const x = parseCidr(e.prefix)!; return x.len > c.len && cidrContains(c, x); })).map((e) => e.prefix)
      : [];
    return { identity, prefixes, except };
  });
}
