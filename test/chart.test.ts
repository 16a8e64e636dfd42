// The Helm chart: lints clean, its values schema refuses bad values, it renders
// what the DaemonSet needs (the bootstrap `sluice bootstrap` prints, run by a
// real Envoy with the container's own args), a real kube-apiserver accepts
// every object, helm installs it (CRDs too), and its RBAC, impersonated,
// allows exactly what the agent needs.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { envoyBinary, eventually } from './helpers/envoy.js';
import { GATEWAY_API_CRDS, HELM, startKubeCluster } from './helpers/kube-apiserver.js';
import { freePort } from './helpers/net.js';

const root = new URL('..', import.meta.url).pathname;
const CHART = join(root, 'chart');
const NS = 'sluice-system';
const RELEASE = 'sluice';
const SA = `system:serviceaccount:${NS}:sluice`;
const SOCKET = '/var/run/sluice/xds.sock';
const KUBE_VERSION = '1.34.4';

// Started before any subtest is queued, so the root test cannot end (and tear it down) while it starts.
const cluster = await startKubeCluster(t);
const { kubectl, kubectlOk } = cluster;
const yamlOf = (objs: object[]) => objs.map((o) => stringify(o)).join('---\n');

/** A raw API request as the agent's ServiceAccount (the admin token, impersonating it). */
function request(method: string, path: string, body: unknown, contentType = 'application/json'): Promise<{ status: number; body: string }> {
  const token = parse(readFileSync(cluster.kubeconfig, 'utf8')).users[0].user.token;
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${cluster.url}${path}`,
      {
        method,
        rejectUnauthorized: false,
        headers: {
          authorization: `Bearer ${token}`,
          'impersonate-user': SA,
          'impersonate-group': ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
          'content-type': contentType,
          'content-length': Buffer.byteLength(data),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

function helm(args: string[]) {
  const r = spawnSync(HELM, args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
}

/** `helm template` with --set values; throws on failure. */
function render(set: string[] = []): any[] {
  const r = helm(['template', RELEASE, CHART, '--namespace', NS, '--kube-version', KUBE_VERSION, ...set.flatMap((s) => ['--set', s])]);
  if (r.code !== 0) throw new Error(`helm template failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS())
    .filter(Boolean);
}

const find = (objs: any[], kind: string, name?: string) => objs.find((o) => o.kind === kind && (!name || o.metadata.name === name));
const container = (ds: any, name: string) => ds.spec.template.spec.containers.find((c: any) => c.name === name);

/** What `sluice bootstrap` prints, as the chart's ConfigMap must hold. */
function cliBootstrap(args: string[]): object {
  const env = { ...process.env };
  delete env.NODE_NAME;
  const r = spawnSync(process.execPath, [join(root, 'dist/cli.js'), 'bootstrap', '--socket', SOCKET, ...args], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`sluice bootstrap failed: ${r.stderr}`);
  return parse(r.stdout);
}

t.test('helm lint is clean, with default and with non-default values', async (t) => {
  for (const set of [[], ['identity.ca.existingSecret=sluice-ca', 'envoy.ads=delta', 'agent.extraCapabilities={SYS_ADMIN}', 'kubernetes.apiServerHost=10.0.0.1', 'kubernetes.apiServerPort=6443']]) {
    const r = helm(['lint', '--strict', CHART, '--kube-version', KUBE_VERSION, ...set.flatMap((s) => ['--set', s])]);
    const out = r.stdout + r.stderr;
    t.equal(r.code, 0, `helm lint ${set.join(' ')} exits 0:\n${out}`);
    t.notMatch(out, /^\[(WARNING|ERROR)\]/m, 'no [WARNING] or [ERROR] lines');
    t.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  }
});

