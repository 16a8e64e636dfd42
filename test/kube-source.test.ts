// Cluster mode against a real etcd and kube-apiserver: the agent's informers
// feed a real Envoy, survive an API server restart, and write status and Events,
// all as the chart's ServiceAccount with the chart's RBAC, never as an admin.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApiSource } from '../src/sources/kube-api.js';
import { KubeStatusWriter } from '../src/status/kube-status.js';
import type { ModelUpdate } from '../src/sources/source.js';
import { silentLogger, type Logger } from '../src/log.js';
import { recordingLogger, startAgent } from './helpers/agent.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { chartIdentity } from './helpers/chart-rbac.js';
import { GATEWAY_API_CRDS, KUBE_BIN, startKubeCluster, type KubeCluster } from './helpers/kube-apiserver.js';
import { cec, endpointSlice, httpRoute, service, splitResources } from './helpers/kube.js';
import { freePort } from './helpers/net.js';
import { trace } from '../src/policy/index.js';

const cluster: KubeCluster = await startKubeCluster(t);
cluster.kubectlOk(['apply', '--server-side', '-f', 'crds/', ...['httproutes', 'referencegrants'].flatMap((p) => ['-f', join(GATEWAY_API_CRDS, `gateway.networking.k8s.io_${p}.yaml`)])]);
cluster.kubectlOk(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
const identity = await chartIdentity(cluster);

t.test("the agents here log in as the chart's ServiceAccount, with the chart's RBAC", async (t) => {
  const as = (args: string[]) => spawnSync(join(KUBE_BIN, 'kubectl'), ['--kubeconfig', identity.kubeconfig, ...args], { encoding: 'utf8' }).stdout.trim();
  t.equal(as(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']), identity.user);
  t.equal(as(['auth', 'can-i', 'list', 'services', '-A']), 'yes', 'it reads Services');
  t.equal(as(['auth', 'can-i', 'create', 'services', '-A']), 'no', 'but is no admin');
});

/** The API server allocates ClusterIPs; fixtures pin one for standalone mode. */
function allocated(svc: object): object {
  const s = structuredClone(svc) as { spec: { clusterIP?: string } };
  delete s.spec.clusterIP;
  return s;
}

function kubeSource(log: Logger = silentLogger): KubeApiSource {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(identity.kubeconfig);
  return new KubeApiSource({ kubeConfig, log, debounceMs: 20, maxBackoffMs: 1000 });
}

/** The agent's inputs and outputs in cluster mode: the informers, and status and Events written back. */
function kubeWiring(node: string, log: Logger = silentLogger): { source: KubeApiSource; status: KubeStatusWriter; nodeName: string } {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(identity.kubeconfig);
  return { source: kubeSource(log), status: new KubeStatusWriter(kubeConfig, node, log), nodeName: node };
}

function events(name: string): { reason: string; message: string; type: string }[] {
  const out = cluster.kubectlOk(['get', 'events', '-A', '--field-selector', `involvedObject.name=${name}`, '-o', 'json']);
  return JSON.parse(out).items;
}

// EndpointSlices may not hold loopback addresses, and nothing may dial a pod address from
// the machine's own namespace, so these checks read Envoy's config rather than send requests
// through it; the standalone suites send traffic over the same translation.
t.test('Services, EndpointSlices and a CEC from the API server reach Envoy; edits, deletes and an API server restart', async (t) => {
  const ns = 'split';
  cluster.kubectlOk(['create', 'namespace', ns]);
  const split = (weights: Record<string, number>) =>
    cec('split', { backendServices: [{ name: 'echo-v1' }, { name: 'echo-v2' }], resources: splitResources(weights) }, ns);
  const slice = (svc: string, ips: string[]) => endpointSlice(svc, 'http', 8080, ips.map((ip) => ({ ip })), { namespace: ns });
  cluster.apply([
    allocated(service('echo-v1', [{ port: 8080, name: 'http' }], { namespace: ns })),
    allocated(service('echo-v2', [{ port: 8080, name: 'http' }], { namespace: ns })),
    slice('echo-v1', ['10.244.1.1']),
    slice('echo-v2', ['10.244.2.1', '10.244.2.2']),
    split({ [`${ns}/echo-v1`]: 90, [`${ns}/echo-v2`]: 10 }),
  ]);

  const node = 'kube-node-a';
  const sourceLog = recordingLogger('info');
  const agent = await startAgent(t, {}, kubeWiring(node, sourceLog.log));
  t.same(agent.agent.issues(), [], 'no issues with objects from the API server');
  const envoy = await startEnvoy(t, agent.bootstrap(node, 'delta'));
  const hosts = async (cluster: string) => (await envoy.clusterHosts(cluster)).join(',');
  /** The clusters the CEC's route sends traffic to, with their weights. */
  const weights = async () => {
    const route = (await envoy.configDump()).routes[`${ns}/split/route`];
    const clusters = route?.virtual_hosts?.[0]?.routes?.[0]?.route?.weighted_clusters?.clusters ?? [];
    return clusters.map((c: any) => `${c.name}=${c.weight}`).join(',');
  };
  await eventually(async () => (await envoy.configDump()).listeners[`${ns}/split/listener`], 15_000, 'the CEC listener in Envoy');
  t.equal(await eventually(weights, 10_000, 'the route'), `${ns}/echo-v1=90,${ns}/echo-v2=10`, "the CEC's route");
  t.equal(await eventually(() => hosts(`${ns}/echo-v2`), 10_000, 'endpoints'), '10.244.2.1:8080,10.244.2.2:8080', 'EndpointSlice addresses are Envoy endpoints');

  cluster.apply([split({ [`${ns}/echo-v1`]: 10, [`${ns}/echo-v2`]: 90 })]);
  await eventually(async () => (await weights()) === `${ns}/echo-v1=10,${ns}/echo-v2=90`, 10_000, 'the edit to move the route to v2');
  t.pass('a CEC edit propagates');
  cluster.apply([slice('echo-v2', ['10.244.2.3'])]);
  await eventually(async () => (await hosts(`${ns}/echo-v2`)) === '10.244.2.3:8080', 10_000, 'the slice edit');
  t.pass('an EndpointSlice edit propagates');
  cluster.kubectlOk(['delete', 'endpointslice', '-n', ns, 'echo-v2-abc']);
  await eventually(async () => (await hosts(`${ns}/echo-v2`)) === '', 10_000, 'no endpoints once the slice is gone');
  t.pass('deleting the EndpointSlice empties the cluster');

  t.test('the API server restarts mid-run: config keeps serving, then edits flow again', async (t) => {
    const before = agent.agent.currentVersion;
    await cluster.stopApiserver();
    await new Promise((r) => setTimeout(r, 1500));
    t.ok((await envoy.configDump()).listeners[`${ns}/split/listener`], 'Envoy keeps the listener while the API server is down');
    t.equal(agent.agent.currentVersion, before, 'no version published from an outage');
    await cluster.startApiserver();
    cluster.apply([slice('echo-v2', ['10.244.2.4'])]);
    await eventually(async () => (await hosts(`${ns}/echo-v2`)) === '10.244.2.4:8080', 30_000, 'the slice created after the restart to reach Envoy');
    t.pass('watches resumed after the restart');
    t.ok(sourceLog.lines.some((l) => /list\/watch of \w+ failed; .*; retrying$/.test(l.msg ?? '')), 'the outage was logged');
    t.ok(sourceLog.lines.some((l) => /watch re-established/.test(l.msg ?? '')), 'and the recovery');
  });

  t.test('a schema-valid CEC that Envoy rejects gets a Warning Event naming the error', async (t) => {
    const bad = split({ [`${ns}/echo-v1`]: 50, [`${ns}/echo-v2`]: 50 }) as any;
    bad.spec.resources[2].lb_policy = 'CLUSTER_PROVIDED';
    cluster.apply([bad]);
    const ev = await eventually(() => events('split').find((e) => e.reason === 'EnvoyRejected'), 20_000, 'an EnvoyRejected Event on the CEC');
    t.equal(ev.type, 'Warning');
    t.match(ev.message, /Envoy rejected this config/, 'says what happened');
    t.match(ev.message, /cluster provided LB specified but cluster 'split\/echo-v1' did not provide one/, "carries Envoy's reason");
    await agent.agent.cache.waitForAck(node, agent.agent.currentVersion, 10_000);
    t.equal(await weights(), `${ns}/echo-v1=10,${ns}/echo-v2=90`, 'the last accepted config keeps serving');
    cluster.apply([split({ [`${ns}/echo-v1`]: 70, [`${ns}/echo-v2`]: 30 })]);
    await eventually(async () => (await weights()) === `${ns}/echo-v1=70,${ns}/echo-v2=30`, 10_000, 'the fixed CEC to serve');
  });

  t.test('deleting the CEC removes its listener from Envoy', async (t) => {
    cluster.kubectlOk(['delete', 'ciliumenvoyconfig', '-n', ns, 'split']);
    await eventually(async () => !(await envoy.configDump()).listeners[`${ns}/split/listener`], 10_000, 'the listener to go');
    t.pass('gone');
  });
});

t.test('HTTPRoute parents get Accepted and ResolvedRefs', async (t) => {
  const ns = 'routes';
  cluster.kubectlOk(['create', 'namespace', ns]);
  const route = (backend: string) =>
    httpRoute('echo', { parentRefs: [{ group: '', kind: 'Service', name: 'echo', port: 8080 }], rules: [{ backendRefs: [{ name: backend, port: 8080 }] }] }, ns);
  cluster.apply([allocated(service('echo', [{ port: 8080, name: 'http' }], { namespace: ns })), route('missing')]);
  const node = 'kube-node-b';
  const agent = await startAgent(t, {}, kubeWiring(node));
  const conditions = async () => {
    const r = JSON.parse(cluster.kubectlOk(['get', 'httproute', '-n', ns, 'echo', '-o', 'json']));
    const ours = (r.status?.parents ?? []).find((p: any) => p.controllerName === 'sluice.io/mesh');
    return ours ? Object.fromEntries(ours.conditions.map((c: any) => [c.type, c])) : undefined;
  };
  const broken = await eventually(async () => (await conditions())?.ResolvedRefs?.status === 'False' && conditions(), 15_000, 'status on the route');
  t.equal(broken.Accepted.status, 'True', 'attached to its Service parent');
  t.equal(broken.ResolvedRefs.reason, 'BackendNotFound');
  t.match(broken.ResolvedRefs.message, /Service routes\/missing not found/);
  t.match(agent.agent.issues().join('\n'), /HTTPRoute routes\/echo/, 'the issue is also in the agent log');
  const ev = await eventually(() => events('echo').find((e) => e.reason === 'InvalidConfig'), 15_000, 'an Event on the route');
  t.match(ev.message, /backendRefs\[0\]/, 'the Event names the field');

  cluster.apply([route('echo')]);
  const fixed = await eventually(async () => (await conditions())?.ResolvedRefs?.status === 'True' && conditions(), 15_000, 'ResolvedRefs to turn True');
  t.equal(fixed.Accepted.status, 'True');
  t.equal(fixed.Accepted.lastTransitionTime, broken.Accepted.lastTransitionTime, 'an unchanged condition keeps its transition time');
});

t.test('a backendRef into another namespace is RefNotPermitted until a ReferenceGrant from the API server allows it', async (t) => {
  for (const ns of ['consumer', 'producer']) cluster.kubectlOk(['create', 'namespace', ns]);
  const route = httpRoute('cross', { parentRefs: [{ group: '', kind: 'Service', name: 'front', port: 8080 }], rules: [{ backendRefs: [{ name: 'api', namespace: 'producer', port: 8080 }] }] }, 'consumer');
  cluster.apply([
    allocated(service('front', [{ port: 8080, name: 'http' }], { namespace: 'consumer' })),
    allocated(service('api', [{ port: 8080, name: 'http' }], { namespace: 'producer' })),
    route,
  ]);
  const agent = await startAgent(t, {}, kubeWiring('kube-node-d'));
  const resolved = async () => {
    const r = JSON.parse(cluster.kubectlOk(['get', 'httproute', '-n', 'consumer', 'cross', '-o', 'json']));
    return (r.status?.parents ?? []).find((p: any) => p.controllerName === 'sluice.io/mesh')?.conditions.find((c: any) => c.type === 'ResolvedRefs');
  };
  const refused = await eventually(async () => (await resolved())?.status === 'False' && resolved(), 15_000, 'ResolvedRefs False on the route');
  t.equal(refused.reason, 'RefNotPermitted');
  t.match(refused.message, /no ReferenceGrant in namespace producer/);
  cluster.apply([{ apiVersion: 'gateway.networking.k8s.io/v1beta1', kind: 'ReferenceGrant', metadata: { name: 'consumer-routes', namespace: 'producer' }, spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'consumer' }], to: [{ group: '', kind: 'Service', name: 'api' }] } }]);
  await eventually(async () => (await resolved())?.status === 'True', 15_000, 'ResolvedRefs True once granted');
  t.notMatch(agent.agent.issues().join('\n'), /ReferenceGrant/, 'the issue is gone');
});

