import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { stringify } from 'yaml';
import { Agent, DEFAULT_ENVOY_GONE_GRACE_MS } from './agent/agent.js';
import { DEFAULT_PROXY_PORT_RANGE, StableIds } from './ids/stable-ids.js';
import { KubeYamlDir } from './sources/kube-yaml-dir.js';
import { assemble, translateModel } from './translate/assemble.js';
import { formatIssue } from './issues/issue.js';
import { anyToJson } from './proto/any.js';
import { SERVED_TYPES } from './resources/types.js';
import { renderBootstrap } from './envoy/bootstrap.js';
import { createLogger, type Logger } from './log.js';
import type { KubeConfig } from '@kubernetes/client-node';
import type { IdentityOptions } from './agent/identity-wiring.js';
import { SpiffeCa } from './identity/ca.js';
import { loadOrCreateCaSecret } from './identity/kube-ca-secret.js';
import { startApiSocket, startHealthServer } from './agent/health-server.js';
import { policyApi } from './agent/policy-api.js';
import { addObserveCommands } from './observe-cli.js';
import { startObserverServer } from './observe/observer-server.js';
import { serviceMapRoute } from './observe/service-map-page.js';
import { addPolicyCommands } from './policy-cli.js';
import { KubeApiSource, loadKubeConfig } from './sources/kube-api.js';
import { KubeStatusWriter } from './status/kube-status.js';
import { DEFAULT_SOCKET_PATH } from './xds/server.js';
import { removePins } from './redirect/cleanup.js';
import { DEFAULT_BPF_ROOT } from './redirect/host.js';
import { daemonSetState, watchDaemonSet } from './sources/kube-daemonset.js';
import { checkProxyAddresses, DEFAULT_PROXY_ADDRESSES, removeProxyAddresses, type ProxyAddresses } from './redirect/proxy-address.js';

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('want a port number 0-65535');
  return n;
}

function milliseconds(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('want a whole number of milliseconds');
  return n;
}

/** "30s", "5m", "1h" or "500ms" in seconds, as the chart's values write lifetimes. */
function seconds(v: string): number {
  const m = /^([0-9]+)(ms|s|m|h)$/.exec(v);
  if (!m) throw new InvalidArgumentError('want a duration such as 30s, 5m or 1h');
  const n = Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  if (n < 1) throw new InvalidArgumentError('want at least 1s');
  return n;
}

const program = new Command('sluice').description('Sidecar-less service mesh agent: xDS for the node\'s Envoy, eBPF datapath, SPIFFE identity');

program
  .command('bootstrap')
  .description('print the bootstrap for this node\'s Envoy')
  .option('--node <name>', 'node id (the Kubernetes node name)', process.env.NODE_NAME ?? 'sluice-node')
  .addOption(new Option('--ads <flavour>', 'ADS protocol').choices(['sotw', 'delta']).default('sotw'))
  .option('--socket <path>', 'the agent\'s xDS unix socket', DEFAULT_SOCKET_PATH)
  .option('--admin-socket <path>', "Envoy's admin API unix socket (default: envoy-admin.sock beside --socket)")
  .option('--health-port <port>', 'port on 127.0.0.1 serving only /ready and /server_info, for probes', port, 9901)
  .addOption(new Option('-o, --output <format>').choices(['yaml', 'json']).default('yaml'))
  .action((o) => {
    const b = renderBootstrap({ nodeId: o.node, ads: o.ads, socketPath: o.socket, adminSocket: o.adminSocket, healthPort: o.healthPort });
    process.stdout.write(o.output === 'json' ? JSON.stringify(b, null, 2) + '\n' : stringify(b));
  });

/** "kube" for the Kubernetes API, "dir:PATH" for a directory of Kubernetes YAML. */
function source(v: string, prior: string[] = []): string[] {
  if (v === 'kube') return [...prior, v];
  const m = /^dir:(.+)$/.exec(v);
  if (!m) throw new InvalidArgumentError('want kube (the Kubernetes API) or dir:PATH (a directory of Kubernetes YAML)');
  return [...prior, m[1]];
}