t.test('values.schema.json refuses bad values, naming them', async (t) => {
  const bad: [string, RegExp][] = [
    ['metrics.port=0', /'\/metrics\/port'/],
    ['metrics.port=70000', /'\/metrics\/port'/],
    ['logLevel=verbose', /'\/logLevel'/],
    ['envoy.ads=rest', /'\/envoy\/ads'/],
    ['identity.trustDomain=Not A Domain', /'\/identity\/trustDomain'/],
    ['identity.ca.existingSecret=Bad_Name', /'\/identity\/ca\/existingSecret'/],
    ['updateStrategy.maxUnavailable=0', /'\/updateStrategy\/maxUnavailable'/],
    ['agent.image.pullPolicy=Sometimes', /'\/agent\/image\/pullPolicy'/],
    ['datapath.cgroupRoot=sys/fs/cgroup', /'\/datapath\/cgroupRoot'/],
    ['notAValue=1', /additional properties 'notAValue' not allowed/],
  ];
  for (const [set, field] of bad) {
    const r = helm(['template', RELEASE, CHART, '--kube-version', KUBE_VERSION, '--set', set]);
    t.not(r.code, 0, `--set ${set} is refused`);
    t.match(r.stderr, field, `--set ${set}: the error names the value (${field})`);
  }
  t.doesNotThrow(() => render(['updateStrategy.maxUnavailable=10%', 'metrics.port=9090', 'identity.trustDomain=prod.example.org']), 'good values render');
});