t.test('sluice agent --source kube as a process: readiness, metrics, and a clear error without a cluster', async (t) => {
  const metricsPort = await freePort();
  const node = 'kube-node-c';
  const dir = join(cluster.dir, 'cli-agent');
  const cli = new URL('../dist/cli.js', import.meta.url).pathname;
  const args = [cli, 'agent', '--source', 'kube', '--kubeconfig', identity.kubeconfig, '--node', node, '--socket', join(dir, 'xds.sock'), '--state-dir', dir, '--metrics-port', String(metricsPort), '--proxy-ports', '20000-20099'];
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  t.teardown(() => void (p.exitCode === null && p.kill('SIGTERM')));
  const url = `http://127.0.0.1:${metricsPort}`;
  await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, 60_000, `readiness (agent output: ${out.slice(-500)})`);
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'live');
  const metrics = await (await fetch(`${url}/metrics`)).text();
  t.match(metrics, /^sluice_xds_snapshot_version [1-9]/m, 'a snapshot was published');
  t.match(metrics, /^sluice_xds_publishes_total /m);

  const noCluster = spawn(process.execPath, [cli, 'agent', '--source', 'kube', '--kubeconfig', join(dir, 'nope'), '--node', node], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  noCluster.stderr.on('data', (d) => (err += d));
  const code = await new Promise((r) => noCluster.once('exit', r));
  t.equal(code, 1);
  t.match(err, /^sluice: .*nope/m, 'one line naming the kubeconfig, no stack trace');
  t.notMatch(err, /\n\s+at /, 'no stack trace');
});

