// A node as users run it, for network policy end to end: `sluice agent
// --datapath` and the node's Envoy in a "node" netns, pods in netns of their
// own joined by veths with /32 routes (a routing CNI), the agent reading
// Kubernetes YAML from a directory the test edits. Optionally a host outside
// the pod range (no Pod object): the world. Everything goes at teardown.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { renderBootstrap } from '../../src/envoy/bootstrap.js';
import { PolicyReconciler } from '../../src/redirect/policy-datapath.js';
import { openPolicyMaps, POLICY_OBJECT, policyPinDir } from '../../src/redirect/policy-object.js';
import type { DropReason } from '../../src/redirect/policy-maps.js';
import { spawnAgentInNetns } from './agent-process.js';
import { eventually, startEnvoy, type EnvoyHandle } from './envoy.js';
import { netnsWorld, stopChild, type NetnsWorld } from './netns.js';
import { podMaker, type Pod } from './policy-pods.js';
import { yamlDir } from './yaml-dir.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const NODE = 'node-a';
const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'dist/cli.js');

export interface WorldPod {
  name: string;
  namespace?: string;
  ip: string;
  labels: Record<string, string>;
  /** Ports its HTTP server answers on (with its name as the body). */
  http?: number[];
  /** Not in the model: a host outside the cluster. */
  outside?: boolean;
}

export interface AgentPolicyWorld {
  node: NetnsWorld;
  pods: Record<string, Pod>;
  envoy: EnvoyHandle;
  /** A scratch directory of the test's (not on bpffs), removed at teardown. */
  dir: string;
  /** The agent's output so far (JSON log lines). */
  output(): string;
  /** (Re)writes one YAML file of the agent's source directory, atomically; [] removes it. */
  write(file: string, docs: object[]): void;
  /** Starts the agent process (again); resolves once it has published. */
  startAgent(): Promise<ChildProcess>;
  /** SIGKILLs the agent and waits for it to be gone. */
  killAgent(): Promise<void>;
  /** Policy drops counted in the kernel, by reason. */
  drops(): Record<DropReason, number>;
  /** One HTTP request from a pod: "timeout", or the status (and, with `body`, the body). */
  http(from: string, host: string, port: number, opts?: { method?: string; path?: string; body?: boolean }): string;
  /** Envoy's downstream counters summed over its listeners: connections accepted, requests answered 4xx and 2xx. */
  envoyDownstream(): Promise<{ cx: number; rq4xx: number; rq2xx: number }>;
}

/** A Pod object for the model, on this node. */
export function podObject(p: WorldPod): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace ?? 'default', labels: p.labels },
    spec: { nodeName: NODE, containers: [{ name: 'app', ports: (p.http ?? []).map((port) => ({ containerPort: port })) }] },
    status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }] },
  };
}

export function namespaceObject(name: string, labels: Record<string, string> = {}): object {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } } };
}

/** Policy drops counted in the kernel by the agent pinned at `pinDir`, by reason. */
export function policyDrops(pinDir: string): Record<DropReason, number> {
  const r = new PolicyReconciler(openPolicyMaps(policyPinDir(pinDir)));
  try {
    return r.dropCounters();
  } finally {
    r.close();
  }
}

/** What one client result comes to. */
export function outcome(r: any, body = false): string {
  if (r.error) return r.code ?? r.error;
  return body ? `${r.status} ${r.backend}` : String(r.status);
}

export async function agentPolicyWorld(t: Teardown, pods: WorldPod[], opts: { proxyPorts: [number, number]; extraArgs?: string[] }): Promise<AgentPolicyWorld> {
  for (const f of [POLICY_OBJECT, cli]) if (!existsSync(f)) throw new Error(`${f} is missing: run scripts/setup.sh (or npm run build and the clang lines)`);
  const node = await netnsWorld(t, []);
  const make = podMaker(t, node);
  const made: Record<string, Pod> = {};
  pods.forEach((p, i) => (made[p.name] = make(i + 1, p.ip, `fd00:244::a:${(i + 1).toString(16)}`)));
  await Promise.all(pods.filter((p) => p.http?.length).map((p) => made[p.name].servers({ http: p.http!.map((port) => ({ ip: p.ip, port, name: p.name })) })));

  const { dir, src, write } = yamlDir(t, 'sluice-policy-e2e-');
  write('pods.yaml', pods.filter((p) => !p.outside).map(podObject));
  const socketPath = join(dir, 'xds.sock');

  let agent: ChildProcess | undefined;
  // Registered after the world, so it runs first (tap tears down last-in first-out): the agent goes before its netns and pins.
  t.teardown(() => stopChild(agent));
  let output = () => '';
  const startAgent = () =>
    spawnAgentInNetns(
      node.ns,
      ['--source', `dir:${src}`, '--node', NODE, '--socket', socketPath, '--state-dir', join(dir, 'state'), '--proxy-ports', opts.proxyPorts.join('-'), '--datapath', '--bpf-dir', node.pinDir, '--cgroup-dir', node.cgroupDir, '--envoy-grace', '1000', '--log-level', 'debug', ...(opts.extraArgs ?? [])],
      (p, out) => ((agent = p), (output = out)),
    );
  await startAgent();
  const envoy = await startEnvoy(t, renderBootstrap({ nodeId: NODE, ads: 'sotw', socketPath, healthPort: 0 }), [], node.ns);

  const http = (from: string, host: string, port: number, o: { method?: string; path?: string; body?: boolean } = {}) => {
    const [[r]] = made[from].client([{ op: 'http', host, port, method: o.method, path: o.path }]);
    return outcome(r, o.body);
  };
  const envoyDownstream = async () => {
    const s = await envoy.stats('downstream_');
    const sum = (re: RegExp) => Object.entries(s).filter(([k]) => re.test(k)).reduce((n, [, v]) => n + v, 0);
    // Not the admin API's own: reading the stats is a request too.
    return { cx: sum(/^listener\.(?!admin\.).*_\d+\.downstream_cx_total$/), rq4xx: sum(/^http\.(?!admin\.).*\.downstream_rq_4xx$/), rq2xx: sum(/^http\.(?!admin\.).*\.downstream_rq_2xx$/) };
  };
  return {
    node,
    pods: made,
    envoy,
    dir,
    output: () => output(),
    write,
    startAgent,
    killAgent: () => stopChild(agent),
    drops: () => policyDrops(node.pinDir),
    http,
    envoyDownstream,
  };
}