t.test('the DaemonSet: node Envoy on the host network, agent args, probes, mounts and least privilege', async (t) => {
  const objs = render();
  const ds = find(objs, 'DaemonSet');
  const pod = ds.spec.template.spec;
  t.equal(pod.hostNetwork, true, 'hostNetwork');
  t.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
  t.equal(pod.priorityClassName, 'system-node-critical');
  t.same(pod.tolerations, [{ operator: 'Exists' }], 'tolerates every taint');
  t.same(ds.spec.updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
  t.same(find(render(['updateStrategy.maxUnavailable=25%']), 'DaemonSet').spec.updateStrategy.rollingUpdate, { maxUnavailable: '25%' }, 'maxUnavailable is configurable');
  t.equal(pod.securityContext.fsGroup, 101, "fsGroup: the socket's group is the Envoy image's gid 101");
  t.same(pod.containers.map((c: any) => c.name), ['agent', 'envoy']);
  t.equal(pod.serviceAccountName, 'sluice');

  const agent = container(ds, 'agent');
  t.match(agent.image, /^ghcr\.io\/sluice-mesh\/sluice:/);
  t.same(agent.args, [
    'agent', '--source', 'kube', '--node', '$(NODE_NAME)', '--socket', SOCKET, '--state-dir', '/var/lib/sluice', '--datapath',
    '--bpf-dir', '/sys/fs/bpf/sluice', '--cgroup-dir', '/run/sluice/cgroupv2', '--metrics-port', '9962', '--envoy-health-port', '9901',
    '--daemonset', `${NS}/sluice`, '--uninstall-marker', '/var/run/sluice/uninstalling', '--log-level', 'info',
    '--trust-domain', 'cluster.local', '--ca-secret', `${NS}/sluice-ca`, '--svid-ttl', '1h', '--jwt-ttl', '5m',
    '--workload-api-socket', '/run/sluice/workload/socket',
  ]);
  const nodeName = (c: any) => c.env.find((e: any) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath;
  t.equal(nodeName(agent), 'spec.nodeName', 'agent NODE_NAME from the downward API');
  for (const [probe, path] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz'], ['startupProbe', '/healthz']])
    t.same(agent[probe].httpGet, { host: '127.0.0.1', path, port: 'metrics' }, `agent ${probe} ${path}`);
  t.same(agent.ports, [{ name: 'metrics', containerPort: 9962, protocol: 'TCP' }]);
  const asc = agent.securityContext;
  t.equal(asc.privileged, false, 'agent not privileged');
  t.same(asc.capabilities, { drop: ['ALL'], add: ['BPF', 'PERFMON', 'NET_ADMIN', 'SYS_RESOURCE'] }, 'agent: drop ALL, add only what BPF and cgroup attach need');
  t.equal(asc.allowPrivilegeEscalation, false);
  t.equal(asc.readOnlyRootFilesystem, true);
  const mounts = Object.fromEntries(agent.volumeMounts.map((m: any) => [m.name, m]));
  const volumes = Object.fromEntries(pod.volumes.map((v: any) => [v.name, v]));
  t.same([mounts.bpf.mountPath, mounts.bpf.mountPropagation, volumes.bpf.hostPath.path], ['/sys/fs/bpf', 'HostToContainer', '/sys/fs/bpf'], 'bpffs from the host');
  t.same([mounts.cgroup.mountPath, volumes.cgroup.hostPath.path], ['/run/sluice/cgroupv2', '/sys/fs/cgroup'], "the host's cgroup2 root at --cgroup-dir");
  t.same([mounts.state.mountPath, volumes.state.hostPath.path], ['/var/lib/sluice', '/var/lib/sluice'], 'state dir on the host');
  t.same(volumes['xds-socket'], { name: 'xds-socket', emptyDir: {} }, 'the socket directory is an emptyDir');

  const envoy = container(ds, 'envoy');
  t.equal(envoy.image, 'envoyproxy/envoy:v1.40.0');
  t.same(envoy.args.slice(0, 4), ['-c', '/etc/envoy/bootstrap.yaml', '--service-node', '$(NODE_NAME)']);
  t.equal(nodeName(envoy), 'spec.nodeName', 'envoy NODE_NAME from the downward API');
  t.same(envoy.readinessProbe.httpGet, { host: '127.0.0.1', path: '/ready', port: 9901 }, "readiness on the admin API's /ready, through the loopback health listener");
  t.same(envoy.startupProbe.httpGet, envoy.livenessProbe.httpGet, 'liveness starts once the health listener has come up');
  t.ok(envoy.startupProbe.periodSeconds * envoy.startupProbe.failureThreshold >= 60, 'which may take 30 s without the agent');
  const esc = envoy.securityContext;
  t.same([esc.runAsUser, esc.runAsGroup, esc.runAsNonRoot, esc.privileged, esc.allowPrivilegeEscalation], [101, 101, true, false, false], 'envoy non-root');
  t.same(esc.capabilities, { drop: ['ALL'] }, 'envoy: drop ALL, add nothing');
  const envoyMounts = Object.fromEntries(envoy.volumeMounts.map((m: any) => [m.name, m.mountPath]));
  t.equal(envoyMounts['xds-socket'], '/var/run/sluice', 'both containers share the socket directory');
  t.equal(mounts['xds-socket'].mountPath, '/var/run/sluice');
  t.equal(envoyMounts['envoy-bootstrap'], '/etc/envoy');
  t.equal(volumes['envoy-bootstrap'].configMap.name, find(objs, 'ConfigMap').metadata.name, 'the bootstrap ConfigMap is mounted');

  const withCa = find(render(['identity.ca.existingSecret=sluice-ca', 'agent.extraCapabilities={SYS_ADMIN}']), 'DaemonSet');
  const agent2 = container(withCa, 'agent');
  const arg = (args: string[], flag: string) => args[args.indexOf(flag) + 1];
  t.equal(arg(agent2.args, '--ca-secret'), `${NS}/sluice-ca`, 'the CA Secret is passed to the agent');
  t.equal(arg(agent.args, '--ca-secret'), `${NS}/sluice-ca`, "without one, the chart's own (which the first agent generates)");
  t.equal(arg(agent.args, '--workload-api-socket'), '/run/sluice/workload/socket', 'the Workload API socket');
  t.equal(mounts['workload-api'].mountPath, '/run/sluice/workload', '...in the hostPath workloads mount');
  t.same(volumes['workload-api'].hostPath, { path: '/run/sluice/workload', type: 'DirectoryOrCreate' });
  t.equal(find(objs, 'DaemonSet').spec.template.spec.hostPID, true, "the Workload API attests callers by the node's PIDs");
  t.same(agent2.securityContext.capabilities.add, ['BPF', 'PERFMON', 'NET_ADMIN', 'SYS_RESOURCE', 'SYS_ADMIN']);
  t.equal(agent2.securityContext.allowPrivilegeEscalation, true, 'SYS_ADMIN comes with allowPrivilegeEscalation, as the API server requires');
});

t.test("the bootstrap ConfigMap is what `sluice bootstrap --socket /var/run/sluice/xds.sock` prints", async (t) => {
  const data = (set: string[]) => parse(find(render(set), 'ConfigMap').data['bootstrap.yaml']);
  t.same(data([]), cliBootstrap([]), 'default values');
  t.same(data(['envoy.ads=delta', 'envoy.healthPort=19901']), cliBootstrap(['--ads', 'delta', '--health-port', '19901']), 'delta ADS and another health port');
  const checksum = (set: string[]) => find(render(set), 'DaemonSet').spec.template.metadata.annotations['checksum/envoy-bootstrap'];
  t.not(checksum([]), checksum(['envoy.healthPort=19901']), 'a bootstrap change rolls the pods');
});

t.test("a real Envoy runs the rendered bootstrap with the container's args; the probe paths answer on 127.0.0.1", async (t) => {
  const health = await freePort();
  const objs = render([`envoy.healthPort=${health}`]);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-chart-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'bootstrap.yaml');
  // The sockets' directory is the pod's emptyDir; here, a directory of the test's own.
  writeFileSync(file, find(objs, 'ConfigMap').data['bootstrap.yaml'].replaceAll('/var/run/sluice/', `${dir}/`));
  const envoy = container(find(objs, 'DaemonSet'), 'envoy');
  const args = envoy.args.map((a: string) => (a === '/etc/envoy/bootstrap.yaml' ? file : a === '$(NODE_NAME)' ? 'chart-node-1' : a));
  let logs = '';
  const child = spawn(envoyBinary(), [...args, '--concurrency', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (logs += d));
  child.stderr!.on('data', (d) => (logs += d));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const get = (path: string, port: number) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      httpGet({ host: envoy.livenessProbe.httpGet.host, port, path }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      }).on('error', reject);
    });
  const info = await eventually(async () => {
    if (child.exitCode !== null) throw new Error(`envoy exited ${child.exitCode}: ${logs}`);
    const r = await get(envoy.livenessProbe.httpGet.path, envoy.livenessProbe.httpGet.port).catch(() => undefined);
    return r?.status === 200 ? JSON.parse(r.body) : undefined;
  }, 60_000, 'the health listener'); // without an agent, Envoy starts listeners after CDS and LDS time out (15 s each)
  t.equal(info.node.id, 'chart-node-1', '--service-node sets the node id from NODE_NAME');
  t.equal(info.command_line_options.disable_hot_restart, true);
  const ready = await get(envoy.readinessProbe.httpGet.path, envoy.readinessProbe.httpGet.port);
  // The health listener exists only once Envoy has finished initialising, and then the server is live.
  t.same([ready.status, ready.body.trim()], [200, 'LIVE'], '/ready answers through the health listener');
  for (const path of ['/config_dump', '/stats', '/quitquitquit', '/'])
    t.equal((await get(path, health)).status, 404, `the health port serves nothing else of the admin API: ${path}`);
  t.ok(existsSync(join(dir, 'envoy-admin.sock')), 'the admin API is on the unix socket in the shared directory');
});