t.test('an unchanged informer object is the same object in every model, so translation memos hit', async (t) => {
  const ns = 'identity';
  cluster.kubectlOk(['create', 'namespace', ns]);
  const svc = (name: string, port: number) => allocated(service(name, [{ port, name: 'http' }], { namespace: ns }));
  cluster.apply([svc('kept', 80), svc('edited', 80), svc('gone', 80)]);
  const source = kubeSource();
  let latest: ModelUpdate | undefined;
  await source.start((u) => (latest = u));
  t.teardown(() => source.stop());
  const first = await eventually(() => (latest?.model.service(ns, 'gone') ? latest.model : undefined), 10_000, 'the Services');
  t.equal(source.read().model.service(ns, 'kept'), first.service(ns, 'kept'), 'a second read keeps the object');

  cluster.apply([svc('edited', 81)]);
  cluster.kubectlOk(['delete', 'service', '-n', ns, 'gone']);
  const second = await eventually(() => (latest && !latest.model.service(ns, 'gone') && latest.model.service(ns, 'edited')?.spec.ports?.[0]?.port === 81 ? latest.model : undefined), 10_000, 'the edit and delete');
  t.equal(second.service(ns, 'kept'), first.service(ns, 'kept'), 'the untouched Service is the same object');
  t.not(second.service(ns, 'edited'), first.service(ns, 'edited'), 'the edited one is new');
  t.equal(second.services().filter((s) => s === first.service(s.metadata.namespace!, s.metadata.name)).length, second.services().length - 1, 'every other Service is the same object');

  cluster.apply([svc('gone', 80)]);
  const third = await eventually(() => latest?.model.service(ns, 'gone') ? latest.model : undefined, 10_000, 'the re-created Service');
  t.not(third.service(ns, 'gone'), first.service(ns, 'gone'), 'a re-created object is read afresh');
});

