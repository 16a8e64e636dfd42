// The `sluice` command as users run it: the built bin, a real Envoy.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { envoyBinary, eventually, startEnvoy } from './helpers/envoy.js';
import { closeHttpAgents, freePort, httpGet, startBackend } from './helpers/net.js';
import { edsCluster, endpoints, listener, route } from './helpers/resources.js';

const bin = new URL('../bin/sluice.js', import.meta.url).pathname;
t.ok(existsSync(new URL('../dist/cli.js', import.meta.url)), 'dist is built (scripts/setup.sh builds it)');
t.teardown(closeHttpAgents);

const sluice = (...args: string[]) => execFileSync(process.execPath, [bin, ...args], { encoding: 'utf8' });

t.test('sluice bootstrap prints a bootstrap Envoy accepts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const ads of ['sotw', 'delta']) {
    const out = sluice('bootstrap', '--node', 'worker-1', '--ads', ads, '--socket', '/run/test/xds.sock', '--health-port', '19901');
    const b = parse(out);
    t.equal(b.node.id, 'worker-1');
    t.equal(b.dynamic_resources.ads_config.api_type, ads === 'delta' ? 'DELTA_GRPC' : 'GRPC');
    t.equal(b.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path, '/run/test/xds.sock');
    t.same(b.admin.address, { pipe: { path: '/run/test/envoy-admin.sock', mode: 0o600 } }, 'admin only on a unix socket beside the xDS one, for its owner');
    t.same(b.static_resources.listeners.map((l: any) => l.address.socket_address), [{ address: '127.0.0.1', port_value: 19901 }], 'the one TCP listener: the probes, on loopback');
    const file = join(dir, `${ads}.yaml`);
    writeFileSync(file, out);
    const v = execFileSync(envoyBinary(), ['--mode', 'validate', '-c', file, '--use-dynamic-base-id'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    t.match(v, /OK/, `Envoy --mode validate accepts the ${ads} bootstrap`);
  }
  t.throws(() => execFileSync(process.execPath, [bin, 'bootstrap', '--ads', 'nope'], { stdio: 'pipe' }), 'bad flag value fails');
});

t.test('sluice agent serves a directory to Envoy and reports bad documents by file and field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  const resources = join(dir, 'resources');
  mkdirSync(resources);
  const backend = await startBackend(t, 'backend');
  const port = await freePort();
  writeFileSync(
    join(resources, 'config.yaml'),
    [listener('ingress', port, 'main'), route('main', 'svc'), edsCluster('svc'), endpoints('svc', [backend.port])].map((d) => stringify(d)).join('---\n'),
  );
  const bad = { ...(edsCluster('broken') as object), not_a_field: 1 };
  writeFileSync(join(resources, 'bad.yaml'), stringify(bad));
  const socket = join(dir, 'xds.sock');
  let logs = '';
  const agent = spawn(process.execPath, [bin, 'agent', '--resources', resources, '--socket', socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  agent.stderr!.on('data', (d) => (logs += d));
  t.teardown(() => {
    agent.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  await eventually(() => existsSync(socket), 60_000, 'the agent socket'); // a deadline, not a latency claim: start-up on a loaded machine takes seconds
  const b = parse(sluice('bootstrap', '--node', 'cli-node', '--socket', socket, '--health-port', '0'));
  await startEnvoy(t, b);
  const r = await eventually(async () => {
    const res = await httpGet(port, '/');
    return res.status === 200 && res;
  }, 15_000, 'a request through Envoy');
  t.equal(r.backend, 'backend', 'the agent process served Envoy over its unix socket');
  const errorLine = logs.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.file === 'bad.yaml');
  t.ok(errorLine, 'the bad document is logged');
  t.match(errorLine?.error, /not_a_field/, 'naming the field');
  t.equal(errorLine?.object, 'envoy.config.cluster.v3.Cluster/broken', 'and the object');
});

t.test('sluice translate prints resources by type and fails on bad input, naming file, object and field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const examples = new URL('../examples/kubernetes', import.meta.url).pathname;
  const out = JSON.parse(sluice('translate', '-f', examples, '--node', 'n1', '-o', 'json'));
  t.same(Object.keys(out.resources).sort(), ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration']);
  t.ok(out.resources.Listener.every((l: any) => l['@type'] === 'type.googleapis.com/envoy.config.listener.v3.Listener'), 'each with its @type');
  t.ok(out.resources.Listener.some((l: any) => l.name === 'default/echo-split/listener'));
  t.ok(out.redirects.some((r: any) => r.service === 'default/echo' && r.listener === 'gamma/default/echo:8080'));

  writeFileSync(
    join(dir, 'bad.yaml'),
    stringify({ apiVersion: 'cilium.io/v2', kind: 'CiliumEnvoyConfig', metadata: { name: 'oops' }, spec: { resources: [{ '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: 'c', conect_timeout: '1s' }] } }),
  );
  let failed: any;
  try {
    execFileSync(process.execPath, [bin, 'translate', '-f', examples, '-f', dir], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    failed = e;
  }
  t.equal(failed?.status, 1, 'exit status 1');
  t.match(failed?.stderr, /error: bad\.yaml\[0\]: CiliumEnvoyConfig default\/oops: spec\.resources\[0\]\.conect_timeout: unknown field "conect_timeout"/);
  t.match(failed?.stdout, /default\/echo-split\/listener/, 'the other objects still translate');
});