// ---- against the real API server -----------------------------------------------

// The agent reads HTTPRoutes; a minimal stand-in for Gateway API's CRD is enough for RBAC.
const HTTPROUTE_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'httproutes.gateway.networking.k8s.io', annotations: { 'api-approved.kubernetes.io': 'unapproved, a test stand-in' } },
  spec: {
    group: 'gateway.networking.k8s.io',
    names: { kind: 'HTTPRoute', listKind: 'HTTPRouteList', plural: 'httproutes', singular: 'httproute' },
    scope: 'Namespaced',
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }, status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } } },
      },
    ],
  },
};

t.test('setup: the HTTPRoute stand-in and the namespaces (the chart brings the cilium.io CRDs)', async () => {
  kubectlOk(['apply', '--server-side', '-f', '-'], { input: yamlOf([HTTPROUTE_CRD]) });
  kubectlOk(['apply', '--server-side', '-f', join(GATEWAY_API_CRDS, 'gateway.networking.k8s.io_referencegrants.yaml')]);
  kubectlOk(['wait', '--for=condition=Established', 'crd/httproutes.gateway.networking.k8s.io', 'crd/referencegrants.gateway.networking.k8s.io', '--timeout=60s']);
  kubectlOk(['create', 'namespace', NS]);
  kubectlOk(['create', 'namespace', 'other']);
});

t.test('the API server accepts every rendered object (server-side dry run)', async (t) => {
  for (const set of [[], ['identity.ca.existingSecret=sluice-ca', 'agent.extraCapabilities={CAP_SYS_ADMIN}', 'envoy.ads=delta', 'kubernetes.apiServerHost=192.0.2.1', 'kubernetes.apiServerPort=6443', 'updateStrategy.maxUnavailable=10%']]) {
    const objs = render(set);
    const r = kubectl(['apply', '--dry-run=server', '-f', '-'], { input: yamlOf(objs) });
    t.equal(r.code, 0, `kubectl apply --dry-run=server (${set.join(' ') || 'defaults'}): ${r.stderr}`);
    t.equal(r.stdout.trim().split('\n').length, objs.length, `${objs.length} objects accepted`);
    t.match(r.stdout, /daemonset\.apps\/sluice (created|configured) \(server dry run\)/);
  }
  // The allowPrivilegeEscalation switch in the template is needed: the API server refuses CAP_SYS_ADMIN without it.
  const ds = find(render(['agent.extraCapabilities={CAP_SYS_ADMIN}']), 'DaemonSet');
  t.equal(ds.spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation, true);
  ds.spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation = false;
  const r = kubectl(['apply', '--dry-run=server', '-f', '-'], { input: yamlOf([ds]) });
  t.not(r.code, 0, 'CAP_SYS_ADMIN with allowPrivilegeEscalation false is refused');
  t.match(r.stderr, /cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN/);
});

