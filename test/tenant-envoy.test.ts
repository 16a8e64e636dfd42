// Tenant isolation served to a real Envoy: a namespaced config cannot take
// another namespace's names, and a consumer route applies only to clients of
// its own namespace. Pods are stood in by loopback source addresses.
import { request } from 'node:http';
import t from 'tap';
import { startAgent } from './helpers/agent.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { freePort, startBackend } from './helpers/net.js';
import { ccec, cec, endpointSlice, httpRoute, service, splitResources } from './helpers/kube.js';

const T = 'type.googleapis.com/';

/** GET from a chosen loopback source address, on a fresh connection. */
function getFrom(source: string, port: number, path = '/'): Promise<{ status: number; backend?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, localAddress: source, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, backend: res.headers['x-backend'] as string | undefined }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

const pod = (name: string, namespace: string, ip: string, nodeName: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace },
  spec: { nodeName },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
});

t.test("a namespaced config cannot take prod's endpoints, whatever the order", async (t) => {
  const payments = await startBackend(t, 'payments');
  const evil = await startBackend(t, 'evil');
  const node = 'tenant-node';
  // The attacker's config comes first in the model, so on first-definer-wins it would keep the name.
  const hijack = cec('hijack', {
    resources: [
      { '@type': `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`, cluster_name: 'prod/payments:8080', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: evil.port } } } }] }] },
    ],
  }, 'attacker');
  const agent = await startAgent(t, {
    'a.yaml': [hijack],
    'b.yaml': [
      service('payments', [{ port: 8080, name: 'http' }], { namespace: 'prod' }),
      endpointSlice('payments', 'http', payments.port, [{ ip: '127.0.0.1' }], { namespace: 'prod' }),
      cec('front', { backendServices: [{ name: 'payments' }], resources: splitResources({ 'prod/payments:8080': 1 }) }, 'prod'),
    ],
  }, { kube: true, nodeName: node });
  const envoy = await startEnvoy(t, agent.bootstrap(node, 'delta'));
  await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 20_000);
  const port = await eventually(async () => (await envoy.configDump()).listeners['prod/front/listener']?.address?.socket_address?.port_value, 10_000, 'the prod listener');
  let evilHits = 0;
  for (let i = 0; i < 20; i++) {
    const r = await getFrom('127.0.0.1', port);
    t.equal(r.status, 200, 'served', { diagnostic: false });
    if (r.backend !== 'payments') evilHits++;
  }
  t.equal(evilHits, 0, "prod's traffic reaches prod's backend only");
  t.same(await envoy.clusterHosts('prod/payments:8080'), [`127.0.0.1:${payments.port}`], "Envoy holds prod's endpoints");
  t.same(agent.agent.issues(), [], "the attacker's resource is simply its own, under its namespace's prefix");
});

