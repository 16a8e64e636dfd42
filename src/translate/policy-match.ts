// What one L7 policy rule asks of a request, as Envoy header matchers; the
// RBAC filter, the routes that apply headerMatches actions and the access log
// of LOG actions all match with these, so they agree on what a rule admits.
import { parseCidr } from '../policy/cidr.js';
import type { L7Peer, L7Rule } from '../policy/l7.js';

type Json = Record<string, any>;
export type HeaderMatch = L7Rule['headerMatches'][number];

/** method, path and host are whole-value RE2 regexes (Envoy's safe_regex matches the whole value), as in Cilium. */
const regex = (name: string, re: string): Json => ({ name, string_match: { safe_regex: { regex: re } } });

/** Present, or equal to the value when one is given; inverted, absent or different (an absent header is no match for Envoy either way round). */
export function headerIs(h: { name: string; value?: string }, invert = false): Json {
  const name = h.name.toLowerCase();
  if (h.value === undefined) return { name, present_match: !invert };
  const m = { name, string_match: { exact: h.value } };
  return invert ? { ...m, invert_match: true, treat_missing_header_as_empty: true } : m;
}

/**
 * Everything the rule requires of the request but its peers: a headerMatches
 * entry with a mismatch action never refuses, so it is left out here.
 */
export function ruleHeaders(r: L7Rule): Json[] {
  const out: Json[] = [];
  if (r.method !== undefined) out.push(regex(':method', r.method));
  if (r.path !== undefined) out.push(regex(':path', r.path));
  if (r.host !== undefined) out.push(regex(':authority', r.host));
  for (const h of r.headers) out.push(headerIs(h));
  for (const h of r.headerMatches) if (!h.mismatch) out.push(headerIs(h));
  return out;
}

export function cidrRange(prefix: string): Json {
  const c = parseCidr(prefix);
  const [addr, len] = prefix.split('/');
  return { address_prefix: addr, prefix_len: len !== undefined ? Number(len) : c?.v6 ? 128 : 32 };
}

/** Envoy's RBAC sets (or_ids, and_rules, ...) want two or more members; one stands for itself. */
export function setOf<K extends string>(key: K, inner: string, items: Json[], none: Json): Json {
  if (items.length === 0) return none;
  if (items.length === 1) return items[0];
  return { [key]: { [inner]: items } };
}

/** Addresses of the peers, minus their except prefixes, as `field` (direct_remote_ip or destination_ip) matchers. */
export function peerMatchers(peers: L7Peer[], field: string, kind: 'principal' | 'permission'): Json {
  const [orKey, orInner, andKey, andInner, notKey] =
    kind === 'principal' ? ['or_ids', 'ids', 'and_ids', 'ids', 'not_id'] : ['or_rules', 'rules', 'and_rules', 'rules', 'not_rule'];
  const nothing = { [notKey]: { any: true } };
  const each = peers
    .filter((p) => p.prefixes.length > 0)
    .map((p) => {
      const inside = setOf(orKey, orInner, p.prefixes.map((x) => ({ [field]: cidrRange(x) })), nothing);
      if (!p.except.length) return inside;
      const outside = { [notKey]: setOf(orKey, orInner, p.except.map((x) => ({ [field]: cidrRange(x) })), nothing) };
      return { [andKey]: { [andInner]: [inside, outside] } };
    });
  return setOf(orKey, orInner, each, nothing);
}