t.test('helm install into the real API server: the CRDs from crds/, every object, the notes', async (t) => {
  const r = helm(['install', RELEASE, CHART, '--namespace', NS, '--kubeconfig', cluster.kubeconfig, '--set', 'identity.ca.existingSecret=sluice-ca']);
  t.equal(r.code, 0, `helm install: ${r.stderr}`);
  t.match(r.stdout, /STATUS: deployed/);
  t.match(r.stdout, new RegExp(`kubectl -n ${NS} rollout status daemonset/sluice`), 'NOTES rendered');
  const crds = ['ciliumenvoyconfigs', 'ciliumclusterwideenvoyconfigs', 'ciliumnetworkpolicies', 'ciliumclusterwidenetworkpolicies'].map((p) => `crd/${p}.cilium.io`);
  kubectlOk(['wait', '--for=condition=Established', ...crds, '--timeout=60s']);
  for (const crd of crds) {
    const got = JSON.parse(kubectlOk(['get', crd, '-o', 'json']));
    const file = parse(readFileSync(join(root, 'crds', `${crd.slice(4).split('.')[0]}.yaml`), 'utf8'));
    t.same(got.spec.versions[0].schema, file.spec.versions[0].schema, `${crd}: helm installed the schema in crds/ (through chart/crds)`);
  }
  const installed = kubectlOk(['get', 'daemonset,configmap,serviceaccount,role,rolebinding', '-n', NS, '-o', 'name']).split('\n');
  for (const o of ['daemonset.apps/sluice', 'configmap/sluice-envoy', 'serviceaccount/sluice', 'role.rbac.authorization.k8s.io/sluice-ca', 'rolebinding.rbac.authorization.k8s.io/sluice-ca', 'role.rbac.authorization.k8s.io/sluice-lifecycle', 'rolebinding.rbac.authorization.k8s.io/sluice-lifecycle'])
    t.ok(installed.includes(o), `${o} installed`);
  t.equal(kubectl(['get', 'clusterrole/sluice', 'clusterrolebinding/sluice']).code, 0, 'ClusterRole and binding installed');
});

