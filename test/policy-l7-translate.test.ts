// The policy L7 translator's shapes, without Envoy (policy-l7-envoy.test.ts
// has Envoy accept and run them): who the RBAC admits, which filter chain
// applies headerMatches actions to whom, and where problems land.
import t from 'tap';
import { IdsExhausted } from '../src/ids/stable-ids.js';
import { anyToJson } from '../src/proto/any.js';
import type { L7Listener, L7Rule } from '../src/policy/index.js';
import { translatePolicyListeners } from '../src/translate/policy-l7.js';
import { routeGroups } from '../src/translate/policy-header-actions.js';
import { rbacFilter } from '../src/translate/policy-rbac.js';
import { PROXY_UPSTREAM_MARK } from '../src/translate/proxy-mark.js';
import { cnp, compute, demoPods, rule1L7 } from './helpers/policy-world.js';

const ctx = { nodeName: 'node-a', proxyPort: () => 13001 };
const rule = (over: Partial<L7Rule>): L7Rule => ({ policy: 'CiliumNetworkPolicy default/p', field: 'spec.ingress[0].toPorts[0].rules.http[0]', peers: 'any', headers: [], headerMatches: [], ...over });
const listener = (rules: L7Rule[], direction: 'ingress' | 'egress' = 'ingress'): L7Listener => ({
  listener: `policy/${direction}/300/tcp/80`,
  direction,
  identity: 300,
  proto: 'TCP',
  port: 80,
  endpoints: [{ pod: 'default/web', ip: '10.0.0.5', endpoint: 1 }],
  rules,
});
const policies = (l: L7Listener) => Object.values(rbacFilter(l).typed_config.rules.policies) as any[];

t.test('the Star Wars L7 rule: one listener, its cluster, the RBAC naming the rule', async (t) => {
  const r = compute([...demoPods, rule1L7]);
  const { units, ports } = translatePolicyListeners(r.l7, ctx, r.issues);
  t.same(units.map((u) => [u.object, u.issues, u.resources.length]), [['CiliumNetworkPolicy default/rule1', [], 2]]);
  t.same([...ports], [[r.l7[0].listener, 13001]]);
  const [l, c] = units[0].resources.map((a) => anyToJson(a) as any);
  t.match(l, { name: r.l7[0].listener, transparent: true, freebind: true, address: { socketAddress: { address: '127.0.0.1', portValue: 13001 } } });
  t.same(l.listenerFilters.map((f: any) => f.name), ['envoy.filters.listener.original_dst']);
  t.equal(l.filterChains.length, 1, 'no header actions: one chain');
  const hcm = l.filterChains[0].filters[0].typedConfig;
  t.same(hcm.httpFilters.map((f: any) => f.name), ['envoy.filters.http.rbac', 'envoy.filters.http.router']);
  const rbac = hcm.httpFilters[0].typedConfig.rules;
  t.equal(rbac.action ?? 'ALLOW', 'ALLOW', 'ALLOW (the default, so proto3 JSON leaves it out)');
  t.same(Object.keys(rbac.policies), ['0: CiliumNetworkPolicy default/rule1 spec.ingress[0].toPorts[0].rules.http[0]']);
  const p = Object.values(rbac.policies)[0] as any;
  t.same(p.permissions[0].andRules.rules.map((x: any) => [x.header.name, x.header.stringMatch.safeRegex.regex]), [[':method', 'POST'], [':path', '/v1/request-landing']]);
  const ids = p.principals[0].orIds.ids.map((x: any) => `${x.directRemoteIp.addressPrefix}/${x.directRemoteIp.prefixLen}`).sort();
  t.same(ids, ['10.0.1.11/32', '10.0.1.12/32'], 'the empire: tiefighter and deathstar, by address');
  t.match(c, { name: `${r.l7[0].listener}/original-dst`, type: 'ORIGINAL_DST', lbPolicy: 'CLUSTER_PROVIDED' });
  t.same(c.upstreamBindConfig.socketOptions, [{ level: '1', name: '36', intValue: String(PROXY_UPSTREAM_MARK) }], 'SO_MARK before bind (STATE_PREBIND, the default)');
  t.equal(hcm.localReplyConfig.mappers[0].body.inlineString, 'Access denied by policy\n');
});

