// `sluice agent --datapath` as a process on the real kernel, in a "node" netns
// with its Envoy, serving a "pod" netns joined to it by a veth: it keeps the
// socket load balancer equal to the YAML, puts the node proxy address on the
// node's lo, steers a Service into Envoy only once Envoy has accepted the
// listener, and survives being killed (a hitless restart).
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { renderBootstrap } from '../src/envoy/bootstrap.js';
import { SockLb, SOCK_LB_PROGRAMS } from '../src/redirect/datapath.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { cec, endpointSlice, service, splitResources } from './helpers/kube.js';
import { netnsWorld, stopChild } from './helpers/netns.js';
import { spawnAgentInNetns } from './helpers/agent-process.js';
import { DEFAULT_PROXY_ADDRESSES as PROXY } from '../src/redirect/proxy-address.js';

const BACKENDS = ['10.244.3.1', '10.244.3.2'];
const PROXY_PORT = 20577;
const ENVOY_GRACE_MS = 1000;
const cli = new URL('../dist/cli.js', import.meta.url).pathname;

t.test('the agent drives the datapath, gates L7 redirects on ACK, and restarts hitlessly', async (t) => {
  let agent: ChildProcess | undefined;
  const w = await netnsWorld(t, BACKENDS);
  // Registered after the world, so it runs first (tap tears down last-in first-out): the agent goes before its cgroup and pins.
  t.teardown(() => stopChild(agent));
  t.teardown(() => SockLb.remove(w.pinDir));
  const pod = w.peer();
  await w.servers({ http: BACKENDS.map((ip, i) => ({ ip, port: 8080, name: `b${i + 1}` })) });
  const dir = mkdtempSync(join(tmpdir(), 'sluice-agent-dp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, 'src');
  mkdirSync(src);
  const write = (file: string, docs: object[]) => {
    writeFileSync(join(dir, 'tmp.yaml'), docs.map((d) => stringify(d)).join('---\n'));
    renameSync(join(dir, 'tmp.yaml'), join(src, file));
  };
  const slice = (ips: string[]) => endpointSlice('web', 'http', 8080, ips.map((ip) => ({ ip })));
  write('web.yaml', [service('web', [{ port: 80, name: 'http' }], { clusterIP: '10.96.0.80' }), slice(BACKENDS)]);
  const socketPath = join(dir, 'xds.sock');

  let agentOutput = () => '';
  // In the node netns, so the proxy address goes on its lo.
  const startAgentProcess = () =>
    spawnAgentInNetns(
      w.ns,
      ['--source', `dir:${src}`, '--node', 'dp-node', '--socket', socketPath, '--state-dir', join(dir, 'state'), '--proxy-ports', `${PROXY_PORT}-${PROXY_PORT}`, '--datapath', '--bpf-dir', w.pinDir, '--cgroup-dir', w.cgroupDir, '--envoy-grace', String(ENVOY_GRACE_MS), '--log-level', 'debug'],
      (p, out) => ((agent = p), (agentOutput = out)),
    );
  /** What answered a pod's requests to the VIP: a backend, or "envoy>" a backend. */
  const backends = (count = 30) => {
    const [res] = pod.client([{ op: 'http', host: '10.96.0.80', port: 80, count }]);
    return [...new Set(res.map((r: any) => (r.via === 'envoy' ? `envoy>${r.backend}` : (r.backend ?? r.code))))].sort().join(',');
  };

  await startAgentProcess();
  t.equal(await eventually(() => backends() === 'b1,b2' && 'b1,b2', 10_000, 'both backends'), 'b1,b2', 'the VIP reaches both backends');
  const lo = w.sh('ip', ['addr', 'show', 'dev', 'lo']);
  t.ok(lo.includes(`inet ${PROXY.v4}/32`) && lo.includes(`inet6 ${PROXY.v6}/128`), 'the agent put the node proxy addresses on the node lo');

  write('web.yaml', [service('web', [{ port: 80, name: 'http' }], { clusterIP: '10.96.0.80' }), slice(BACKENDS.slice(1))]);
  await eventually(() => backends() === 'b2', 10_000, 'the removed backend to stop getting connections');
  t.pass('a YAML edit reaches the maps');

  t.test('a Service goes to its L7 listener only once Envoy has accepted it', async (t) => {
    write('cec.yaml', [cec('l7', { services: [{ name: 'web', ports: [80] }], backendServices: [{ name: 'web' }], resources: splitResources({ 'default/web': 100 }) })]);
    await eventually(() => /"redirects":\[|snapshot published/.test(agentOutput()), 5000, 'the CEC to publish');
    await new Promise((r) => setTimeout(r, 1000));
    t.equal(backends(10), 'b2', 'with no Envoy to accept the listener, connections still go to the backend');
    await startEnvoy(t, renderBootstrap({ nodeId: 'dp-node', ads: 'sotw', socketPath, healthPort: 0 }), [], w.ns);
    await eventually(() => backends(10) === 'envoy>b2', 20_000, 'the redirect once Envoy ACKs');
    t.pass("after the ACK the pod's connections to the VIP land on Envoy's listener at the node proxy address");
    write('cec.yaml', []);
    await eventually(() => backends(10) === 'b2', 10_000, 'the redirect to go with the CEC');
    t.pass('deleting the CEC sends the Service straight to its backends again');
  });

  t.test("when Envoy dies its Services go back to their backends; a new Envoy gets them once it ACKs listeners", async (t) => {
    const bootstrap = () => renderBootstrap({ nodeId: 'dp-node', ads: 'sotw', socketPath, adminPort: 0 });
    write('cec.yaml', [cec('l7', { services: [{ name: 'web', ports: [80] }], backendServices: [{ name: 'web' }], resources: splitResources({ 'default/web': 100 }) })]);
    const first = await startEnvoy(t, bootstrap(), [], w.ns);
    await eventually(() => backends(10) === 'envoy>b2', 20_000, 'the redirect once Envoy ACKs');
    process.kill(first.pid, 'SIGKILL');
    await eventually(() => backends(10) === 'b2', 10_000, 'the redirect to go once the grace is over');
    t.pass('with no Envoy stream past the grace, the VIP goes straight to its backend');

    // A real Envoy that takes clusters over ADS but no listeners: connected and ACKing, yet nothing listens at the proxy address.
    const noListeners = bootstrap();
    delete noListeners.dynamic_resources.lds_config;
    const mark = agentOutput().length;
    const clustersOnly = await startEnvoy(t, noListeners, [], w.ns);
    await eventually(async () => (await clustersOnly.configDump()).clusters['default/web'], 20_000, 'the clusters-only Envoy to take the clusters');
    await eventually(() => agentOutput().slice(mark).split('\n').some((l) => l.includes('"msg":"ACK"') && l.includes('cluster.v3.Cluster"')), 10_000, 'its clusters ACK');
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, ENVOY_GRACE_MS / 2));
      t.equal(backends(10), 'b2', 'an Envoy that has ACKed no listener gets no traffic', { diagnostic: false });
    }
    await clustersOnly.stop();

    await startEnvoy(t, bootstrap(), [], w.ns);
    await eventually(() => backends(10) === 'envoy>b2', 20_000, 'the redirect once the new Envoy ACKs listeners');
    t.pass("the new Envoy's listener ACK steers the Service back");
    write('cec.yaml', []);
    await eventually(() => backends(10) === 'b2', 10_000, 'the redirect to go with the CEC');
  });

  t.test('killing the agent leaves connections working; a restart adopts without duplicates or leaks', async (t) => {
    const count = () => execFileSync('bpftool', ['cgroup', 'show', w.cgroupDir], { encoding: 'utf8' }).split('\n').filter((l) => /sluice_/.test(l)).length;
    const bpftool = (...args: string[]) => JSON.parse(execFileSync('bpftool', [...args, '-j'], { encoding: 'utf8' }));
    // By id, not by counting every sluice map on the machine: other suites may run beside this one.
    const pinnedMaps = () => readdirSync(w.pinDir).filter((f) => f.startsWith('sluice_')).map((f) => bpftool('map', 'show', 'pinned', join(w.pinDir, f)).id).sort();
    const attachedMaps = () => [...new Set(bpftool('cgroup', 'show', w.cgroupDir).flatMap((p: any) => bpftool('prog', 'show', 'id', String(p.id)).map_ids ?? []))].sort();
    const mapsBefore = pinnedMaps();
    t.ok(mapsBefore.length >= 5, `the maps are pinned (${mapsBefore.length})`);
    t.equal(count(), SOCK_LB_PROGRAMS.length, 'one program per hook');
    agent!.kill('SIGKILL');
    await new Promise((r) => agent!.once('exit', r));
    t.equal(backends(), 'b2', 'connections to the VIP work with no agent running');
    await startAgentProcess();
    await eventually(() => /adopted the datapath/.test(agentOutput()), 10_000, 'the adoption log line');
    t.equal(count(), SOCK_LB_PROGRAMS.length, 'still one program per hook after the restart');
    t.same(pinnedMaps(), mapsBefore, 'the same pinned maps, not new ones');
    t.ok(attachedMaps().every((id: number) => mapsBefore.includes(id)), 'the attached programs use only the pinned maps');
    t.equal(backends(), 'b2', 'and connections keep working');
    write('web.yaml', [service('web', [{ port: 80, name: 'http' }], { clusterIP: '10.96.0.80' }), slice(BACKENDS)]);
    await eventually(() => backends() === 'b1,b2', 10_000, 'an edit after the restart');
    t.pass('the restarted agent applies changes');
    agent!.kill('SIGTERM');
    await new Promise((r) => agent!.once('exit', r));
  });
});

t.test('a datapath the machine cannot provide is a one-line error at start', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-agent-nobpf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = spawn(process.execPath, [cli, 'agent', '--resources', dir, '--socket', join(dir, 'x.sock'), '--state-dir', dir, '--datapath', '--bpf-dir', join(dir, 'pins'), '--proxy-address', '127.0.0.1,::1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  r.stderr!.on('data', (d) => (err += d));
  const code = await new Promise((res) => r.once('exit', res));
  t.equal(code, 1);
  t.match(err, new RegExp(`^sluice: ${join(dir, 'pins')} is not on a bpffs mount; mount one first`, 'm'));
  t.notMatch(err, /\n\s+at /, 'no stack trace');
});
