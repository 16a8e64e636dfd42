// Each node of the two-node world as users run it: on n1 and on n2, inside
// the node's netns, `sluice agent --datapath` reading the world's YAML with
// `--node` its own name, and the node's real Envoy from its bootstrap. Each
// node's socket programs attach to that node's own cgroup, the parent of its
// pods' pod<uid> cgroups, and its pins live on that node's own bpffs: two
// datapaths share one kernel without acting on each other's pods.
// Everything stops by PID at teardown; the world removes pins and cgroups.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { renderBootstrap } from '../../src/envoy/bootstrap.js';
import { POLICY_OBJECT } from '../../src/redirect/policy-object.js';
import type { DropReason } from '../../src/redirect/policy-maps.js';
import { spawnAgentInNetns } from './agent-process.js';
import { adminRequest, eventually, startEnvoy, type EnvoyHandle } from './envoy.js';
import { stopChild } from './netns.js';
import { policyDrops } from './policy-agent-world.js';
import { NODES, type NodeName, type TwoNodeWorld } from './two-node-world.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

const cli = new URL('../../dist/cli.js', import.meta.url).pathname;

export interface NodeAgent {
  /** The node's own directory: its sockets and state, and where per-node flags point (extraArgs gets it). */
  dir: string;
  /** The agent's API socket (/readyz, /metrics, /v1/endpoints, /v1/policy). */
  apiSocket: string;
  /** The xDS socket its Envoy connects to. */
  xdsSocket: string;
  /** The node's Envoy; its admin API (adminGet, stats, configDump) on a unix socket. */
  envoy: EnvoyHandle;
  /** Where Envoy's output goes, its stdout access logs among it. */
  envoyLog: string;
  /** The agent's output so far (JSON log lines). */
  output(): string;
  /** GET on the agent's API socket. */
  api(path: string): Promise<{ status: number; body: string }>;
  /** GET on Envoy's admin API. */
  admin(path: string): Promise<{ status: number; body: string }>;
  /** Policy drops counted in this node's kernel maps, by reason. */
  drops(): Record<DropReason, number>;
}

export interface TwoNodeAgents {
  nodes: Record<NodeName, NodeAgent>;
  /** SIGKILLs a node's agent and starts it again with the same flags; resolves once its Envoy has ACKed again. */
  restart(node: NodeName): Promise<void>;
  /** Resolves once both agents are ready and their Envoys have ACKed their newest snapshot. */
  settled(): Promise<void>;
}

/** The agent's newest published and ACKed snapshot versions, from its /metrics. */
async function versions(api: (path: string) => Promise<{ status: number; body: string }>): Promise<{ published: number; acked: number }> {
  const text = (await api('/metrics')).body;
  const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return { published: gauge('sluice_xds_snapshot_version'), acked: gauge('sluice_xds_acked_version') };
}

export interface TwoNodeAgentOptions {
  /** More flags for every agent, or per node (given the node and its directory). */
  extraArgs?: string[] | ((node: NodeName, dir: string) => string[]);
}

export async function twoNodeAgents(t: Teardown, world: TwoNodeWorld, opts: TwoNodeAgentOptions = {}): Promise<TwoNodeAgents> {
  for (const f of [POLICY_OBJECT, cli]) if (!existsSync(f)) throw new Error(`${f} is missing: run scripts/setup.sh (or npm run build and the clang lines)`);
  const procs: Partial<Record<NodeName, ChildProcess>> = {};
  const outputs: Record<NodeName, () => string> = { n1: () => '', n2: () => '' };
  // Registered after the world, so it runs before the world's teardown: agents go before their netns, pins and cgroups.
  t.teardown(() => Promise.all(NODES.map((n) => stopChild(procs[n]))));

  const dirs = Object.fromEntries(NODES.map((n) => [n, join(world.yaml.dir, n)])) as Record<NodeName, string>;
  const args = (n: NodeName) => {
    const dir = dirs[n];
    const nw = world.nodes[n];
    return ['--source', `dir:${world.yaml.src}`, '--node', n, '--socket', join(dir, 'xds.sock'), '--api-socket', join(dir, 'api.sock'), '--state-dir', join(dir, 'state'),
      '--datapath', '--bpf-dir', nw.pinDir, '--cgroup-dir', nw.cgroupDir, '--envoy-grace', '1000', '--log-level', 'debug', ...(typeof opts.extraArgs === 'function' ? opts.extraArgs(n, dir) : opts.extraArgs ?? [])];
  };
  const start = (n: NodeName) => spawnAgentInNetns(world.nodes[n].ns, args(n), (p, out) => ((procs[n] = p), (outputs[n] = out)));

  const nodes = {} as Record<NodeName, NodeAgent>;
  await Promise.all(
    NODES.map(async (n) => {
      mkdirSync(dirs[n]);
      await start(n);
      const xdsSocket = join(dirs[n], 'xds.sock');
      const envoyLog = join(dirs[n], 'envoy.log');
      const envoy = await startEnvoy(t, renderBootstrap({ nodeId: n, ads: 'sotw', socketPath: xdsSocket, healthPort: 0 }), ['--file-flush-interval-msec', '100'], world.nodes[n].ns, envoyLog);
      const apiSocket = join(dirs[n], 'api.sock');
      nodes[n] = {
        dir: dirs[n],
        apiSocket,
        xdsSocket,
        envoy,
        envoyLog,
        output: () => outputs[n](),
        api: (path) => adminRequest(apiSocket, path),
        admin: (path) => envoy.adminGet(path),
        drops: () => policyDrops(world.nodes[n].pinDir),
      };
    }),
  );
  const settledOne = (n: NodeName) =>
    eventually(
      async () => {
        if (procs[n]?.exitCode !== null) throw new Error(`the ${n} agent exited: ${outputs[n]()}`);
        if ((await nodes[n].api('/readyz')).status !== 200) return false;
        const v = await versions(nodes[n].api);
        return v.published > 0 && v.acked === v.published;
      },
      90_000,
      `${n}'s agent to be ready and its Envoy to ACK`,
    );
  const settled = async () => void (await Promise.all(NODES.map(settledOne)));
  await settled();
  return {
    nodes,
    settled,
    restart: async (n) => {
      await stopChild(procs[n]);
      await start(n);
      await settledOne(n);
    },
  };
}
