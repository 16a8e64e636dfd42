// Cluster mode when the API server will not show the agent everything: only a
// kind the API server does not serve (a CRD not installed) counts as empty. A
// kind it refuses (RBAC), throttles or fails keeps the agent not ready with its
// pinned datapath untouched, and a refusal after start leaves the caches serving.
// Against a real kube-apiserver, as the chart's ServiceAccount, with the agent a
// process driving the kernel datapath in a test network namespace.
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import { KubeApiSource, notServed } from '../src/sources/kube-api.js';
import type { ModelUpdate } from '../src/sources/source.js';
import { SockLb } from '../src/redirect/datapath.js';
import { recordingLogger } from './helpers/agent.js';
import { chartIdentity } from './helpers/chart-rbac.js';
import { eventually } from './helpers/envoy.js';
import { GATEWAY_API_CRDS, startKubeCluster } from './helpers/kube-apiserver.js';
import { endpointSlice, httpRoute, service } from './helpers/kube.js';
import { freePort } from './helpers/net.js';
import { netnsWorld, stopChild } from './helpers/netns.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const cluster = await startKubeCluster(t);
const identity = await chartIdentity(cluster);

t.test('only "not served" counts as an empty kind', async (t) => {
  t.ok(notServed(new ApiException(404, 'Not Found', {}, {})), 'a 404 from a list');
  t.ok(notServed(Object.assign(new Error('Not Found'), { statusCode: 404 })), 'a 404 from a watch');
  t.ok(notServed(new Error('Unrecognized API version and kind: gateway.networking.k8s.io/v1 HTTPRoute')), 'discovery without the kind');
  for (const code of [400, 401, 403, 409, 410, 429, 500, 502, 503, 504]) {
    t.notOk(notServed(new ApiException(code, 'x', {}, {})), `${code} from a list`);
    t.notOk(notServed(Object.assign(new Error('x'), { statusCode: code })), `${code} from a watch`);
  }
  t.notOk(notServed(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' })), 'an unreachable API server');
});

t.test('the source: a refused kind holds start(); a kind not served does not, and is watched once its CRD is installed', async (t) => {
  // No CRDs yet: cilium.io and gateway.networking.k8s.io are not served at all.
  await identity.withhold(['services']);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(identity.kubeconfig);
  const rec = recordingLogger('info');
  const source = new KubeApiSource({ kubeConfig, log: rec.log, debounceMs: 20, maxBackoffMs: 500 });
  t.teardown(() => source.stop());
  const updates: ModelUpdate[] = [];
  let started = false;
  const start = source.start((u) => updates.push(u)).then(() => (started = true));
  const logged = (re: RegExp) => rec.lines.find((l) => re.test(l.msg ?? ''));
  const refused = await eventually(() => logged(/^list\/watch of Service failed; not ready/), 30_000, 'the refusal to be logged');
  t.match(refused.error, /^403 services is forbidden/, "the API server's answer");
  t.match(refused.msg, /needs list and watch on services \(apiGroup ""\)/, 'says what to grant');
  await eventually(() => logged(/^list\/watch of HTTPRoute failed; counted as none for now; is the gateway.networking.k8s.io\/v1 HTTPRoute CRD installed\?/), 30_000, 'the missing CRD to be logged');
  await eventually(() => source.pending().length === 1, 30_000, 'every kind but Service to settle');
  t.match(source.pending()[0], /^Service \(403 services is forbidden/, 'start() waits for Service alone, and says why');
  t.notOk(started, 'start() has not returned');
  // Each retry's answer differs only in its response headers (an audit id), which must not make it a new
  // failure; with retries every 500 ms, two seconds see several.
  await new Promise((r) => setTimeout(r, 2000));
  t.equal(rec.lines.filter((l) => /^list\/watch of HTTPRoute failed/.test(l.msg ?? '')).length, 1, 'the missing CRD is logged once, not on every retry');
  t.same(updates, [], 'no model was delivered');

  await identity.withhold([]);
  await start;
  t.equal(updates.length, 1, 'once Services can be listed, start() delivers the first model');
  t.same(source.pending(), []);

  cluster.kubectlOk(['apply', '--server-side', '-f', join(GATEWAY_API_CRDS, 'gateway.networking.k8s.io_httproutes.yaml')]);
  cluster.kubectlOk(['wait', '--for=condition=Established', 'crd/httproutes.gateway.networking.k8s.io', '--timeout=60s']);
  cluster.kubectlOk(['create', 'namespace', 'late']);
  cluster.apply([httpRoute('late', { parentRefs: [{ group: '', kind: 'Service', name: 'x', port: 80 }], rules: [{ backendRefs: [{ name: 'x', port: 80 }] }] }, 'late')]);
  await eventually(() => updates.at(-1)?.model.httpRoutes().some((r) => r.metadata.name === 'late'), 30_000, 'the HTTPRoute to reach the model');
  t.pass('an HTTPRoute created after its CRD was installed reaches the model');
});

const BACKENDS = ['10.244.7.1', '10.244.7.2'];

t.test('the agent with its datapath pinned: Services refused at start or later never withdraw a VIP', async (t) => {
  cluster.kubectlOk(['apply', '--server-side', '-f', 'crds/', '-f', join(GATEWAY_API_CRDS, 'gateway.networking.k8s.io_httproutes.yaml')]);
  cluster.kubectlOk(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
  await identity.withhold([]);
  let agent: ChildProcess | undefined;
  const w = await netnsWorld(t, BACKENDS);
  // Registered after the world, so it runs first (tap tears down last-in first-out): the agent goes before its cgroup and pins.
  t.teardown(() => stopChild(agent));
  t.teardown(() => SockLb.remove(w.pinDir));
  await w.servers({ tcp: BACKENDS.map((ip, i) => ({ ip, port: 8080, name: `b${i + 1}` })) });
  const dir = mkdtempSync(join(tmpdir(), 'sluice-kubefail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  cluster.kubectlOk(['create', 'namespace', 'shop']);
  const svc = service('web', [{ port: 80, name: 'http', targetPort: 8080 }], { namespace: 'shop' }) as { spec: { clusterIP?: string } };
  delete svc.spec.clusterIP;
  cluster.apply([svc, endpointSlice('web', 'http', 8080, BACKENDS.map((ip) => ({ ip })), { namespace: 'shop' })]);
  const vip = cluster.kubectlOk(['get', 'service', 'web', '-n', 'shop', '-o', 'jsonpath={.spec.clusterIP}']).trim();
  t.match(vip, /^10\.96\./, `the API server allocated the VIP ${vip}`);

  const metricsPort = await freePort();
  const readyz = async () => {
    const r = await fetch(`http://127.0.0.1:${metricsPort}/readyz`).catch(() => undefined);
    return r ? { status: r.status, body: await r.text() } : { status: 0, body: '' };
  };
  let output = '';
  const startAgentProcess = () => {
    output = '';
    const args = [cli, 'agent', '--source', 'kube', '--kubeconfig', identity.kubeconfig, '--node', 'kf-node', '--socket', join(dir, 'xds.sock'), '--state-dir', join(dir, 'state'), '--proxy-ports', '20700-20709', '--metrics-port', String(metricsPort), '--datapath', '--bpf-dir', w.pinDir, '--cgroup-dir', w.cgroupDir,
      // The agent runs in the machine's namespace to reach the API server: keep its proxy address loopback so it adds nothing to the machine's lo.
      '--proxy-address', '127.0.0.1,::1'];
    agent = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    agent.stdout!.on('data', (d) => (output += d));
    agent.stderr!.on('data', (d) => (output += d));
  };
  // The last line may still be arriving.
  const lines = () => output.split('\n').slice(0, -1).filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  /** Connections to the VIP from the test namespace, in the test cgroup: the backends reached and every failure. */
  const connect = (count = 10) => {
    const [res] = w.client([{ op: 'tcp', host: vip, port: 80, count }]);
    return { backends: new Set(res.map((r: any) => r.backend).filter(Boolean)), failures: res.filter((r: any) => r.error).map((r: any) => r.error as string) };
  };
  /** Connects over and over until `until` holds or time is up; every connection must succeed either way. */
  const keepConnecting = async (until: () => boolean | Promise<boolean>, timeoutMs: number) => {
    const failures: string[] = [];
    let made = 0;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = connect();
      made += 10;
      failures.push(...r.failures);
      if (await until()) return { made, failures, met: true };
      if (Date.now() > deadline) return { made, failures, met: false };
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  startAgentProcess();
  await eventually(async () => (await readyz()).status === 200, 60_000, 'readiness with the full RBAC');
  await eventually(() => connect(30).backends.size === 2, 15_000, 'the VIP to reach both backends');
  t.pass('as the chart ServiceAccount, the agent programs the VIP');

  t.test('Services refused after start: the cache keeps serving, the agent stays ready', async (t) => {
    await identity.withhold(['services']);
    // A running watch outlives the RBAC change; restarting the API server makes every watch reconnect.
    await cluster.stopApiserver();
    await cluster.startApiserver();
    const run = await keepConnecting(() => lines().some((l) => /^list\/watch of Service failed; the \d+ cached Service objects keep serving until it recovers; the agent's ServiceAccount needs list and watch on services/.test(l.msg)), 90_000);
    for (let i = 0; i < 10; i++) run.failures.push(...connect().failures);
    t.same(run.failures, [], `${run.made + 100} connections while the watch was refused, none failed`);
    t.ok(run.met, 'the refused watch was logged, saying the cache keeps serving');
    t.equal((await readyz()).status, 200, 'still ready');
    t.notOk(lines().some((l) => l.msg === 'datapath updated' && l.deletes), 'nothing was removed from the maps');
  });

  t.test('killed and restarted while Services are refused: not ready, and the pinned VIP keeps working', async (t) => {
    agent!.kill('SIGKILL');
    await new Promise((r) => agent!.once('exit', r));
    startAgentProcess();
    const run = await keepConnecting(() => lines().some((l) => /^list\/watch of Service failed; not ready/.test(l.msg)), 60_000);
    for (let i = 0; i < 10; i++) run.failures.push(...connect().failures);
    t.same(run.failures, [], `${run.made + 100} connections while the agent waits, none failed`);
    t.ok(lines().some((l) => /adopted the datapath/.test(l.msg)), 'the pinned datapath was adopted');
    t.ok(run.met, 'the refusal was logged, saying the agent is not ready');
    const refused = lines().find((l) => /^list\/watch of Service failed/.test(l.msg));
    t.match(refused?.error, /^403 services is forbidden/, 'the log line carries the 403');
    t.match(refused?.msg, /needs list and watch on services/, 'and what to grant');
    const r = await readyz();
    t.equal(r.status, 503, '/readyz says not ready');
    t.match(r.body, /Service \(403 services is forbidden/, 'and names the kind it waits for, with the reason');
    t.notOk(lines().some((l) => l.msg === 'snapshot published'), 'nothing was published');
    t.notOk(lines().some((l) => l.msg === 'datapath updated'), 'the maps were not touched');

    await identity.withhold([]);
    const back = await keepConnecting(async () => (await readyz()).status === 200, 90_000);
    t.same(back.failures, [], `${back.made} connections until it became ready, none failed`);
    t.ok(back.met, 'ready once Services may be listed');
    await eventually(() => connect(30).backends.size === 2, 15_000, 'both backends');
    t.pass('ready, and the VIP still reaches both backends');
    t.ok(lines().some((l) => l.msg === 'snapshot published'), 'published once it could list Services');
  });
});
