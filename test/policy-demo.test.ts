// The seed's Star Wars demo through the pure policy room: rule1 at L3/L4, then
// with its L7 rule, as entries, L7 listener input and trace verdicts.
import t from 'tap';
import { ReservedIdentity, lookupVerdict, trace, type PolicyResult } from '../src/policy/index.js';
import { compute, demoPods, rule1, rule1L7 } from './helpers/policy-world.js';

const ep = (r: PolicyResult, pod: string) => r.state.endpoints.find((e) => e.pod === `default/${pod}`)!;
const verdict = (r: PolicyResult, to: string, from: string, port: number) =>
  lookupVerdict(r.state.entries, { endpoint: ep(r, to).endpoint, direction: 'ingress', identity: ep(r, from).identity, proto: 6, port })?.verdict;

t.test('no policy: nothing enforced, no entries', async (t) => {
  const r = compute(demoPods);
  t.same(r.issues, []);
  t.equal(r.state.entries.length, 0);
  t.same(r.state.endpoints.map((e) => [e.pod, e.ingressEnforced, e.egressEnforced]), [
    ['default/deathstar', false, false],
    ['default/tiefighter', false, false],
    ['default/xwing', false, false],
  ]);
  t.equal(trace(r, { from: 'default/xwing', to: 'default/deathstar', port: 80 }).decidedBy.reason, 'not-enforced');
});

t.test('rule1: ingress from org=empire on TCP 80', async (t) => {
  const r = compute([...demoPods, rule1]);
  t.same(r.issues, []);
  const ds = ep(r, 'deathstar');
  t.ok(ds.ingressEnforced, 'deathstar ingress enforced');
  t.notOk(ds.egressEnforced, 'its egress is not');
  t.notOk(ep(r, 'xwing').ingressEnforced, 'xwing is not selected');
  t.not(ep(r, 'tiefighter').identity, ep(r, 'deathstar').identity, 'different label sets, different identities');
  t.ok(ep(r, 'xwing').identity >= 256 && ep(r, 'xwing').identity < 65536, 'cluster identity range');
  // Exactly: TCP 80 from tiefighter's and deathstar's identities (both org=empire); nothing else.
  const mine = r.state.entries.filter((e) => e.endpoint === ds.endpoint);
  t.same(
    mine.map((e) => [e.identity, e.proto, e.port, e.portPrefixLen, e.verdict]).sort(),
    [ep(r, 'deathstar').identity, ep(r, 'tiefighter').identity].sort().map((id) => [id, 6, 80, 16, 'allow']).sort(),
  );
  t.equal(r.state.entries.length, mine.length, 'no entries for unselected endpoints');
  t.equal(verdict(r, 'deathstar', 'tiefighter', 80), 'allow');
  t.equal(verdict(r, 'deathstar', 'xwing', 80), undefined, 'no entry: default deny drops it');
  t.equal(verdict(r, 'deathstar', 'tiefighter', 443), undefined, 'other ports closed');

  const ok = trace(r, { from: 'default/tiefighter', to: 'default/deathstar', port: 80, method: 'POST', path: '/v1/request-landing' });
  t.equal(ok.verdict, 'allow');
  t.match(ok.decidedBy, { direction: 'ingress', reason: 'rule', policy: 'CiliumNetworkPolicy default/rule1', field: 'spec.ingress[0].toPorts[0].ports[0]' });
  const no = trace(r, { from: 'default/xwing', to: 'default/deathstar', port: 80 });
  t.equal(no.verdict, 'deny');
  t.match(no.decidedBy, { direction: 'ingress', reason: 'default-deny', policy: 'CiliumNetworkPolicy default/rule1' });
  t.equal(no.httpStatus, undefined, 'dropped, not answered');
  t.equal(trace(r, { from: 'default/tiefighter', to: 'default/deathstar', port: 8080 }).verdict, 'deny');
  t.equal(trace(r, { from: 'default/deathstar', to: 'default/xwing', port: 80 }).decidedBy.reason, 'not-enforced');

  // The ipcache maps every pod address to its identity and the rest to world.
  for (const e of r.state.endpoints) t.ok(r.state.ipcache.some((c) => c.prefix === `${e.ip}/32` && c.identity === e.identity), `${e.pod} in the ipcache`);
  t.ok(r.state.ipcache.some((c) => c.prefix === '0.0.0.0/0' && c.identity === ReservedIdentity.World));
});

t.test('rule1 with L7: POST /v1/request-landing only', async (t) => {
  const r = compute([...demoPods, rule1L7]);
  t.same(r.issues, []);
  const ds = ep(r, 'deathstar');
  const mine = r.state.entries.filter((e) => e.endpoint === ds.endpoint);
  t.equal(mine.length, 2);
  for (const e of mine) t.match(e, { proto: 6, port: 80, portPrefixLen: 16, verdict: 'redirect', listener: `policy/ingress/${ds.identity}/tcp/80` });
  t.equal(r.l7.length, 1);
  const l = r.l7[0];
  t.match(l, { listener: `policy/ingress/${ds.identity}/tcp/80`, direction: 'ingress', port: 80, proto: 'TCP', identity: ds.identity });
  t.same(l.endpoints, [{ pod: 'default/deathstar', ip: '10.0.1.12', endpoint: ds.endpoint }]);
  t.equal(l.rules.length, 1);
  t.match(l.rules[0], { policy: 'CiliumNetworkPolicy default/rule1', field: 'spec.ingress[0].toPorts[0].rules.http[0]', method: 'POST', path: '/v1/request-landing', headers: [], headerMatches: [] });
  const peers = l.rules[0].peers;
  if (peers === 'any') throw new Error('want peers by identity');
  t.same(
    peers.map((p) => [p.identity, p.prefixes, p.except]).sort(),
    [
      [ep(r, 'tiefighter').identity, ['10.0.1.11/32'], []],
      [ds.identity, ['10.0.1.12/32'], []],
    ].sort(),
  );

  const land = trace(r, { from: 'default/tiefighter', to: 'default/deathstar', port: 80, method: 'POST', path: '/v1/request-landing' });
  t.equal(land.verdict, 'allow');
  t.match(land.decidedBy, { reason: 'l7-rule', field: 'spec.ingress[0].toPorts[0].rules.http[0]', listener: l.listener });
  const exhaust = trace(r, { from: 'default/tiefighter', to: 'default/deathstar', port: 80, method: 'PUT', path: '/v1/exhaust-port' });
  t.equal(exhaust.verdict, 'deny');
  t.equal(exhaust.httpStatus, 403, 'Envoy answers 403');
  t.match(exhaust.decidedBy, { reason: 'l7-no-match', policy: 'CiliumNetworkPolicy default/rule1' });
  // Anchored: a longer path is not a match.
  t.equal(trace(r, { from: 'default/tiefighter', to: 'default/deathstar', port: 80, method: 'POST', path: '/v1/request-landing/x' }).verdict, 'deny');
  t.equal(trace(r, { from: 'default/tiefighter', to: 'default/deathstar', port: 80 }).decidedBy.verdict, 'redirect', 'without a request: redirected');
  t.equal(trace(r, { from: 'default/xwing', to: 'default/deathstar', port: 80, method: 'POST', path: '/v1/request-landing' }).decidedBy.reason, 'default-deny', 'xwing never reaches Envoy');
});
