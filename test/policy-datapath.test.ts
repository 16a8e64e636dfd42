// L3/L4 policy in the kernel (bpf/policy.c on TCX), driven by a hand-built
// PolicyDatapathState through the reconciler, with pods wired as by a routing
// CNI and the attacher finding their veths by itself in the node netns.
import t from 'tap';
import { entry, EP, ID, IP, outcomes, policyWorld } from './helpers/policy-world.js';

const TCP = 6;
const http = (host: string, count = 1) => ({ op: 'http', host, port: 80, count });

t.test('ingress policy: the allowed identity connects, others and other ports time out, unselected pods stay open', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  t.same(w.reconciler.apply(w.state({ enforce: { s: ['ingress'] }, entries: [entry(EP.s, 'ingress', ID.x, TCP, 80, 'allow')] })).errors, []);
  const before = w.reconciler.dropCounters()['no-allow'];
  const [fromX, xOther, xOpen] = w.pods.x.client([http(IP.s, 2), { op: 'tcp', host: IP.s, port: 8080 }, http(IP.u)]);
  const [fromY, yOpen] = w.pods.y.client([http(IP.s), http(IP.u)]);
  t.same(outcomes(fromX), ['200 deathstar', '200 deathstar'], 'x (allowed identity) reaches s:80');
  t.same(outcomes(xOther), ['timeout'], 'x to s:8080: default deny once s is enforced');
  t.same(outcomes(fromY), ['timeout'], 'y (other identity) times out');
  t.same([outcomes(xOpen), outcomes(yOpen)], [['200 open'], ['200 open']], 'u, which no policy selects, stays open');
  t.ok(w.reconciler.dropCounters()['no-allow'] > before, 'the drops are counted');
});

t.test('egress deny to a world CIDR blocks it; cluster traffic and other pods pass', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  t.same(w.reconciler.apply(w.state({ entries: [entry(EP.x, 'egress', ID.worldNet, 0, 0, 'deny')] })).errors, []);
  const before = w.reconciler.dropCounters()['deny-rule'];
  const [toWorld, toS, toU] = w.pods.x.client([http(IP.w), http(IP.s), http(IP.u)]);
  const [yToWorld] = w.pods.y.client([http(IP.w)]);
  t.same(outcomes(toWorld), ['timeout'], 'x to the world CIDR times out');
  t.same([outcomes(toS), outcomes(toU)], [['200 deathstar'], ['200 open']], 'x to pods passes');
  t.same(outcomes(yToWorld), ['200 world'], 'y, whose egress no rule denies, reaches the world address');
  t.ok(w.reconciler.dropCounters()['deny-rule'] > before, 'the deny is counted');
});

t.test('replies of allowed connections pass both ways while both ends enforce both directions', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  const state = w.state({
    enforce: { x: ['ingress', 'egress'], s: ['ingress', 'egress'] },
    entries: [entry(EP.x, 'egress', ID.s, TCP, 80, 'allow'), entry(EP.s, 'ingress', ID.x, TCP, 80, 'allow')],
  });
  t.same(w.reconciler.apply(state).errors, []);
  const [xToS, xToU] = w.pods.x.client([http(IP.s, 3), http(IP.u)]);
  t.same(outcomes(xToS), Array(3).fill('200 deathstar'), "x reaches s:80; the replies pass s's egress and x's ingress");
  t.same(outcomes(xToU), ['timeout'], "x's egress allows nothing else");
  const [sToX] = w.pods.s.client([http(IP.x)]);
  const [uToX] = w.pods.u.client([http(IP.x)]);
  t.same([outcomes(sToX), outcomes(uToX)], [['timeout'], ['timeout']], "new connections to x are not replies: x's ingress drops them");
});