function portRange(v: string): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(v);
  const [lo, hi] = m ? [Number(m[1]), Number(m[2])] : [NaN, NaN];
  if (!(lo >= 1024 && hi <= 65535 && lo <= hi)) throw new InvalidArgumentError('want LOW-HIGH within 1024-65535');
  return [lo, hi];
}

const namespacedName = (v: string) => {
  if (!/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(v)) throw new InvalidArgumentError('want NAMESPACE/NAME');
  return v;
};

const bpfRootOption = () => new Option('--bpf-root <dir>', "the node's bpffs mount point; mounted there if it is not one yet").default(DEFAULT_BPF_ROOT);
const bpfDirOption = () => new Option('--bpf-dir <dir>', 'where programs and maps are pinned, on a bpffs mount (default: BPF-ROOT/sluice)');
const pinDirOf = (o: { bpfRoot: string; bpfDir?: string }) => o.bpfDir ?? `${o.bpfRoot.replace(/\/+$/, '')}/sluice`;

/** "IPV4,IPV6": the node proxy addresses. */
function proxyAddresses(v: string): ProxyAddresses {
  const [v4 = '', v6 = ''] = v.split(',');
  try {
    checkProxyAddresses({ v4, v6 });
  } catch (e) {
    throw new InvalidArgumentError(`want IPV4,IPV6: ${(e as Error).message}`);
  }
  return { v4, v6 };
}

/** Ports this node already serves on, by what serves them; 0 means not served. */
function nodePorts(o: { envoyHealthPort: number; tcp?: string; metricsPort: number }, apiServer?: string): Record<string, number> {
  const out: Record<string, number> = { "the node Envoy's health listener": o.envoyHealthPort, "the agent's metrics and health server": o.metricsPort };
  if (o.tcp) out["the agent's xDS server"] = Number(o.tcp.slice(o.tcp.lastIndexOf(':') + 1));
  if (apiServer) {
    const url = new URL(apiServer);
    out['the Kubernetes API server'] = Number(url.port || (url.protocol === 'http:' ? 80 : 443));
  }
  for (const [k, v] of Object.entries(out)) if (!v) delete out[k];
  return out;
}

/** Workload identity is on once the agent is told where its CA lives: a Secret in cluster mode, or a directory. */
function identityOptions(
  o: { trustDomain: string; caSecret?: string; caDir?: string; svidTtl: number; jwtTtl: number; workloadApiSocket?: string },
  kubeConfig: KubeConfig | undefined,
  log: Logger,
): IdentityOptions | undefined {
  if (o.caSecret && !kubeConfig) throw new InvalidArgumentError('--ca-secret needs --source kube; use --ca-dir without a cluster');
  if (o.caSecret && o.caDir) throw new InvalidArgumentError('give --ca-secret or --ca-dir, not both');
  if (o.workloadApiSocket && !o.caSecret && !o.caDir) throw new InvalidArgumentError('--workload-api-socket needs --ca-secret or --ca-dir');
  const { trustDomain } = o;
  const [namespace, name] = o.caSecret?.split('/') ?? [];
  const loadCa = o.caSecret
    ? () => loadOrCreateCaSecret({ kubeConfig: kubeConfig!, namespace, name, trustDomain, log })
    : o.caDir
      ? () => SpiffeCa.loadOrCreate({ trustDomain, dir: o.caDir!, log })
      : undefined;
  if (!loadCa) return undefined;
  return { trustDomain, loadCa, svidTtlSeconds: o.svidTtl, jwtTtlSeconds: o.jwtTtl, workloadApiSocket: o.workloadApiSocket };
}

const nodeOption = () => new Option('--node <name>', "this node's name (Envoy's node id)").default(process.env.NODE_NAME ?? 'sluice-node');

