// Live policy changes through `sluice agent --datapath` and the node's Envoy:
// request loops run while an L7 policy is added, changed and removed. The
// subject flow's verdict flips (dropped, 403, 200, dropped); flows from other
// pods, to other ports and to other pods see no error at all.
import t from 'tap';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { eventually } from './helpers/envoy.js';
import { agentPolicyWorld, outcome } from './helpers/policy-agent-world.js';
import { cnp } from './helpers/policy-world.js';

const C1 = '10.0.3.10';
const C2 = '10.0.3.11';
const S = '10.0.3.12';
const U = '10.0.3.13';

const from = (...apps: string[]) => [{ matchExpressions: [{ key: 'app', operator: 'In', values: apps }] }];
const tcp = (...ports: number[]) => [{ ports: ports.map((p) => ({ port: String(p), protocol: 'TCP' })) }];
// c1 may use s:8080, c2 s:80 and s:8080, at L3/L4.
const base = cnp('base', { endpointSelector: { matchLabels: { app: 's' } }, ingress: [{ fromEndpoints: from('c1'), toPorts: tcp(8080) }, { fromEndpoints: from('c2'), toPorts: tcp(80, 8080) }] });
const l7 = (path: string) =>
  cnp('l7', { endpointSelector: { matchLabels: { app: 's' } }, ingress: [{ fromEndpoints: from('c1'), toPorts: [{ ...tcp(80)[0], rules: { http: [{ method: 'GET', path }] } }] }] });

/** Consecutive equal outcomes as one. */
const runs = (xs: string[]) => xs.filter((x, i) => i === 0 || xs[i - 1] !== x);

t.test('an L7 policy added, changed and removed under load: its verdicts flip, unrelated flows see no error', async (t) => {
  const w = await agentPolicyWorld(
    t,
    [
      { name: 'c1', ip: C1, labels: { app: 'c1' } },
      { name: 'c2', ip: C2, labels: { app: 'c2' } },
      { name: 's', ip: S, labels: { app: 's' }, http: [80, 8080] },
      { name: 'u', ip: U, labels: { app: 'u' }, http: [80] },
    ],
    { proxyPorts: [20630, 20639] },
  );
  w.write('base.yaml', [base]);
  await eventually(() => w.http('c1', S, 80) === 'timeout', 30_000, 'the base policy');
  const probe = () => w.http('c1', S, 80, { path: '/private' });

  const stop = join(w.dir, 'stop-loops');
  const loop = (pod: string, host: string, port: number, path = '/') => w.pods[pod].clientAsync([{ op: 'http', host, port, path, until: stop }]).then(([rs]) => rs.map((r: any) => outcome(r)));
  const subject = loop('c1', S, 80, '/private');
  const unrelated = { 'c2 -> s:80': loop('c2', S, 80), 'c2 -> s:8080': loop('c2', S, 8080), 'c1 -> s:8080': loop('c1', S, 8080), 'c2 -> u:80': loop('c2', U, 80) };
  let stopped = false;
  t.teardown(() => void (stopped || writeFileSync(stop, '')));

  w.write('l7.yaml', [l7('/public')]);
  t.equal(await eventually(() => probe() === '403' && '403', 30_000, 'the L7 rule'), '403', 'adding the L7 policy: GET /private gets 403 from Envoy');
  t.equal(w.http('c1', S, 80, { path: '/public' }), '200', 'GET /public passes');
  w.write('l7.yaml', [l7('/private')]);
  t.equal(await eventually(() => probe() === '200' && '200', 30_000, 'the changed rule'), '200', 'changing the rule: GET /private passes');
  t.equal(w.http('c1', S, 80, { path: '/public' }), '403', 'and GET /public gets 403');
  w.write('l7.yaml', []);
  t.equal(await eventually(() => probe() === 'timeout' && 'timeout', 30_000, 'the L7 policy to go'), 'timeout', 'removing the L7 policy: c1 is dropped on port 80 again');
  writeFileSync(stop, '');
  stopped = true;

  const seen = await subject;
  const r = runs(seen);
  t.ok(r.indexOf('403') >= 0, `the loop saw the 403 (${r.join(' ')})`);
  t.ok(r.indexOf('200', r.indexOf('403')) > r.indexOf('403'), 'then the 200');
  t.ok(r.lastIndexOf('timeout') > r.indexOf('200', r.indexOf('403')), 'then the drop');
  t.notOk(seen.slice(0, seen.indexOf('403')).includes('200'), 'GET /private never passed before a rule allowed it');
  for (const [name, p] of Object.entries(unrelated)) {
    const rs = await p;
    t.ok(rs.length >= 10, `${name}: ${rs.length} requests`);
    t.same(rs.filter((x) => x !== '200'), [], `${name}: no errors`);
  }
});
