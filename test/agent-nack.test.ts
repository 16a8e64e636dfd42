// How the agent answers NACKs, against a real Envoy: only objects the NACK names
// are rolled back, a NACK naming nothing withdraws nothing, and another client
// with the node's id cannot NACK away what the node's Envoy accepted.
import t from 'tap';
import { TypeUrl } from '../src/resources/types.js';
import { adsClient, request, sotw } from './helpers/ads-client.js';
import { startAgent } from './helpers/agent.js';
import { eventually, startEnvoy, type EnvoyHandle } from './helpers/envoy.js';
import { cec, endpointSlice, service, splitResources } from './helpers/kube.js';
import { closeHttpAgents, httpGet, startBackend } from './helpers/net.js';

t.teardown(closeHttpAgents);

async function listenerPort(envoy: EnvoyHandle, name: string): Promise<number> {
  return eventually(async () => (await envoy.configDump()).listeners[name]?.address?.socket_address?.port_value, 10_000, `listener ${name}`);
}

const split = (name: string, weights: Record<string, number>) =>
  cec(name, { backendServices: Object.keys(weights).map((k) => ({ name: k.split('/')[1] })), resources: splitResources(weights) });

/** A CEC whose route Envoy refuses with a message that names no resource: a regex RE2 cannot compile. */
function badRegex(name: string): object {
  const c = split(name, { 'default/echo': 100 }) as any;
  c.spec.resources[1].virtual_hosts[0].routes[0].match = { safe_regex: { regex: '(unclosed' } };
  return c;
}

t.test('a NACK that names no resource, before anything was ACKed, withdraws nothing', async (t) => {
  const echo = await startBackend(t, 'echo');
  const node = 'nack-node';
  const agent = await startAgent(
    t,
    {
      'svc.yaml': [service('echo', [{ port: 8080, name: 'http' }]), endpointSlice('echo', 'http', echo.port, [{ ip: '127.0.0.1' }])],
      'good.yaml': [split('good', { 'default/echo': 100 })],
      'bad.yaml': [badRegex('bad')],
    },
    { kube: true, nodeName: node },
  );
  const envoy = await startEnvoy(t, agent.bootstrap(node, 'sotw'));
  const nack = await eventually(() => agent.logs.find((l) => l.msg?.startsWith('NACK') && l.node === node), 20_000, "Envoy's NACK");
  t.equal(nack.type, TypeUrl.RouteConfiguration, 'Envoy rejected the routes');
  t.notMatch(nack.error, /default\/(bad|good)\//, `its message names no resource: ${nack.error}`);
  // The agent has decided once it reports the NACK; a rollback would have been published with that decision.
  const report = await eventually(() => agent.logs.find((l) => /without naming a resource/.test(l.msg ?? '')), 20_000, 'the NACK reported');
  // And give a rollback, had there been one, time to reach Envoy.
  await new Promise((r) => setTimeout(r, 1500));
  const dump = await envoy.configDump();
  t.ok(dump.listeners['default/good/listener'] && dump.listeners['default/bad/listener'], 'Envoy keeps every listener');
  t.ok(dump.clusters['default/echo'], 'and the cluster');
  const port = await listenerPort(envoy, 'default/good/listener');
  for (let i = 0; i < 5; i++) t.equal((await httpGet(port, '/')).backend, 'echo', 'the good CEC serves', { diagnostic: false });
  t.notOk(agent.logs.some((l) => /rolling these objects back/.test(l.msg ?? '')), 'nothing is rolled back');
  t.same([...(report.objects ?? [])].sort(), ['CiliumEnvoyConfig default/bad', 'CiliumEnvoyConfig default/good'], 'the NACK is reported on every object changed since the last ACK (none yet)');
  await eventually(() => agent.agent.issues().filter((i) => /Envoy rejected a version that changed this object/.test(i)).length === 2, 5000, 'an issue on each');

  // The next change goes to Envoy; once accepted, the issues go.
  agent.write('bad.yaml', [split('bad', { 'default/echo': 100 })]);
  await eventually(() => agent.agent.issues().length === 0, 10_000, 'the issues to clear once Envoy accepts');
  await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 10_000);
  t.equal((await httpGet(await listenerPort(envoy, 'default/bad/listener'), '/')).backend, 'echo', 'the fixed CEC serves');
});

t.test("a second client with the node's id NACKing cannot roll back what the node's Envoy accepted", async (t) => {
  const one = await startBackend(t, 'one');
  const two = await startBackend(t, 'two');
  const node = 'shared-node';
  const services = [
    service('one', [{ port: 8080, name: 'http' }]),
    endpointSlice('one', 'http', one.port, [{ ip: '127.0.0.1' }]),
    service('two', [{ port: 8080, name: 'http' }], { clusterIP: '10.96.0.12' }),
    endpointSlice('two', 'http', two.port, [{ ip: '127.0.0.1' }]),
  ];
  const agent = await startAgent(t, { 'svc.yaml': services, 'cec.yaml': [split('s', { 'default/one': 100 })] }, { kube: true, nodeName: node });
  const envoy = await startEnvoy(t, agent.bootstrap(node, 'sotw'));
  await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 20_000);
  const port = await listenerPort(envoy, 'default/s/listener');
  t.equal((await httpGet(port, '/')).backend, 'one');

  // Another client with the same node id: it takes what is there now and refuses every later clusters response, by name.
  const rogue = sotw(t, adsClient(t, agent.socketPath));
  const first = agent.agent.currentVersion;
  rogue.each((r) => {
    const refuse = Number(r.versionInfo) > first;
    rogue.send(
      request({
        typeUrl: r.typeUrl,
        versionInfo: refuse ? String(first) : r.versionInfo,
        responseNonce: r.nonce,
        errorDetail: refuse ? { code: 3, message: "cluster 'default/two' is not welcome here", details: [] } : undefined,
      }),
    );
  });
  rogue.send(request({ node: { id: node } as any, typeUrl: TypeUrl.Cluster }));
  await rogue.nth(1);

  agent.write('cec.yaml', [split('s', { 'default/two': 100 })]);
  await eventually(() => agent.logs.find((l) => l.msg?.startsWith('NACK') && l.node === node && /not welcome/.test(l.error)), 10_000, "the other client's NACK");
  await eventually(async () => (await httpGet(port, '/')).backend === 'two', 10_000, 'the new route to serve');
  await new Promise((r) => setTimeout(r, 1000));
  t.notOk(agent.logs.some((l) => /rolling these objects back/.test(l.msg ?? '')), 'nothing is rolled back');
  t.same(agent.agent.issues(), [], 'and no issue is reported');
  for (let i = 0; i < 5; i++) t.equal((await httpGet(port, '/')).backend, 'two', "Envoy keeps what it accepted", { diagnostic: false });
});
