// The seed's Star Wars demo end to end: `sluice agent --datapath` and the
// node's Envoy in a node netns, xwing, tiefighter and deathstar in pod netns
// behind Service deathstar. rule1 (L3/L4) drops the xwing in the kernel; its
// L7 version sends the tiefighter through Envoy, which answers 403 to what the
// rule does not allow; deleting the policies opens everything again.
import t from 'tap';
import { existsSync } from 'node:fs';
import { policyPinDir } from '../src/redirect/policy-object.js';
import { DENIED_BODY } from '../src/translate/policy-l7.js';
import { eventually } from './helpers/envoy.js';
import { endpointSlice, service } from './helpers/kube.js';
import { agentPolicyWorld } from './helpers/policy-agent-world.js';
import { rule1, rule1L7 } from './helpers/policy-world.js';

const VIP = '10.96.0.50';
const DEATHSTAR = '10.0.1.12';
const landing = { method: 'POST', path: '/v1/request-landing' };
const exhaust = { method: 'PUT', path: '/v1/exhaust-port' };

t.test('Star Wars: rule1 drops the xwing, its L7 rule gets a 403 from Envoy, deleting them opens access', async (t) => {
  const w = await agentPolicyWorld(
    t,
    [
      { name: 'xwing', ip: '10.0.1.10', labels: { org: 'alliance', class: 'xwing' } },
      { name: 'tiefighter', ip: '10.0.1.11', labels: { org: 'empire', class: 'tiefighter' } },
      { name: 'deathstar', ip: DEATHSTAR, labels: { org: 'empire', class: 'deathstar' }, http: [80, 8080] },
    ],
    { proxyPorts: [20610, 20619] },
  );
  w.write('service.yaml', [service('deathstar', [{ port: 80, name: 'http' }], { clusterIP: VIP }), endpointSlice('deathstar', 'http', 80, [{ ip: DEATHSTAR }])]);
  await eventually(() => w.http('xwing', VIP, 80, landing) === '200', 15_000, 'the Service');
  t.equal(w.http('tiefighter', VIP, 80, landing), '200', 'no policy: the tiefighter lands');
  t.equal(w.http('xwing', VIP, 80, landing), '200', 'no policy: so does the xwing');
  t.notOk(existsSync(policyPinDir(w.node.pinDir)), 'no policy selects a pod: no TC programs are loaded');

  w.write('policy.yaml', [rule1]);
  await eventually(() => w.http('xwing', VIP, 80, landing) === 'timeout', 30_000, 'rule1 to drop the xwing');
  const before = w.drops();
  const envoyBefore = await w.envoyDownstream();
  t.equal(w.http('xwing', VIP, 80, landing), 'timeout', 'rule1: the xwing times out');
  t.ok(w.drops()['no-allow'] > before['no-allow'], `dropped in the kernel and counted (no-allow ${before['no-allow']} -> ${w.drops()['no-allow']})`);
  t.equal(w.http('tiefighter', VIP, 80, landing), '200', 'rule1: the tiefighter lands');
  t.equal(w.http('tiefighter', DEATHSTAR, 8080), 'timeout', "rule1 selects the deathstar: its other ports are closed");
  t.equal(w.http('deathstar', '10.0.1.10', 80), 'ECONNREFUSED', "the deathstar's egress is not selected: it reaches the xwing (which has no server)");
  t.same(await w.envoyDownstream(), envoyBefore, 'without an L7 rule nothing is steered into Envoy');

  w.write('policy.yaml', [rule1L7]);
  await eventually(() => w.http('tiefighter', VIP, 80, exhaust) === '403', 30_000, 'the L7 rule');
  const l7Before = await w.envoyDownstream();
  t.equal(w.http('tiefighter', VIP, 80, { ...exhaust, body: true }), `403 ${DENIED_BODY}`, 'PUT /v1/exhaust-port: 403 from Envoy, saying why');
  t.equal(w.http('tiefighter', VIP, 80, landing), '200', 'POST /v1/request-landing: 200');
  const l7After = await w.envoyDownstream();
  t.equal(l7After.rq4xx - l7Before.rq4xx, 1, 'Envoy answered the 403');
  t.equal(l7After.rq2xx - l7Before.rq2xx, 1, 'and passed the landing on');
  const dropsL7 = w.drops();
  t.equal(w.http('xwing', VIP, 80, landing), 'timeout', 'the xwing is still dropped in the kernel');
  t.ok(w.drops()['no-allow'] > dropsL7['no-allow'], 'and counted');
  t.equal((await w.envoyDownstream()).cx, l7After.cx, 'the dropped xwing never reached Envoy');

  w.write('policy.yaml', []);
  await eventually(() => w.http('xwing', VIP, 80, landing) === '200', 30_000, 'the xwing to land once the policies go');
  t.equal(w.http('tiefighter', VIP, 80, exhaust), '200', 'PUT /v1/exhaust-port goes through again');
  t.equal(w.http('tiefighter', DEATHSTAR, 8080), '200', 'and the other port is open');
  const cx = (await w.envoyDownstream()).cx;
  t.equal(w.http('tiefighter', VIP, 80, landing), '200');
  t.equal((await w.envoyDownstream()).cx, cx, 'with the L7 rule gone its redirect went too');
});
