// Gateway API HTTPRoute in mesh mode (GAMMA), served to a real Envoy.
import t from 'tap';
import { startAgent } from './helpers/agent.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { closeHttpAgents, httpGet, startBackend } from './helpers/net.js';
import { endpointSlice, httpRoute, service } from './helpers/kube.js';
import { assertSplit } from './helpers/stats.js';

t.teardown(closeHttpAgents);

t.test('HTTPRoute on a Service: 70/30 split, header match, unmatched rejected', async (t) => {
  const v1 = await startBackend(t, 'v1');
  const v2 = await startBackend(t, 'v2');
  const route = httpRoute('echo', {
    parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 8080 }],
    rules: [
      { matches: [{ headers: [{ name: 'x-version', value: 'v2' }] }], backendRefs: [{ name: 'echo-v2', port: 8080 }] },
      {
        matches: [{ path: { type: 'PathPrefix', value: '/api' } }],
        filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-routed-by', value: 'sluice' }] } }],
        backendRefs: [
          { name: 'echo-v1', port: 8080, weight: 70 },
          { name: 'echo-v2', port: 8080, weight: 30 },
        ],
      },
    ],
  });
  const node = 'gamma-node';
  const agent = await startAgent(
    t,
    {
      'svc.yaml': [
        service('echo', [{ port: 8080, name: 'http' }]),
        service('echo-v1', [{ port: 8080, name: 'http' }], { clusterIP: '10.96.0.21' }),
        service('echo-v2', [{ port: 8080, name: 'http' }], { clusterIP: '10.96.0.22' }),
        endpointSlice('echo-v1', 'http', v1.port, [{ ip: '127.0.0.1' }]),
        endpointSlice('echo-v2', 'http', v2.port, [{ ip: '127.0.0.1' }]),
      ],
      'route.yaml': [route],
    },
    { kube: true, nodeName: node },
  );
  t.same(agent.agent.issues(), []);
  const redirect = agent.agent.redirects.find((r) => r.service === 'default/echo');
  t.match(redirect, { port: 8080, listener: 'gamma/default/echo:8080' }, "the Service's traffic is steered to the route's listener");
  const port = redirect!.proxyPort;
  const envoy = await startEnvoy(t, agent.bootstrap(node, 'delta'));
  await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 20_000);
  await eventually(async () => (await envoy.configDump()).listeners['gamma/default/echo:8080'], 5000, 'the GAMMA listener');

  t.test('70/30 weights split 1000 requests within binomial bounds', async (t) => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const r = await httpGet(port, `/api/items/${i}`);
      if (r.status !== 200) t.fail(`status ${r.status}`);
      counts[r.backend!] = (counts[r.backend!] ?? 0) + 1;
      if (i === 0) t.equal(JSON.parse(r.body).headers['x-routed-by'], 'sluice', 'RequestHeaderModifier applied');
    }
    assertSplit(t, counts, { v1: 70, v2: 30 }, '70/30');
  });

  t.test('a header match routes to v2; a longer path prefix outranks it, as Gateway API orders matches', async (t) => {
    for (let i = 0; i < 20; i++) t.equal((await httpGet(port, '/x', { 'x-version': 'v2' })).backend, 'v2');
    let v1n = 0;
    for (let i = 0; i < 40; i++) if ((await httpGet(port, '/api/x', { 'x-version': 'v2' })).backend === 'v1') v1n++;
    t.ok(v1n > 0, 'the /api rule, not the header rule, served /api/x');
  });

  t.test('a request matching no rule is rejected', async (t) => {
    const r = await httpGet(port, '/not-routed');
    t.equal(r.status, 404);
    t.equal(r.backend, undefined, 'no backend saw it');
    t.equal((await httpGet(port, '/apiary')).status, 404, 'PathPrefix matches whole path elements');
  });
});
