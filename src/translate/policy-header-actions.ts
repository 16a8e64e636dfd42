// headerMatches with a mismatch action on stock Envoy. The RBAC filter does not
// require such a header; what happens on a mismatch is done here:
// - ADD, DELETE, REPLACE: routes. Per rule, one route for each combination of
//   its action headers matching or not (they exclude each other, so the order
//   among them does not matter), each adding, removing or overwriting the
//   mismatched ones. Routes cannot see the peer, so when rules with actions
//   name peers, the listener gets a filter chain per group of peer prefixes
//   that the same rules apply to, each with the routes of just those rules.
// - LOG: an access log whose filter is the rule's request conditions and the
//   mismatch. It cannot see the peer either, so it may also log a request that
//   another peer's rule admitted: a log line too many, never a changed request.
import type { TranslationIssue } from '../issues/issue.js';
import type { L7Listener, L7Rule } from '../policy/l7.js';
import { headerIs, ruleHeaders, setOf, cidrRange, type HeaderMatch } from './policy-match.js';

type Json = Record<string, any>;
type Rewrite = HeaderMatch & { mismatch: 'ADD' | 'DELETE' | 'REPLACE'; index: number };

const rewrites = (r: L7Rule): Rewrite[] =>
  r.headerMatches.flatMap((h, index) => (h.mismatch === 'ADD' || h.mismatch === 'DELETE' || h.mismatch === 'REPLACE' ? [{ ...h, mismatch: h.mismatch, index }] : []));

/** Headers Envoy's route config refuses to add or remove: pseudo-headers and Host. */
const unrewritable = (name: string) => name.startsWith(':') || name.toLowerCase() === 'host';

/** Rewrites that stock Envoy cannot do, as issues on their policies. */
export function headerActionIssues(l: L7Listener): TranslationIssue[] {
  return l.rules.flatMap((r) =>
    rewrites(r)
      .filter((h) => unrewritable(h.name))
      .map((h) => ({ object: r.policy, field: `${r.field}.headerMatches[${h.index}].mismatch`, message: `${h.mismatch} of "${h.name}": Envoy cannot add, remove or overwrite a pseudo-header or Host; this rule is not enforced` })),
  );
}

/** Rules the translator leaves out: those whose actions Envoy cannot perform. */
export const enforceable = (r: L7Rule) => !rewrites(r).some((h) => unrewritable(h.name));

/** On to the original destination, with no timeout the application did not have (Envoy's default is 15 s). */
const forward = (cluster: string) => ({ cluster, timeout: '0s' });

function rewriteRoutes(r: L7Rule, cluster: string): Json[] {
  const acts = rewrites(r);
  const base = ruleHeaders(r);
  const routes: Json[] = [];
  for (let mask = 0; mask < 1 << acts.length; mask++) {
    const mismatched = acts.filter((_, i) => mask & (1 << i));
    const headers = [...base, ...acts.map((h, i) => headerIs(h, (mask & (1 << i)) !== 0))];
    const add = mismatched
      .filter((h) => h.mismatch !== 'DELETE')
      .map((h) => ({ header: { key: h.name.toLowerCase(), value: h.value ?? '' }, append_action: h.mismatch === 'ADD' ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD' }));
    const remove = mismatched.filter((h) => h.mismatch === 'DELETE').map((h) => h.name.toLowerCase());
    routes.push({
      match: { prefix: '/', headers },
      route: forward(cluster),
      ...(add.length ? { request_headers_to_add: add } : {}),
      ...(remove.length ? { request_headers_to_remove: remove } : {}),
    });
  }
  return routes;
}

export interface RouteGroup {
  /** Filter chain match on the peer's prefixes; undefined for the default chain. */
  match?: Json;
  routes: Json[];
}

/** The route groups of a listener: one default, plus one per peer-prefix group with rules of their own. */
export function routeGroups(l: L7Listener, cluster: string): RouteGroup[] {
  const rules = l.rules.filter((r) => enforceable(r) && rewrites(r).length > 0);
  const straight = { match: { prefix: '/' }, route: forward(cluster) };
  const routesFor = (idx: number[]) => [...idx.flatMap((i) => rewriteRoutes(rules[i], cluster)), straight];
  const anyPeer = rules.flatMap((r, i) => (r.peers === 'any' ? [i] : []));
  // Every prefix a rule with actions names, and those carved out of them, goes to the
  // chain of the rules that apply to it; the longest prefix picks the chain, as the ipcache does.
  const byKey = new Map<string, { idx: number[]; prefixes: string[] }>();
  const prefixes = new Set(rules.flatMap((r) => (r.peers === 'any' ? [] : r.peers.flatMap((p) => [...p.prefixes, ...p.except]))));
  for (const x of prefixes) {
    const idx = rules.flatMap((r, i) => (r.peers === 'any' || r.peers.some((p) => p.prefixes.includes(x)) ? [i] : []));
    const key = idx.join(',');
    const g = byKey.get(key) ?? { idx, prefixes: [] };
    g.prefixes.push(x);
    byKey.set(key, g);
  }
  const field = l.direction === 'ingress' ? 'direct_source_prefix_ranges' : 'prefix_ranges';
  return [
    ...[...byKey.values()].map((g) => ({ match: { [field]: g.prefixes.map(cidrRange) }, routes: routesFor(g.idx) })),
    { routes: routesFor(anyPeer) },
  ];
}

const escapeFormat = (s: string) => s.replaceAll('%', '%%');

/** One access log per LOG headerMatches entry, writing to Envoy's stdout. */
export function logActions(l: L7Listener): Json[] {
  return l.rules.flatMap((r) =>
    r.headerMatches.flatMap((h, j) => {
      if (h.mismatch !== 'LOG') return [];
      const filters = [...ruleHeaders(r), headerIs(h, true)].map((header) => ({ header_filter: { header } }));
      const what = escapeFormat(`${r.policy} ${r.field}.headerMatches[${j}]: header "${h.name}" mismatch, request allowed`);
      return [
        {
          name: 'envoy.access_loggers.stdout',
          filter: setOf('and_filter', 'filters', filters, {}),
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
            log_format: { text_format_source: { inline_string: `sluice policy: ${what}: %REQ(:METHOD)% %REQ(:PATH)% from %DOWNSTREAM_REMOTE_ADDRESS% to %DOWNSTREAM_LOCAL_ADDRESS% -> %RESPONSE_CODE%\n` } },
          },
        },
      ];
    }),
  );
}
