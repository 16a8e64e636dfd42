// Install and uninstall on the real kernel and a real API server: the agent
// mounts bpffs where there is none, and `sluice cleanup`, run as the chart's
// preStop hook runs it (as the agent's ServiceAccount, with the chart's RBAC),
// takes the datapath off the node only once the DaemonSet is deleted, leaves
// nothing pinned or attached, and is safe to repeat.
import t from 'tap';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { eventually } from './helpers/envoy.js';
import { HELM, startKubeCluster } from './helpers/kube-apiserver.js';
import { endpointSlice, service } from './helpers/kube.js';
import { freePort } from './helpers/net.js';
import { netnsWorld, stopChild } from './helpers/netns.js';
import { addProxyAddresses, DEFAULT_PROXY_ADDRESSES as PROXY } from '../src/redirect/proxy-address.js';

const BACKENDS = ['10.244.5.1', '10.244.5.2'];
const VIP = '10.96.5.80';
const NS = 'sluice-system';
const BPF_FS_MAGIC = 0xcafe4a11;
// The agent and cleanup run in the machine's namespace here (to reach the test API server): loopback proxy
// addresses, so neither touches the machine's lo. Removal of real ones is checked inside the test netns.
const LOOPBACK = ['--proxy-address', '127.0.0.1,::1'];
const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'dist/cli.js');

const cluster = await startKubeCluster(t);
const yamlOf = (objs: object[]) => objs.map((o) => stringify(o)).join('---\n');