t.test("the ServiceAccount's RBAC, installed and impersonated: what the agent needs and nothing else", async (t) => {
  kubectlOk(['create', 'secret', 'generic', 'sluice-ca', '-n', NS, '--from-literal=tls.crt=x']);
  kubectlOk(['create', 'secret', 'generic', 'other-secret', '-n', NS, '--from-literal=a=b']);
  kubectlOk(['create', 'secret', 'generic', 'elsewhere', '-n', 'other', '--from-literal=a=b']);

  const canI = (args: string[]) => kubectl(['auth', 'can-i', ...args], { as: SA }).stdout.trim();
  const read = [
    'services', 'endpointslices.discovery.k8s.io', 'pods', 'namespaces', 'serviceaccounts', 'nodes',
    'ciliumenvoyconfigs.cilium.io', 'ciliumclusterwideenvoyconfigs.cilium.io', 'ciliumnetworkpolicies.cilium.io',
    'ciliumclusterwidenetworkpolicies.cilium.io', 'httproutes.gateway.networking.k8s.io', 'referencegrants.gateway.networking.k8s.io',
  ];
  for (const res of read) for (const verb of ['get', 'list', 'watch']) t.equal(canI([verb, res, '-A']), 'yes', `can ${verb} ${res} cluster-wide`);
  for (const verb of ['update', 'patch']) t.equal(canI([verb, 'httproutes.gateway.networking.k8s.io', '--subresource=status', '-A']), 'yes', `can ${verb} httproutes/status`);
  for (const res of ['events', 'events.events.k8s.io']) for (const verb of ['create', 'patch']) t.equal(canI([verb, res, '-A']), 'yes', `can ${verb} ${res}`);
  t.equal(canI(['get', 'secret/sluice-ca', '-n', NS]), 'yes', 'can get the CA Secret by name');

  const refused: string[][] = [
    ['get', 'secrets', '-A'], ['list', 'secrets', '-A'], ['watch', 'secrets', '-A'],
    ['get', 'secrets', '-n', NS], ['list', 'secrets', '-n', NS], ['get', 'secret/other-secret', '-n', NS],
    ['get', 'secrets', '-n', 'kube-system'], ['get', 'secret/sluice-ca', '-n', 'other'], ['get', 'secret/elsewhere', '-n', 'other'],
    ['update', 'secret/sluice-ca', '-n', NS], ['delete', 'secret/sluice-ca', '-n', NS],
    ['get', 'configmaps', '-A'],
    ['update', 'httproutes.gateway.networking.k8s.io', '-A'], ['patch', 'httproutes.gateway.networking.k8s.io', '-A'], ['create', 'referencegrants.gateway.networking.k8s.io', '-A'],
    ['update', 'ciliumnetworkpolicies.cilium.io', '--subresource=status', '-A'],
    ['delete', 'events', '-A'],
    ['create', 'pods', '--subresource=exec', '-A'], ['create', 'serviceaccounts', '--subresource=token', '-A'],
    ['create', 'clusterrolebindings'], ['escalate', 'clusterroles'], ['impersonate', 'users'],
  ];
  for (const verb of ['create', 'update', 'patch', 'delete'])
    for (const res of ['services', 'pods', 'endpointslices.discovery.k8s.io', 'nodes', 'namespaces', 'ciliumenvoyconfigs.cilium.io', 'ciliumnetworkpolicies.cilium.io'])
      refused.push([verb, res, '-A']);
  for (const args of refused) t.equal(canI(args), 'no', `refused: ${args.join(' ')}`);

  // The same through real requests, impersonating the ServiceAccount.
  const as = (args: string[], input?: string) => kubectl(args, { as: SA, input });
  const paths: Record<string, string> = {
    services: '/api/v1/services', pods: '/api/v1/pods', namespaces: '/api/v1/namespaces', serviceaccounts: '/api/v1/serviceaccounts', nodes: '/api/v1/nodes',
    endpointslices: '/apis/discovery.k8s.io/v1/endpointslices',
    ciliumenvoyconfigs: '/apis/cilium.io/v2/ciliumenvoyconfigs', ciliumclusterwideenvoyconfigs: '/apis/cilium.io/v2/ciliumclusterwideenvoyconfigs',
    ciliumnetworkpolicies: '/apis/cilium.io/v2/ciliumnetworkpolicies', ciliumclusterwidenetworkpolicies: '/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies',
    httproutes: '/apis/gateway.networking.k8s.io/v1/httproutes',
    networkpolicies: '/apis/networking.k8s.io/v1/networkpolicies',
    referencegrants: '/apis/gateway.networking.k8s.io/v1beta1/referencegrants',
  };
  for (const [res, path] of Object.entries(paths)) {
    const list = as(['get', '--raw', path]);
    t.equal(list.code, 0, `GET ${path} (list) as the ServiceAccount: ${list.stderr}`);
    t.equal(JSON.parse(list.stdout || '{}').kind?.endsWith('List'), true, `${res}: a list comes back`);
    const watch = as(['get', '--raw', `${path}?watch=true&timeoutSeconds=1`]);
    t.equal(watch.code, 0, `watch ${res} as the ServiceAccount: ${watch.stderr}`);
  }
  t.equal(as(['get', 'svc,endpointslices,pods,ns,sa,nodes,cec,ccec,cnp,ccnp,httproutes,referencegrants', '-A']).code, 0, 'kubectl get of everything it reads');

  kubectlOk(['create', '-f', '-'], { input: yamlOf([{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'other' }, spec: { rules: [] } }]) });
  // The agent PATCHes /status without reading it first (kubectl patch would GET it, which it need not be allowed).
  const statusPath = '/apis/gateway.networking.k8s.io/v1/namespaces/other/httproutes/r/status';
  const status = { status: { parents: [{ parentRef: { name: 'web', kind: 'Service', group: '' }, controllerName: 'sluice.io/mesh', conditions: [] }] } };
  const st = await request('PATCH', statusPath, status, 'application/merge-patch+json');
  t.equal(st.status, 200, `PATCH ${statusPath} as the ServiceAccount: ${st.body}`);
  t.same(JSON.parse(kubectlOk(['get', 'httproute', 'r', '-n', 'other', '-o', 'json'])).status, status.status, 'the status was written');
  const route = JSON.parse(kubectlOk(['get', 'httproute', 'r', '-n', 'other', '-o', 'json']));
  const put = await request('PUT', statusPath, { ...route, status: { parents: [] } });
  t.equal(put.status, 200, `PUT ${statusPath} (update) as the ServiceAccount: ${put.body}`);
  const specPatch = await request('PATCH', '/apis/gateway.networking.k8s.io/v1/namespaces/other/httproutes/r', { spec: { hostnames: ['x'] } }, 'application/merge-patch+json');
  t.equal(specPatch.status, 403, 'PATCH of the route itself is forbidden');
  const spec = as(['patch', 'httproute', 'r', '-n', 'other', '--type=merge', '-p', '{"spec":{"hostnames":["x"]}}']);
  t.not(spec.code, 0, "the route's spec cannot be patched");
  t.match(spec.stderr, /forbidden/i);

  const event = { apiVersion: 'v1', kind: 'Event', metadata: { name: 'probe.1', namespace: 'other' }, involvedObject: { kind: 'HTTPRoute', name: 'r', namespace: 'other' }, reason: 'Probe', message: 'm', type: 'Normal', source: { component: 'sluice' } };
  const ev1 = as(['create', '-f', '-'], yamlOf([event]));
  t.equal(ev1.code, 0, `create a core Event: ${ev1.stderr}`);
  const ev2 = as(['create', '-f', '-'], yamlOf([{ apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: { name: 'probe.2', namespace: 'other' }, eventTime: '2026-01-01T00:00:00.000000Z', reportingController: 'sluice.io/agent', reportingInstance: 'node-1', action: 'Translate', reason: 'Probe', type: 'Normal', regarding: { kind: 'HTTPRoute', name: 'r', namespace: 'other' } }]));
  t.equal(ev2.code, 0, `create an events.k8s.io Event: ${ev2.stderr}`);

  t.equal(as(['get', 'secret', 'sluice-ca', '-n', NS]).code, 0, 'reads the CA Secret');
  for (const args of [['get', 'secrets', '-A'], ['get', 'secrets', '-n', NS], ['get', 'secret', 'other-secret', '-n', NS], ['get', 'secret', 'elsewhere', '-n', 'other'], ['get', 'secrets', '-n', 'kube-system']]) {
    const r = as(args);
    t.not(r.code, 0, `refused: kubectl ${args.join(' ')}`);
    t.match(r.stderr, /forbidden/i);
  }
  kubectlOk(['create', '-f', '-'], {
    input: yamlOf([
      { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1' } },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'other' }, spec: { containers: [{ name: 'c', image: 'x' }] } },
    ]),
  });
  for (const args of [['delete', 'namespace', 'other'], ['create', 'service', 'clusterip', 'x', '-n', 'other', '--tcp=80'], ['delete', 'httproute', 'r', '-n', 'other'], ['label', 'node', 'node-1', 'x=y'], ['delete', 'pod', 'p', '-n', 'other'], ['exec', 'p', '-n', 'other', '--', 'true']]) {
    const r = as(args);
    t.not(r.code, 0, `refused: kubectl ${args.join(' ')}`);
    t.match(r.stderr, /forbidden/i);
  }
});

