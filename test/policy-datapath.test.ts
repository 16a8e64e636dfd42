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