t.test("pods of every node reach the model: one on another node gets an identity, so policy does not take it for the world, but is not this node's endpoint", async (t) => {
  const ns = 'fleet';
  cluster.kubectlOk(['create', 'namespace', ns]);
  const pod = (name: string, node: string, ip: string, org: string) => {
    cluster.apply([{ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels: { org } }, spec: { nodeName: node, containers: [{ name: 'c', image: 'none' }] } }]);
    cluster.kubectlOk(['patch', 'pod', '-n', ns, name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { podIP: ip, podIPs: [{ ip }] } })]);
  };
  pod('here', 'kube-node-e', '10.244.5.10', 'empire');
  pod('there', 'kube-node-f', '10.244.6.10', 'empire');
  cluster.apply([{ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'from-empire', namespace: ns }, spec: { endpointSelector: {}, ingress: [{ fromEndpoints: [{ matchLabels: { org: 'empire' } }] }] } }]);
  const agent = await startAgent(t, {}, kubeWiring('kube-node-e'));
  const policy = await eventually(() => {
    const p = agent.agent.policy;
    return p?.compiled.identities.pods.get(`${ns}/there`)?.ips.length && p.compiled.ruleSets.length ? p : undefined;
  }, 15_000, "the other node's pod, its address and the policy");
  const there = policy.compiled.identities.pods.get(`${ns}/there`)!;
  t.ok(there.identity >= 256, `an identity of its own (${there.identity}), not a reserved one`);
  t.ok(policy.state.ipcache.some((e) => e.prefix === '10.244.6.10/32' && e.identity === there.identity), 'its address maps to it in the ipcache');
  t.same([...new Set(policy.state.endpoints.map((e) => e.pod))].filter((p) => p.startsWith(`${ns}/`)), [`${ns}/here`], 'only the pod on this node is an endpoint');
  // As "world" it would meet the default deny; as an org=empire pod the rule admits it, by address too.
  for (const from of [`${ns}/there`, '10.244.6.10'])
    t.match(trace(policy, { from, to: `${ns}/here`, port: 80 }).decidedBy, { reason: 'rule', policy: `CiliumNetworkPolicy ${ns}/from-empire` }, `${from} is admitted as an empire pod`);
});