/** The chart as `helm template` renders it with default values. */
function chart(): any[] {
  const r = spawnSync(HELM, ['template', 'sluice', join(root, 'chart'), '--namespace', NS, '--kube-version', '1.34.4'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`helm template: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS()).filter(Boolean);
}

/** A kubeconfig that authenticates as `token` against `server`. */
function kubeconfig(dir: string, name: string, server: string, token: string): string {
  const file = join(dir, name);
  writeFileSync(file, stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: 'u', user: { token } }],
    contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'c',
  }));
  return file;
}

t.test('the agent mounts bpffs; cleanup runs only once the DaemonSet is deleted, removes everything, and can run again', async (t) => {
  let agent: ChildProcess | undefined;
  const w = await netnsWorld(t, BACKENDS);
  // An empty directory as the node's bpffs root: the agent must mount it itself.
  const bpfRoot = mkdtempSync(join(tmpdir(), 'sluice-bpfroot-'));
  t.teardown(() => {
    // Unmounting the bpffs drops whatever a failed run left pinned in it.
    spawnSync('umount', [bpfRoot]);
    rmSync(bpfRoot, { recursive: true, force: true });
  });
  // Registered last, so it runs first (tap tears down last-in first-out): the agent goes before its bpffs, cgroup and netns.
  t.teardown(() => stopChild(agent));
  const pinDir = join(bpfRoot, 'sluice');
  await w.servers({ tcp: BACKENDS.map((ip, i) => ({ ip, port: 8080, name: `b${i + 1}` })) });
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cleanup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(dir, 'web.yaml'), yamlOf([service('web', [{ port: 80, name: 'http' }], { clusterIP: VIP }), endpointSlice('web', 'http', 8080, BACKENDS.map((ip) => ({ ip })))]));
  renameSync(join(dir, 'web.yaml'), join(src, 'web.yaml'));

  const vip = (count = 10) => w.client([{ op: 'tcp', host: VIP, port: 80, count }])[0] as any[];
  const attached = () => execFileSync('bpftool', ['cgroup', 'show', w.cgroupDir], { encoding: 'utf8' }).split('\n').filter((l) => /sluice_/.test(l)).length;

  t.not(statfsSync(bpfRoot).type, BPF_FS_MAGIC, 'before: the root is a plain directory');
  let output = '';
  agent = spawn(process.execPath, [cli, 'agent', '--source', `dir:${src}`, '--node', 'n1', '--socket', join(dir, 'xds.sock'), '--state-dir', join(dir, 'state'), '--datapath', '--bpf-root', bpfRoot, '--cgroup-dir', w.cgroupDir, ...LOOPBACK], { stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout!.on('data', (d) => (output += d));
  agent.stderr!.on('data', (d) => (output += d));
  await eventually(() => /snapshot published/.test(output) || agent!.exitCode !== null, 30_000, 'the agent to publish');
  t.equal(agent.exitCode, null, `the agent runs: ${output.slice(-2000)}`);
  t.equal(statfsSync(bpfRoot).type, BPF_FS_MAGIC, 'the agent mounted bpffs at --bpf-root');
  t.ok(existsSync(join(pinDir, 'links')), 'and pins under BPF-ROOT/sluice, the default --bpf-dir');
  await eventually(() => vip().every((r) => /^b[12]$/.test(r.backend)), 10_000, 'the VIP to reach the backends');
  t.equal(attached(), 8, 'one program per hook');
  agent.kill('SIGTERM');
  await new Promise((r) => agent!.once('exit', r));
  t.ok(vip().every((r) => /^b[12]$/.test(r.backend)), 'with the agent stopped the VIP still works (pins hold the datapath)');
  const mapIds = readdirSync(pinDir).filter((f) => f.startsWith('sluice_')).map((f) => JSON.parse(execFileSync('bpftool', ['map', 'show', 'pinned', join(pinDir, f), '-j'], { encoding: 'utf8' })).id as number);
  t.ok(mapIds.length >= 5, `the maps are pinned (${mapIds.length})`);

  // The chart's objects (no controllers run: the DaemonSet makes no pods), and a token for its ServiceAccount.
  const { kubectl, kubectlOk } = cluster;
  kubectlOk(['create', 'namespace', NS]);
  kubectlOk(['create', 'namespace', 'other']);
  const objs = chart();
  kubectlOk(['apply', '-f', '-'], { input: yamlOf(objs) });
  const ds = objs.find((o) => o.kind === 'DaemonSet');
  kubectlOk(['apply', '-f', '-'], { input: yamlOf([{ ...ds, metadata: { name: 'sluice', namespace: 'other' } }]) });
  const token = kubectlOk(['create', 'token', 'sluice', '-n', NS]).trim();
  const asAgent = kubeconfig(dir, 'sa.kubeconfig', cluster.url, token);
  const unreachable = kubeconfig(dir, 'down.kubeconfig', `https://127.0.0.1:${await freePort()}`, token);

  // The preStop hook's own command, pointed at this test's pin dir.
  const hook: string[] = ds.spec.template.spec.containers.find((c: any) => c.name === 'agent').lifecycle.preStop.exec.command;
  t.equal(hook[0], 'sluice');
  const marker = join(dir, 'uninstalling');
  const preStop = (config = asAgent, args = hook.slice(1).map((a) => (a === '/sys/fs/bpf/sluice' ? pinDir : a === '/var/run/sluice/uninstalling' ? marker : a))) => {
    const r = spawnSync(process.execPath, [cli, ...args, '--kubeconfig', config, ...LOOPBACK], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const intact = (t: Parameters<Parameters<typeof t.test>[0]>[0], why: string) => {
    t.equal(attached(), 8, `${why}: programs still attached`);
    t.ok(existsSync(pinDir), `${why}: pins still there`);
    t.ok(vip(5).every((r) => /^b[12]$/.test(r.backend)), `${why}: the VIP still works`);
  };

  t.test('a pod restart: the DaemonSet is there, so nothing is removed', async (t) => {
    const r = preStop();
    t.equal(r.code, 0, r.err);
    t.match(r.out, new RegExp(`daemonset ${NS}/sluice is still there.*the datapath stays`));
    intact(t, 'restart');
  });

  t.test('a rolling update (a new pod template) is not an uninstall', async (t) => {
    kubectlOk(['patch', 'daemonset', 'sluice', '-n', NS, '--type=merge', '-p', '{"spec":{"template":{"metadata":{"annotations":{"rev":"2"}}}}}']);
    t.equal(JSON.parse(kubectlOk(['get', 'daemonset', 'sluice', '-n', NS, '-o', 'json'])).metadata.generation, 2, 'the DaemonSet moved to generation 2');
    const r = preStop();
    t.equal(r.code, 0, r.err);
    t.match(r.out, /still there/);
    intact(t, 'update');
  });

  t.test('in doubt (no API server, or a refusal) the datapath stays and the hook fails loudly', async (t) => {
    const down = preStop(unreachable);
    t.equal(down.code, 1);
    t.match(down.err, new RegExp(`^sluice: cannot read daemonset ${NS}/sluice: `), `one line: ${down.err}`);
    const forbidden = preStop(asAgent, ['cleanup', '--bpf-dir', pinDir, '--if-daemonset-gone', 'other/sluice']);
    t.equal(forbidden.code, 1, 'the Role reaches only its own namespace');
    t.match(forbidden.err, /cannot read daemonset other\/sluice: .*forbidden/i);
    intact(t, 'in doubt');
  });

  t.test('a DaemonSet being deleted: the hook detaches the programs and removes every pin and map', async (t) => {
    kubectlOk(['patch', 'daemonset', 'sluice', '-n', NS, '--type=merge', '-p', '{"metadata":{"finalizers":["sluice.test/hold"]}}']);
    kubectlOk(['delete', 'daemonset', 'sluice', '-n', NS, '--wait=false']);
    t.ok(JSON.parse(kubectlOk(['get', 'daemonset', 'sluice', '-n', NS, '-o', 'json'])).metadata.deletionTimestamp, 'it has a deletionTimestamp');
    const r = preStop();
    t.equal(r.code, 0, r.err);
    t.match(r.out, new RegExp(`daemonset ${NS}/sluice is being deleted: removing the datapath`));
    t.match(r.out, new RegExp(`detached 8 programs, removed ${8 + mapIds.length} pins`), `8 links and ${mapIds.length} maps`);
    t.equal(attached(), 0, 'no sluice program is attached to the cgroup');
    t.notOk(existsSync(pinDir), 'the pin dir is gone');
    // Newer kernels populate a bpffs root with their own preload iterators (maps.debug, progs.debug).
    t.same(readdirSync(bpfRoot).filter((f) => !f.endsWith('.debug')), [], 'nothing of ours is left on the bpffs');
    for (const id of mapIds) await eventually(() => spawnSync('bpftool', ['map', 'show', 'id', String(id)]).status !== 0, 10_000, `map ${id} to be freed`);
    t.pass('every map the agent made is freed');
    const after = vip(3);
    t.ok(after.every((r) => r.error), `the VIP no longer translates: ${JSON.stringify(after[0])}`);
    t.equal(statfsSync(bpfRoot).type, BPF_FS_MAGIC, "the node's bpffs stays mounted");
  });

  t.test('cleanup is idempotent', async (t) => {
    const again = preStop();
    t.equal(again.code, 0, again.err);
    t.match(again.out, /nothing to do/);
    kubectlOk(['patch', 'daemonset', 'sluice', '-n', NS, '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    await eventually(() => kubectl(['get', 'daemonset', 'sluice', '-n', NS]).code !== 0, 10_000, 'the DaemonSet to go');
    const gone = preStop();
    t.equal(gone.code, 0, gone.err);
    t.match(gone.out, new RegExp(`daemonset ${NS}/sluice is gone: removing the datapath\\nnothing to do`), 'a deleted DaemonSet (404) counts as gone');
    const plain = spawnSync(process.execPath, [cli, 'cleanup', '--bpf-root', bpfRoot, ...LOOPBACK], { encoding: 'utf8' });
    t.equal(plain.status, 0, plain.stderr);
    t.match(plain.stdout, /^nothing to do: .*sluice does not exist$/m);
  });

  t.test('helm uninstall: the hook\'s RBAC goes right after the DaemonSet; the agent, watching, left the hook a note', async (t) => {
    const agentArgs: string[] = ds.spec.template.spec.containers.find((c: any) => c.name === 'agent').args;
    const flag = (f: string) => agentArgs[agentArgs.indexOf(f) + 1];
    t.equal(flag('--uninstall-marker'), '/var/run/sluice/uninstalling', "the chart's agent writes the marker its hook reads");
    kubectlOk(['apply', '-f', '-'], { input: yamlOf([ds]) });
    output = '';
    agent = spawn(process.execPath, [cli, 'agent', '--source', `dir:${src}`, '--node', 'n1', '--socket', join(dir, 'xds.sock'), '--state-dir', join(dir, 'state'), '--datapath', '--bpf-root', bpfRoot, '--cgroup-dir', w.cgroupDir, ...LOOPBACK, '--kubeconfig', asAgent, '--daemonset', flag('--daemonset'), '--uninstall-marker', marker, '--log-level', 'debug'], { stdio: ['ignore', 'pipe', 'pipe'] });
    agent.stdout!.on('data', (d) => (output += d));
    agent.stderr!.on('data', (d) => (output += d));
    await eventually(() => vip().every((r) => /^b[12]$/.test(r.backend)), 30_000, 'the VIP to work again');
    const present = preStop();
    t.match(present.out, /still there/, 'with the DaemonSet in place the hook leaves the datapath');
    t.notOk(existsSync(marker), 'and there is no marker');
    // helm uninstall's order: the DaemonSet (background propagation: gone at once), then the RBAC and the ServiceAccount.
    kubectlOk(['delete', 'daemonset', 'sluice', '-n', NS]);
    kubectlOk(['delete', 'rolebinding/sluice-lifecycle', 'role/sluice-lifecycle', 'serviceaccount/sluice', '-n', NS]);
    await eventually(() => existsSync(marker), 20_000, `the agent's marker: ${output.slice(-1500)}`);
    await eventually(() => /the DaemonSet is being deleted: the preStop hook will remove the datapath/.test(output), 10_000, 'the log line');
    t.pass('the agent says so in its log');
    const unmarked = preStop(asAgent, ['cleanup', '--bpf-dir', pinDir, '--if-daemonset-gone', `${NS}/sluice`]);
    t.equal(unmarked.code, 1, 'without the marker the hook can no longer ask');
    t.match(unmarked.err, /cannot read daemonset .*HTTP 40[13]/, unmarked.err);
    t.equal(attached(), 8, 'and leaves the datapath');
    const r = preStop();
    t.equal(r.code, 0, r.err);
    t.match(r.out, new RegExp(`being deleted: removing the datapath\\ndetached 8 programs, removed ${8 + mapIds.length} pins`));
    t.equal(attached(), 0, 'no program attached');
    t.ok(vip(3).every((x) => x.error), 'the VIP no longer translates');
    agent.kill('SIGTERM');
    await new Promise((res) => agent!.once('exit', res));
    t.notOk(existsSync(pinDir), 'the agent stopping after its hook leaves nothing behind');
  });

  t.test("the node proxy addresses the agent put on a node's lo go too (in the test netns)", async (t) => {
    const lo = () => w.sh('ip', ['addr', 'show', 'dev', 'lo']);
    const added = addProxyAddresses(PROXY, (args) => void w.sh('ip', args));
    t.same(added, [], 'added in the netns');
    t.match(lo(), PROXY.v4);
    const r = execFileSync('nsenter', [`--net=/var/run/netns/${w.ns}`, process.execPath, cli, 'cleanup', '--bpf-root', bpfRoot], { encoding: 'utf8' });
    t.match(r, /nothing to do/);
    t.notMatch(lo(), PROXY.v4, `${PROXY.v4} is gone from lo`);
    t.notMatch(lo(), PROXY.v6, `${PROXY.v6} too`);
  });

  t.test('a --bpf-dir that is not on bpffs is refused, and nothing in it removed', async (t) => {
    const plain = join(dir, 'not-bpffs');
    mkdirSync(plain);
    writeFileSync(join(plain, 'keep'), 'x');
    const r = spawnSync(process.execPath, [cli, 'cleanup', '--bpf-dir', plain, ...LOOPBACK], { encoding: 'utf8' });
    t.equal(r.status, 1);
    t.match(r.stderr, new RegExp(`^sluice: ${plain} is not on a bpffs mount; it holds no pins, and nothing was removed\\n$`));
    t.ok(existsSync(join(plain, 'keep')), 'the file is still there');
  });
});