t.test('peers: any, prefixes minus except, and egress destinations', async (t) => {
  t.same(policies(listener([rule({})]))[0].principals, [{ any: true }]);
  const cidr = { identity: 1 << 24, prefixes: ['10.1.0.0/16'], except: ['10.1.2.0/24', '10.1.3.4/32'] };
  const [p] = policies(listener([rule({ peers: [cidr] })]));
  t.same(p.principals, [{ and_ids: { ids: [
    { direct_remote_ip: { address_prefix: '10.1.0.0', prefix_len: 16 } },
    { not_id: { or_ids: { ids: [{ direct_remote_ip: { address_prefix: '10.1.2.0', prefix_len: 24 } }, { direct_remote_ip: { address_prefix: '10.1.3.4', prefix_len: 32 } }] } } },
  ] } }]);
  t.same(p.permissions, [{ any: true }], 'a rule with no request conditions admits any request of its peers');
  const [e] = policies(listener([rule({ peers: [cidr] })], 'egress'));
  t.same(e.principals, [{ any: true }], 'egress: the peer is the destination...');
  t.match(e.permissions[0], { and_ids: undefined });
  t.same(e.permissions[0].and_rules.rules[0], { destination_ip: { address_prefix: '10.1.0.0', prefix_len: 16 } }, '...checked as the original destination');
  const [none] = policies(listener([rule({ peers: [{ identity: 400, prefixes: [], except: [] }] })]));
  t.same(none.principals, [{ not_id: { any: true } }], 'a peer holding no address admits nobody');
});

t.test('headerMatches actions: a filter chain per peer group, routes per combination of mismatches', async (t) => {
  const a = { identity: 300, prefixes: ['10.0.0.1/32'], except: [] };
  const b = { identity: 301, prefixes: ['10.0.0.2/32'], except: [] };
  const l = listener([
    rule({ peers: [a], path: '/a', headerMatches: [{ name: 'X-One', value: '1', mismatch: 'REPLACE' }, { name: 'X-Two', value: '2', mismatch: 'DELETE' }] }),
    rule({ peers: [a, b], path: '/b' }),
    rule({ peers: [b], path: '/c', headerMatches: [{ name: 'X-Log', value: 'y', mismatch: 'LOG' }] }),
  ]);
  const groups = routeGroups(l, 'c');
  t.equal(groups.length, 2, "a's chain, and the default for everyone else");
  t.same(groups[0].match, { direct_source_prefix_ranges: [{ address_prefix: '10.0.0.1', prefix_len: 32 }] });
  t.equal(groups[0].routes.length, 5, 'four combinations of two action headers, then straight on');
  const mods = groups[0].routes.map((r) => [r.request_headers_to_add?.map((h: any) => `${h.header.key}=${h.header.value}`) ?? [], r.request_headers_to_remove ?? []]);
  t.same(mods, [[[], []], [['x-one=1'], []], [[], ['x-two']], [['x-one=1'], ['x-two']], [[], []]]);
  t.same(groups[0].routes[3].match.headers.slice(1), [
    { name: 'x-one', string_match: { exact: '1' }, invert_match: true, treat_missing_header_as_empty: true },
    { name: 'x-two', string_match: { exact: '2' }, invert_match: true, treat_missing_header_as_empty: true },
  ]);
  t.same(groups[1], { routes: [{ match: { prefix: '/' }, route: { cluster: 'c', timeout: '0s' } }] }, 'b and unknown peers: no rewriting');
  t.notOk(policies(l).some((p) => JSON.stringify(p).includes('x-one')), 'the RBAC does not require a header that has a mismatch action');
  t.ok(JSON.stringify(policies(l)[2]).includes('/c'));

  const egress = routeGroups(listener([rule({ peers: [{ identity: 1 << 24, prefixes: ['10.1.0.0/16'], except: ['10.1.0.9/32'] }], headerMatches: [{ name: 'X', value: 'v', mismatch: 'ADD' }] })], 'egress'), 'c');
  t.same(egress.map((g) => g.match), [{ prefix_ranges: [{ address_prefix: '10.1.0.0', prefix_len: 16 }] }, { prefix_ranges: [{ address_prefix: '10.1.0.9', prefix_len: 32 }] }, undefined], 'egress: by original destination');
  t.equal(egress[0].routes.length, 3);
});