t.test('the agent reads one Secret, its CA, and creates one only when it generates the CA', async (t) => {
  const objs = render();
  const own = find(objs, 'Role', 'sluice-ca');
  t.same(own.rules, [
    { apiGroups: [''], resources: ['secrets'], resourceNames: ['sluice-ca'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
  ], "the chart's own CA Secret: read by name, created by the first agent");
  t.equal(own.metadata.namespace, NS, 'in the release namespace');
  t.equal(find(objs, 'RoleBinding', 'sluice-ca').roleRef.name, 'sluice-ca');
  const rules = find(objs, 'ClusterRole').rules;
  t.notOk(JSON.stringify(rules).includes('secrets'), 'the ClusterRole never names secrets');
  t.notOk(JSON.stringify(rules).includes('"*"'), 'no wildcards');
  const withCa = render(['identity.ca.existingSecret=my-ca']);
  t.same(find(withCa, 'Role', 'sluice-ca').rules, [{ apiGroups: [''], resources: ['secrets'], resourceNames: ['my-ca'], verbs: ['get', 'list', 'watch'] }], "a user's CA: the Role names that one Secret, and creates none");
});

t.test('uninstall: a preStop hook cleans the node up only when the DaemonSet goes, within the grace period', async (t) => {
  const objs = render();
  const ds = find(objs, 'DaemonSet');
  const agent = container(ds, 'agent');
  t.same(agent.lifecycle.preStop.exec.command, ['sluice', 'cleanup', '--bpf-dir', '/sys/fs/bpf/sluice', '--if-daemonset-gone', `${NS}/sluice`, '--uninstall-marker', '/var/run/sluice/uninstalling'], 'cleanup of the pin dir the agent uses, if its own DaemonSet is gone');
  const arg = (flag: string) => agent.args[agent.args.indexOf(flag) + 1];
  t.equal(arg('--bpf-dir'), '/sys/fs/bpf/sluice', 'the same --bpf-dir as the agent');
  t.same([arg('--daemonset'), arg('--uninstall-marker')], [`${NS}/sluice`, '/var/run/sluice/uninstalling'], 'the agent watches the same DaemonSet and writes the marker the hook reads');
  t.ok(agent.volumeMounts.some((m: any) => m.name === 'xds-socket' && m.mountPath === '/var/run/sluice'), 'in a pod-scoped emptyDir, so no marker outlives its pod');
  t.notOk(container(ds, 'envoy').lifecycle, 'Envoy has no hook');
  t.ok(ds.spec.template.spec.terminationGracePeriodSeconds > 10, "the grace period outlasts the hook's 10 s API timeout");
  const named = find(objs, 'Role', 'sluice-lifecycle');
  t.same(named.rules, [{ apiGroups: ['apps'], resources: ['daemonsets'], resourceNames: ['sluice'], verbs: ['get', 'list', 'watch'] }], 'the Role: read this one DaemonSet');
  t.equal(named.metadata.namespace, NS);
  const renamed = helm(['template', 'edge', CHART, '--namespace', 'mesh', '--kube-version', KUBE_VERSION]);
  const objs2 = parseAllDocuments(renamed.stdout).map((d) => d.toJS()).filter(Boolean);
  t.same(container(find(objs2, 'DaemonSet'), 'agent').lifecycle.preStop.exec.command.slice(-3, -2), ['mesh/edge-sluice'], 'another release and namespace name their own DaemonSet');
  t.same(find(objs2, 'Role', 'edge-sluice-lifecycle').rules[0].resourceNames, ['edge-sluice']);

  // Installed by the helm install above, and impersonated.
  const canI = (args: string[]) => kubectl(['auth', 'can-i', ...args], { as: SA }).stdout.trim();
  t.equal(canI(['get', 'daemonset/sluice', '-n', NS]), 'yes', 'can get its own DaemonSet');
  for (const args of [['get', 'daemonset/other', '-n', NS], ['list', 'daemonsets', '-n', NS], ['watch', 'daemonsets', '-n', NS], ['get', 'daemonset/sluice', '-n', 'other'], ['list', 'daemonsets', '-A'], ['update', 'daemonset/sluice', '-n', NS], ['patch', 'daemonset/sluice', '-n', NS], ['delete', 'daemonset/sluice', '-n', NS], ['get', 'deployments', '-n', NS]])
    t.equal(canI(args), 'no', `refused: ${args.join(' ')}`);
  const got = kubectl(['get', 'daemonset', 'sluice', '-n', NS, '-o', 'name'], { as: SA });
  t.equal(got.stdout.trim(), 'daemonset.apps/sluice', `a real GET as the ServiceAccount: ${got.stderr}`);
  const watch = kubectl(['get', '--raw', `/apis/apps/v1/namespaces/${NS}/daemonsets?fieldSelector=metadata.name%3Dsluice&watch=true&timeoutSeconds=1`], { as: SA });
  t.equal(watch.code, 0, `a watch of it by name as the ServiceAccount: ${watch.stderr}`);
  t.not(kubectl(['get', '--raw', `/apis/apps/v1/namespaces/${NS}/daemonsets?watch=true&timeoutSeconds=1`], { as: SA }).code, 0, 'but not of every DaemonSet');
});