program
  .command('agent')
  .description("serve xDS to the node's Envoy")
  .option('--source <kube|dir:PATH>', 'where cluster state comes from: the Kubernetes API, or Kubernetes YAML files (repeatable), watched for changes', source)
  .option('--kubeconfig <file>', 'with --source kube: the kubeconfig to use (default: in-cluster, then $KUBECONFIG)')
  .option('--resources <dir>', 'also serve a directory of raw Envoy resources (YAML/JSON with @type), watched for changes')
  .addOption(nodeOption())
  .option('--socket <path>', 'unix socket to serve xDS on', DEFAULT_SOCKET_PATH)
  .option('--api-socket <path>', 'unix socket serving `sluice endpoint` and `sluice policy` (default: api.sock beside --socket)')
  .option('--tcp <host:port>', 'also serve xDS over TCP, e.g. 127.0.0.1:18000')
  .option('--observer-socket <path>', "unix socket serving Hubble's Observer API (`hubble observe`, `sluice observe`) (default: hubble.sock beside --socket)")
  .option('--observer-tcp <host:port>', "also serve the Observer API over TCP, e.g. 127.0.0.1:4245 (hubble's port)")
  .option('--flow-ring-size <n>', 'how many recent flows the Observer API holds', (v: string) => {
    if (!/^[1-9]\d*$/.test(v)) throw new InvalidArgumentError('a positive count');
    return Number(v);
  })
  .option('--state-dir <dir>', 'state kept across restarts (proxy ports)', '/var/lib/sluice')
  .option('--proxy-ports <low-high>', 'node-local ports for listeners without an address', portRange)
  .option('--log-level <level>', 'trace, debug, info, warn or error', process.env.SLUICE_LOG_LEVEL ?? 'info')
  .option('--datapath', 'also load balance Services in the kernel (cgroup socket programs), replacing kube-proxy')
  .addOption(bpfRootOption())
  .addOption(bpfDirOption())
  .option('--cgroup-dir <dir>', 'with --datapath: the cgroup v2 directory whose processes are load balanced (default: the cgroup v2 mount, /sys/fs/cgroup or on hybrid hosts /sys/fs/cgroup/unified)')
  .option(
    '--proxy-address <ipv4,ipv6>',
    `where listeners without an address listen and L7 redirects go; with --datapath the agent adds them to lo (default: ${DEFAULT_PROXY_ADDRESSES.v4},${DEFAULT_PROXY_ADDRESSES.v6} with --datapath, 127.0.0.1,::1 without)`,
    proxyAddresses,
  )
  .option('--envoy-grace <ms>', "with --datapath: how long Services stay steered into Envoy after its xDS stream went, before they go straight to their backends", milliseconds, DEFAULT_ENVOY_GONE_GRACE_MS)
  .option('--metrics-port <port>', 'serve /metrics, /healthz and /readyz on this port (0: off)', port, 0)
  .option('--envoy-health-port <port>', "the node Envoy's health listener (its bootstrap's --health-port), which no config's listener may take", port, 9901)
  .option('--daemonset <namespace/name>', "with --uninstall-marker: this agent's DaemonSet, watched for its deletion", namespacedName)
  .option('--uninstall-marker <file>', 'created once --daemonset is deleted, for `sluice cleanup --if-daemonset-gone` (keep it in a pod-scoped directory)')
  .option('--trust-domain <domain>', 'SPIFFE trust domain of workload identities', process.env.SLUICE_TRUST_DOMAIN ?? 'cluster.local')
  .option('--ca-secret <namespace/name>', 'with --source kube: the Secret holding the SPIFFE CA (tls.crt, tls.key, jwt.key); the first agent creates it if absent, so every node shares one root', namespacedName)
  .option('--ca-dir <dir>', 'the SPIFFE CA as files (ca.crt, ca.key, jwt.key, or a mounted tls.crt/tls.key); created if absent, so agents sharing the directory share one root')
  .option('--svid-ttl <duration>', 'lifetime of X.509-SVIDs, re-issued at half of it', seconds, 3600)
  .option('--jwt-ttl <duration>', 'lifetime of JWT-SVIDs from the Workload API', seconds, 300)
  .option('--workload-api-socket <path>', 'serve the SPIFFE Workload API on this unix socket (needs --ca-secret or --ca-dir)')
  .action(async (o) => {
    if (!o.source && !o.resources) throw new InvalidArgumentError('give --source kube, --source dir:PATH and/or --resources DIR');
    const log = createLogger(o.logLevel);
    const kube = (o.source ?? []).includes('kube');
    const dirs = (o.source ?? []).filter((s: string) => s !== 'kube');
    const kubeConfig = kube ? loadKubeConfig(o.kubeconfig) : undefined;
    const agent = new Agent({
      nodeName: o.node,
      kubeDirs: dirs,
      source: kubeConfig ? new KubeApiSource({ kubeConfig, log }) : undefined,
      status: kubeConfig ? new KubeStatusWriter(kubeConfig, o.node, log) : undefined,
      datapath: o.datapath ? { pinDir: pinDirOf(o), bpfRoot: o.bpfRoot, cgroupDir: o.cgroupDir } : undefined,
      resourceDirs: o.resources ? [o.resources] : [],
      socketPath: o.socket,
      tcpAddress: o.tcp,
      stateDir: o.stateDir,
      proxyPortRange: o.proxyPorts,
      proxyAddresses: o.proxyAddress,
      envoyGoneGraceMs: o.envoyGrace,
      reservedPorts: nodePorts(o, kubeConfig?.getCurrentCluster()?.server),
      identity: identityOptions(o, kubeConfig, log),
      flowRingSize: o.flowRingSize,
      log,
    });
    log.info({ node: o.node, trustDomain: o.trustDomain, caSecret: o.caSecret, caDir: o.caDir, kube, dirs, datapath: !!o.datapath }, 'starting');
    // Probes answer from the start: not ready until the sources have delivered a model.
    const health = o.metricsPort ? await startHealthServer(agent, o.metricsPort, undefined, serviceMapRoute(agent.flows.ring)) : undefined;
    const api = await startApiSocket(agent, o.apiSocket ?? join(dirname(o.socket), 'api.sock'), policyApi(() => agent.policy, () => agent.policyView.acked));
    const observer = await startObserverServer({ ring: agent.flows.ring, nodeName: o.node, socket: o.observerSocket ?? join(dirname(o.socket), 'hubble.sock'), tcp: o.observerTcp });
    await agent.start();
    const unwatch = o.daemonset && o.uninstallMarker ? watchUninstall(o.daemonset, o.uninstallMarker, o.kubeconfig, log) : undefined;
    const stop = async (signal: string) => {
      log.info({ signal }, 'stopping');
      unwatch?.();
      await agent.stop();
      await health?.close();
      await api.close();
      await observer.close();
      process.exit(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

program
  .command('translate')
  .description('print the Envoy resources the agent would serve a node, without starting anything')
  .requiredOption('-f, --filename <path>', 'a file or directory of Kubernetes YAML (repeatable)', (v: string, p: string[] = []) => [...p, v])
  .addOption(nodeOption())
  .option('--proxy-ports <low-high>', 'node-local ports for listeners without an address', portRange)
  .option('--proxy-address <ipv4,ipv6>', 'where listeners without an address listen (default 127.0.0.1,::1; the agent with --datapath uses its node proxy addresses)', proxyAddresses)
  .addOption(new Option('-o, --output <format>').choices(['yaml', 'json']).default('yaml'))
  .action((o) => {
    const { model, issues: readIssues } = new KubeYamlDir(o.filename).read();
    const ports = new StableIds(undefined, o.proxyPorts);
    const proxyPortRange = o.proxyPorts ?? DEFAULT_PROXY_PORT_RANGE;
    const ctx = { nodeName: o.node, proxyPort: (k: string) => ports.idFor(k), proxyAddresses: o.proxyAddress, proxyPortRange };
    const { resources, redirects, issues } = assemble(translateModel(model, ctx));
    const grouped: Record<string, unknown[]> = {};
    for (const type of SERVED_TYPES) {
      const list = resources.filter((r) => r.typeUrl === type).map((r) => anyToJson(r.any));
      if (list.length) grouped[type.split('.').pop()!] = list;
    }
    const out = { resources: grouped, redirects };
    process.stdout.write(o.output === 'json' ? JSON.stringify(out, null, 2) + '\n' : stringify(out));
    const all = [...readIssues, ...issues];
    for (const i of all) process.stderr.write(`error: ${formatIssue(i)}\n`);
    if (all.length) process.exitCode = 1;
  });

/** Notes the DaemonSet's deletion in `marker`, for the preStop hook that may no longer be allowed to ask. */
function watchUninstall(daemonset: string, marker: string, kubeconfig: string | undefined, log: ReturnType<typeof createLogger>): () => void {
  rmSync(marker, { force: true });
  const [namespace, name] = daemonset.split('/');
  return watchDaemonSet(
    loadKubeConfig(kubeconfig),
    namespace,
    name,
    () => {
      writeFileSync(marker, `${daemonset}\n`);
      log.info({ daemonset, marker }, 'the DaemonSet is being deleted: the preStop hook will remove the datapath');
    },
    (err) => log.debug({ err, daemonset }, 'watching the DaemonSet failed; retrying'),
  );
}

program
  .command('cleanup')
  .description('uninstall from this node: detach every program the agent attached and remove its pinned links and maps; safe to repeat')
  .addOption(bpfRootOption())
  .addOption(bpfDirOption())
  .option('--if-daemonset-gone <namespace/name>', 'act only if this DaemonSet is deleted or being deleted (for a preStop hook: a pod restart or rolling update leaves the datapath in place)', namespacedName)
  .option('--kubeconfig <file>', 'with --if-daemonset-gone: the kubeconfig to use (default: in-cluster, then $KUBECONFIG)')
  .option('--uninstall-marker <file>', "with --if-daemonset-gone: the agent's note that the DaemonSet was deleted, trusted before asking the API server")
  .option('--proxy-address <ipv4,ipv6>', `the node proxy addresses the agent put on lo, to take off (default: ${DEFAULT_PROXY_ADDRESSES.v4},${DEFAULT_PROXY_ADDRESSES.v6}; loopback ones are left alone)`, proxyAddresses)
  .action(async (o) => {
    const pinDir = pinDirOf(o);
    if (o.ifDaemonsetGone) {
      const [namespace, name] = o.ifDaemonsetGone.split('/');
      // An error here exits non-zero with the datapath in place: in doubt, keep serving.
      const marked = o.uninstallMarker && existsSync(o.uninstallMarker) && readFileSync(o.uninstallMarker, 'utf8').trim() === o.ifDaemonsetGone;
      const state = marked ? 'deleting' : await daemonSetState(loadKubeConfig(o.kubeconfig), namespace, name);
      if (state === 'present') {
        process.stdout.write(`daemonset ${o.ifDaemonsetGone} is still there (a restart or an update): the datapath stays\n`);
        return;
      }
      process.stdout.write(`daemonset ${o.ifDaemonsetGone} is ${state === 'gone' ? 'gone' : 'being deleted'}: removing the datapath\n`);
    }
    let r;
    try {
      r = removePins(pinDir);
    } finally {
      removeProxyAddresses(o.proxyAddress ?? DEFAULT_PROXY_ADDRESSES);
    }
    if (!r.removedDir) process.stdout.write(`nothing to do: ${pinDir} does not exist\n`);
    else process.stdout.write(`detached ${r.detached.length} programs, removed ${r.unpinned.length} pins and ${pinDir}\n`);
  });

addPolicyCommands(program);
addObserveCommands(program);

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`sluice: ${e.message}\n`);
  process.exit(1);
});