t.test('a consumer route applies to its namespace only; a cross-namespace backend needs a ReferenceGrant', async (t) => {
  const v1 = await startBackend(t, 'v1');
  const canary = await startBackend(t, 'canary');
  const mine = await startBackend(t, 'mine');
  const node = 'consumer-node';
  const parent = { parentRefs: [{ group: '', kind: 'Service', name: 'echo', namespace: 'prod', port: 8080 }] };
  const objects = (grant: boolean) => [
    service('echo', [{ port: 8080, name: 'http' }], { namespace: 'prod' }),
    service('echo-canary', [{ port: 8080, name: 'http' }], { namespace: 'prod', clusterIP: '10.96.0.31' }),
    service('mine', [{ port: 8080, name: 'http' }], { namespace: 'shop', clusterIP: '10.96.0.32' }),
    endpointSlice('echo', 'http', v1.port, [{ ip: '127.0.0.1' }], { namespace: 'prod' }),
    endpointSlice('echo-canary', 'http', canary.port, [{ ip: '127.0.0.1' }], { namespace: 'prod' }),
    endpointSlice('mine', 'http', mine.port, [{ ip: '127.0.0.1' }], { namespace: 'shop' }),
    pod('client', 'shop', '127.0.0.2', node),
    pod('other', 'blog', '127.0.0.3', node),
    // shop's consumer route: /canary to prod's canary (needs prod's grant), /mine to its own Service.
    httpRoute('shop-view', {
      ...parent,
      rules: [
        { matches: [{ path: { type: 'PathPrefix', value: '/canary' } }], backendRefs: [{ name: 'echo-canary', namespace: 'prod', port: 8080 }] },
        { matches: [{ path: { type: 'PathPrefix', value: '/mine' } }], backendRefs: [{ name: 'mine', port: 8080 }] },
      ],
    }, 'shop'),
    ...(grant
      ? [{ apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'ReferenceGrant', metadata: { name: 'shop', namespace: 'prod' }, spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'shop' }], to: [{ group: '', kind: 'Service', name: 'echo-canary' }] } }]
      : []),
  ];
  const agent = await startAgent(t, { 'all.yaml': objects(false) }, { kube: true, nodeName: node });
  const redirect = agent.agent.redirects.find((r) => r.service === 'prod/echo');
  t.ok(redirect, "prod/echo's traffic is steered to its GAMMA listener");
  const port = redirect!.proxyPort;
  const envoy = await startEnvoy(t, agent.bootstrap(node, 'delta'));
  await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 20_000);
  await eventually(async () => (await envoy.configDump()).listeners['gamma/prod/echo:8080'], 10_000, 'the GAMMA listener');

  const from = async (source: string, path: string) => (await getFrom(source, port, path)).backend ?? String((await getFrom(source, port, path)).status);
  t.equal(await from('127.0.0.2', '/mine/x'), 'mine', "shop's pod gets shop's consumer route");
  t.equal(await from('127.0.0.3', '/mine/x'), 'v1', "blog's pod is untouched by shop's route");
  t.equal(await from('127.0.0.1', '/mine/x'), 'v1', 'so is the node itself');
  t.equal(await from('127.0.0.2', '/other'), '404', 'a shop request no rule matches gets 404');
  t.equal((await getFrom('127.0.0.2', port, '/canary')).status, 500, 'without a ReferenceGrant the cross-namespace backend gets 500');
  t.equal(canary.hits, 0, 'and the canary saw nothing');
  t.ok(agent.agent.issues().some((i) => /HTTPRoute shop\/shop-view: spec\.rules\[0\]\.backendRefs\[0\]: no ReferenceGrant in namespace prod/.test(i)), agent.agent.issues().join('\n'));

  const v = agent.agent.currentVersion;
  agent.write('all.yaml', objects(true));
  await eventually(() => agent.agent.currentVersion > v, 5000, 'reload');
  await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 20_000);
  await eventually(async () => (await getFrom('127.0.0.2', port, '/canary')).backend === 'canary', 5000, 'the granted backend to serve');
  t.equal(await from('127.0.0.3', '/canary'), 'v1', "blog's pod still reaches prod/echo itself");
  t.same(agent.agent.issues(), [], 'no issues once granted');
});

t.test("a namespaced config's listener outside the proxy port range is refused; the same listener clusterwide serves", async (t) => {
  const backend = await startBackend(t, 'b');
  const port = await freePort();
  const node = 'port-node';
  const resources = (svcNs: string) => splitResources({ [`${svcNs}/b:8080`]: 1 }, { listener: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } });
  const objects = [service('b', [{ port: 8080, name: 'http' }], { namespace: 'tenant' }), endpointSlice('b', 'http', backend.port, [{ ip: '127.0.0.1' }], { namespace: 'tenant' })];
  const agent = await startAgent(t, { 'a.yaml': [...objects, cec('fixed', { backendServices: [{ name: 'b' }], resources: resources('tenant') }, 'tenant')] }, { kube: true, nodeName: node });
  t.match(agent.agent.issues(), [new RegExp(`CiliumEnvoyConfig tenant/fixed: spec\\.resources\\[0\\]\\.address\\.socketAddress\\.portValue: port ${port} is outside the proxy port range`)]);
  const envoy = await startEnvoy(t, agent.bootstrap(node, 'delta'));
  await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 20_000);
  t.same(Object.keys((await envoy.configDump()).listeners), [], 'Envoy was given no listener');
  await t.rejects(getFrom('127.0.0.1', port), /ECONNREFUSED/, 'nothing listens on the port');

  agent.write('a.yaml', [...objects, ccec('fixed', { backendServices: [{ name: 'b', namespace: 'tenant' }], resources: resources('tenant') })]);
  await eventually(async () => (await envoy.configDump()).listeners['fixed/listener'], 10_000, 'the clusterwide listener');
  t.equal((await eventually(async () => (await getFrom('127.0.0.1', port)).backend, 5000, 'a request through it')), 'b', 'an administrator may bind it');
  t.same(agent.agent.issues(), []);
});
