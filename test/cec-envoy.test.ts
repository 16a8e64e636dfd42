// CiliumEnvoyConfig from Kubernetes YAML, served to a real Envoy.
import t from 'tap';
import { startAgent } from './helpers/agent.js';
import { eventually, startEnvoy, type EnvoyHandle } from './helpers/envoy.js';
import { closeHttpAgents, httpGet, startBackend } from './helpers/net.js';
import { cec, endpointSlice, service, splitResources } from './helpers/kube.js';
import { assertSplit } from './helpers/stats.js';

t.teardown(closeHttpAgents);

async function listenerPort(envoy: EnvoyHandle, name: string): Promise<number> {
  return eventually(async () => (await envoy.configDump()).listeners[name]?.address?.socket_address?.port_value, 10_000, `listener ${name}`);
}

t.test('CEC traffic splitting, endpoint scaling, and invalid edits', async (t) => {
  const v1 = await startBackend(t, 'v1');
  const v1b = await startBackend(t, 'v1b');
  const v2 = await startBackend(t, 'v2');
  const split = (weights: Record<string, number>, extra: object = {}) =>
    cec('split', { backendServices: [{ name: 'echo-v1' }, { name: 'echo-v2' }], resources: splitResources(weights), ...extra });
  const services = [service('echo-v1', [{ port: 8080, name: 'http' }]), service('echo-v2', [{ port: 8080, name: 'http' }], { clusterIP: '10.96.0.11' })];
  // Every backend listens on its own loopback port, and a slice's port applies to all its
  // endpoints, so each backend gets a slice of its own.
  const slices = (v1Backends: { port: number }[]) => [
    ...v1Backends.map((b, i) => endpointSlice('echo-v1', 'http', b.port, [{ ip: '127.0.0.1' }], { name: `echo-v1-${i}` })),
    endpointSlice('echo-v2', 'http', v2.port, [{ ip: '127.0.0.1' }]),
  ];
  const initial = { 'services.yaml': services, 'slices.yaml': slices([v1]), 'cec.yaml': [split({ 'default/echo-v1': 80, 'default/echo-v2': 20 })] };
  const node = 'cec-node';
  const agent = await startAgent(t, initial, { kube: true, nodeName: node });
  t.same(agent.agent.issues(), [], 'no issues with the initial YAML');
  const envoy = await startEnvoy(t, agent.bootstrap(node, 'sotw'));
  await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 20_000);
  const port = await listenerPort(envoy, 'default/split/listener');
  t.ok(port >= 20000, `the address-less listener got a proxy port (${port})`);
  t.same(agent.agent.redirects, [], 'no services redirected by this CEC');

  t.test('an 80/20 weighted route splits 1000 requests within binomial bounds', async (t) => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const r = await httpGet(port, `/split/${i}`);
      t.equal(r.status, 200, 'ok', { diagnostic: false });
      counts[r.backend!] = (counts[r.backend!] ?? 0) + 1;
    }
    assertSplit(t, counts, { v1: 80, v2: 20 }, '80/20');
  });

  // How fast is bench/cec-scale.mjs's to measure; this checks what happens, not when.
  t.test('scaling the EndpointSlice changes Envoy endpoints, with no failed requests', async (t) => {
    const failures: string[] = [];
    let done = false;
    let sent = 0;
    const loop = (async () => {
      for (let i = 0; i < 20_000 && !done; i++, sent++) {
        try {
          const r = await httpGet(port, '/scale');
          if (r.status !== 200) failures.push(`status ${r.status}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    })();
    t.same(await envoy.clusterHosts('default/echo-v1'), [`127.0.0.1:${v1.port}`]);
    agent.write('slices.yaml', slices([v1, v1b]));
    await eventually(async () => (await envoy.clusterHosts('default/echo-v1')).length === 2, 20_000, 'scale-up in Envoy');
    const before = v1b.hits;
    await eventually(() => v1b.hits > before, 20_000, 'traffic on the new endpoint');
    agent.write('slices.yaml', slices([v1]));
    await eventually(async () => (await envoy.clusterHosts('default/echo-v1')).length === 1, 20_000, 'scale-down in Envoy');
    await new Promise((r) => setTimeout(r, 300));
    done = true;
    await loop;
    t.same(failures, [], `no failures in ${sent} requests during the scaling`);
    t.same(await envoy.clusterHosts('default/echo-v1'), [`127.0.0.1:${v1.port}`], 'back to the one endpoint');
  });

  t.test('an invalid edit leaves the previous config serving and names the error', async (t) => {
    const good = agent.agent.currentVersion;
    const bad = split({ 'default/echo-v1': 10, 'default/echo-v2': 90 }) as any;
    bad.spec.resources[1].virtual_hosts[0].routes[0].route.bogus = true;
    agent.write('cec.yaml', [bad]);
    await eventually(() => agent.agent.currentVersion > good, 5000, 'reload');
    const issue = agent.agent.issues().find((i) => i.includes('bogus'));
    t.match(issue, /^cec\.yaml\[0\]: CiliumEnvoyConfig default\/split: spec\.resources\[1\]\.virtual_hosts\[0\]\.routes\[0\]\.route\.bogus: unknown field "bogus"/, 'file, object and field named');
    t.ok(agent.logs.some((l) => l.level >= 50 && /bogus/.test(l.msg)), 'and logged');
    const counts: Record<string, number> = {};
    for (let i = 0; i < 100; i++) {
      const b = (await httpGet(port, '/')).backend!;
      counts[b] = (counts[b] ?? 0) + 1;
    }
    assertSplit(t, counts, { v1: 80, v2: 20 }, 'the previous 80/20 config still serves');

    // A value only Envoy rejects: Envoy NACKs, the agent names the CEC and rolls it back.
    const envoyBad = split({ 'default/echo-v1': 10, 'default/echo-v2': 90 }) as any;
    envoyBad.spec.resources[2].lb_policy = 'CLUSTER_PROVIDED';
    const v = agent.agent.currentVersion;
    agent.write('cec.yaml', [envoyBad]);
    await eventually(() => agent.logs.find((l) => /rolling these objects back/.test(l.msg ?? '')), 10_000, 'the rollback');
    const rollback = agent.logs.find((l) => /rolling these objects back/.test(l.msg ?? ''));
    t.same(rollback?.objects, ['CiliumEnvoyConfig default/split'], 'the NACK is pinned on the CEC');
    await eventually(() => agent.agent.issues().some((i) => /Envoy rejected this config/.test(i) && i.includes('CiliumEnvoyConfig default/split')), 5000, 'the issue');
    t.ok(agent.agent.currentVersion > v + 1, 'a rolled-back version was published');
    await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 10_000);
    t.equal((await httpGet(port, '/')).status, 200, 'still serving');

    agent.write('cec.yaml', [split({ 'default/echo-v1': 10, 'default/echo-v2': 90 })]);
    await eventually(async () => {
      let n = 0;
      for (let i = 0; i < 50; i++) if ((await httpGet(port, '/')).backend === 'v2') n++;
      return n > 35;
    }, 10_000, 'the fixed 10/90 config to serve');
    t.same(agent.agent.issues(), [], 'issues clear once fixed');
  });
});
