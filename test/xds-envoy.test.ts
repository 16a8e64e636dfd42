// The xDS server against a real Envoy, over the unix socket, in both ADS flavours.
import t from 'tap';
import { statSync } from 'node:fs';
import { NackError } from '../src/xds/snapshot-cache.js';
import { startAgent } from './helpers/agent.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { closeHttpAgents, freePort, httpGet, startBackend } from './helpers/net.js';
import { edsCluster, endpoints, listener, route } from './helpers/resources.js';

t.teardown(closeHttpAgents);

for (const ads of ['sotw', 'delta'] as const) {
  t.test(`${ads} ADS with a real Envoy`, async (t) => {
    const a = await startBackend(t, 'a');
    const b = await startBackend(t, 'b');
    const port = await freePort();
    const agent = await startAgent(t, {
      'listener.yaml': [listener('ingress', port, 'main')],
      'routes.yaml': [route('main', 'svc-a')],
      'clusters.yaml': [edsCluster('svc-a'), endpoints('svc-a', [a.port]), edsCluster('svc-b'), endpoints('svc-b', [b.port])],
    });
    t.equal(statSync(agent.socketPath).mode & 0o777, 0o660, 'xDS socket is mode 0660');

    const node = `node-${ads}`;
    const envoy = await startEnvoy(t, agent.bootstrap(node, ads));
    await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 20_000);

    const dump = await envoy.configDump();
    t.ok(dump.listeners.ingress, 'config_dump shows the listener');
    t.ok(dump.routes.main, 'config_dump shows the route');
    t.ok(dump.clusters['svc-a'] && dump.clusters['svc-b'], 'config_dump shows the clusters');
    t.equal(dump.endpoints['svc-a']?.endpoints?.[0]?.lb_endpoints?.[0]?.endpoint?.address?.socket_address?.port_value, a.port);

    const first = await eventually(async () => {
      const r = await httpGet(port, '/hello');
      return r.status === 200 && r;
    }, 10_000, 'a 200 through the listener');
    t.equal(first.backend, 'a', 'the request reached backend a on loopback');
    t.equal(JSON.parse(first.body).url, '/hello');

    t.test('an update applies without a restart, and a request loop sees no errors', async (t) => {
      const statsBefore = await envoy.stats('server.hot_restart_epoch');
      const results: string[] = [];
      const failures: string[] = [];
      let done = false;
      const loop = (async () => {
        for (let i = 0; i < 2000 && !done; i++) {
          try {
            const r = await httpGet(port, `/loop/${i}`);
            if (r.status !== 200) failures.push(`#${i}: status ${r.status}`);
            else results.push(r.backend!);
          } catch (e) {
            failures.push(`#${i}: ${(e as Error).message}`);
          }
        }
      })();
      await eventually(() => results.length >= 20, 5000, 'requests before the update');
      agent.write('routes.yaml', [route('main', 'svc-b')]);
      const v = await eventually(() => agent.agent.currentVersion > 1 && agent.agent.currentVersion, 5000, 'the agent to reload');
      await agent.agent.cache.waitForAck(node, v, 10_000);
      const afterAck = results.length;
      await eventually(() => results.length >= afterAck + 50, 10_000, 'requests after the update');
      done = true;
      await loop;
      t.same(failures, [], 'no request failed during the update');
      t.equal(results[0], 'a');
      t.equal(results.at(-1), 'b', 'traffic moved to backend b');
      t.ok(results.length >= 70, `bounded loop ran ${results.length} requests`);
      const statsAfter = await envoy.stats('server.hot_restart_epoch');
      t.same(statsAfter, statsBefore, 'no Envoy restart');
    });

    t.test('a resource Envoy rejects is NACKed; the last good config keeps serving', async (t) => {
      const good = agent.agent.currentVersion;
      const bad = { ...(edsCluster('svc-b') as any), lb_policy: 'CLUSTER_PROVIDED' };
      agent.write('clusters.yaml', [edsCluster('svc-a'), endpoints('svc-a', [a.port]), bad, endpoints('svc-b', [b.port])]);
      const badVersion = await eventually(() => agent.agent.currentVersion > good && agent.agent.currentVersion, 5000, 'reload');
      const err = await agent.agent.cache.waitForAck(node, badVersion, 10_000).then(
        () => undefined,
        (e: unknown) => e,
      );
      t.ok(err instanceof NackError, 'waitForAck rejects with the NACK');
      const nack = (err as NackError).nack;
      t.equal(nack.typeUrl, 'type.googleapis.com/envoy.config.cluster.v3.Cluster');
      t.match(nack.message, /cluster provided LB specified but cluster 'svc-b'/, "Envoy's own message, naming the cluster");
      t.ok(nack.resourceNames.includes('svc-b'), 'the NACK names the resources sent');
      const logged = agent.logs.find((l) => l.msg?.startsWith('NACK') && l.node === node);
      t.ok(logged, 'the NACK is logged');
      t.equal(logged?.type, nack.typeUrl);
      t.match(logged?.error, /svc-b/);
      t.ok(Array.isArray(logged?.resources), 'the log names the resources');

      for (let i = 0; i < 20; i++) t.equal((await httpGet(port, '/still')).backend, 'b', 'still served by the last good config');
      const dump = await envoy.configDump();
      t.equal(dump.clusters['svc-b']?.lb_policy, undefined, 'Envoy kept the last accepted svc-b');

      // No resend loop: one NACK, and the rejected version is not pushed again.
      const nacksBefore = agent.logs.filter((l) => l.msg?.startsWith('NACK') && l.node === node).length;
      await new Promise((r) => setTimeout(r, 1000));
      const nacksAfter = agent.logs.filter((l) => l.msg?.startsWith('NACK') && l.node === node).length;
      t.equal(nacksAfter, nacksBefore, 'the rejected version is not resent');

      const fixed = { ...(edsCluster('svc-b') as any), connect_timeout: '2s' };
      agent.write('clusters.yaml', [edsCluster('svc-a'), endpoints('svc-a', [a.port]), fixed, endpoints('svc-b', [b.port])]);
      const fixedVersion = await eventually(() => agent.agent.currentVersion > badVersion && agent.agent.currentVersion, 5000, 'reload');
      await agent.agent.cache.waitForAck(node, fixedVersion, 10_000).catch((e) => {
        console.error(JSON.stringify(agent.logs.slice(-30)));
        throw e;
      });
      t.equal((await envoy.configDump()).clusters['svc-b']?.connect_timeout, '2s', 'a later valid update is accepted');
      t.equal((await httpGet(port, '/after')).backend, 'b');
    });
  });
}