t.test('headerMatches an address inside a peer takes from another identity get that identity\'s chain', async (t) => {
  const wide = { identity: 1 << 24, prefixes: ['10.1.0.0/16'], except: ['10.1.0.9/32'] };
  const groups = routeGroups(listener([rule({ peers: [wide], headerMatches: [{ name: 'X', value: 'v', mismatch: 'ADD' }] })]), 'c');
  // 10.1.0.9 is another identity's: no rule with actions applies to it, but it needs a chain of its own, or the /16's would catch it.
  t.same(groups.map((g) => g.match?.direct_source_prefix_ranges?.map((r: any) => r.address_prefix)), [['10.1.0.0'], ['10.1.0.9'], undefined]);
  t.equal(groups[1].routes.length, 1, 'and that chain does not rewrite');
});

t.test('problems land on the policies: a rewrite of a pseudo-header, no proxy port', async (t) => {
  const r = compute([
    ...demoPods,
    cnp('hosty', {
      endpointSelector: { matchLabels: { class: 'deathstar' } },
      ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ path: '/x', headerMatches: [{ name: 'Host', value: 'a', mismatch: 'REPLACE' }] }, { path: '/y' }] } }] }],
    }),
    cnp('other', { endpointSelector: { matchLabels: { class: 'deathstar' } }, ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ path: '/z' }] } }] }] }),
    cnp('broken', { endpointSelector: {}, ingress: [{ fromEntities: ['nowhere'] }] }),
  ]);
  const origins = new Map(r.compiled.ruleSets.map((rs) => [rs.policy, rs.origin!]));
  const { units } = translatePolicyListeners(r.l7, ctx, r.issues, origins);
  const shared = units.find((u) => u.object === 'CiliumNetworkPolicy default/hosty, CiliumNetworkPolicy default/other')!;
  t.ok(shared, 'policies sharing a listener share a unit, named after both');
  t.same(shared.issues.map((i) => [i.object, i.field, i.origin]), [['CiliumNetworkPolicy default/hosty', 'spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].mismatch', { file: 'policy.yaml', index: 3 }]]);
  const rbac = JSON.stringify(anyToJson(shared.resources[0]));
  t.notOk(rbac.includes('/x'), 'the rule Envoy cannot carry out is not enforced: its requests are refused');
  t.ok(rbac.includes('/y') && rbac.includes('/z'), 'the rest are');
  const broken = units.find((u) => u.object === 'CiliumNetworkPolicy default/broken')!;
  t.equal(broken.resources.length, 0);
  t.match(broken.issues[0], { object: 'CiliumNetworkPolicy default/broken', field: /fromEntities/ });

  const full = translatePolicyListeners(compute([...demoPods, rule1L7]).l7, { nodeName: 'node-a', proxyPort: () => { throw new IdsExhausted('no free node-local proxy port'); } });
  t.same(full.units[0].resources, []);
  t.same(full.ports.size, 0, 'a listener without a port is not served...');
  t.match(full.units[0].issues[0], { object: 'CiliumNetworkPolicy default/rule1', field: 'rules.http', message: /not served, so its L7 rules are not enforced: no free node-local proxy port/ });
});


t.test('a listener whose input did not change is not encoded again', async (t) => {
  const memo = new Map();
  const r = compute([...demoPods, rule1L7]);
  const first = translatePolicyListeners(r.l7, ctx, [], new Map(), memo).units[0].resources;
  const again = translatePolicyListeners(r.l7, ctx, [], new Map(), memo).units[0].resources;
  t.ok(first.every((a, i) => a === again[i]), 'the same encoded resources');
  const changed = compute([...demoPods, cnp('rule1', { endpointSelector: { matchLabels: { class: 'deathstar' } }, ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ method: 'PUT' }] } }] }] })]);
  const next = translatePolicyListeners(changed.l7, ctx, [], new Map(), memo).units[0].resources;
  t.not(next[0], first[0], 'a changed rule is');
  t.equal(memo.size, 1, 'and only the current listeners are kept');
});