t.test('delta: removing a cluster removes it from Envoy; reconnect resumes from known versions', async (t) => {
  const a = await startBackend(t, 'a');
  const port = await freePort();
  const agent = await startAgent(t, {
    'all.yaml': [listener('ingress', port, 'main'), route('main', 'svc-a'), edsCluster('svc-a'), endpoints('svc-a', [a.port]), edsCluster('extra'), endpoints('extra', [a.port])],
  });
  const node = 'node-delta-removal';
  const envoy = await startEnvoy(t, agent.bootstrap(node, 'delta'));
  await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 20_000);
  t.ok((await envoy.configDump()).clusters.extra, 'extra cluster present');

  agent.write('all.yaml', [listener('ingress', port, 'main'), route('main', 'svc-a'), edsCluster('svc-a'), endpoints('svc-a', [a.port])]);
  const v = await eventually(() => agent.agent.currentVersion > 1 && agent.agent.currentVersion, 5000, 'reload');
  await agent.agent.cache.waitForAck(node, v, 10_000);
  const removedLog = agent.logs.filter((l) => l.msg === 'sent delta' && l.removed > 0);
  t.ok(removedLog.length > 0, 'a delta response carried removed_resources');
  await eventually(async () => !(await envoy.configDump()).clusters.extra, 5000, 'extra cluster gone from Envoy');
  t.ok((await envoy.configDump()).clusters['svc-a'], 'the other cluster stays');
  t.equal((await httpGet(port, '/')).backend, 'a');
});
