// Two nodes as a routing CNI wires them, for the mesh: "node" netns n1 and n2
// joined by a veth "wire" (192.168.77.1/.2, fd00:77::1/::2), each with its
// own pod CIDR (10.77.N.0/24, fd00:77:N::/64) routed over the wire to the
// other. A pod is a netns on its node (policy-pods.ts) in a cgroup of its own
// named as the kubelet names them, pod<uid>. The same world is written as
// Kubernetes YAML (Namespaces, Nodes with their InternalIP, Pods with
// nodeName, uid, serviceAccountName and addresses) into a directory that a
// standalone agent per node can read. Everything goes at teardown, pass or fail.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Model } from '../../src/model/model.js';
import type { ModelObject } from '../../src/model/objects.js';
import { MESH_LABEL } from '../../src/mesh/membership.js';
import { netnsWorld, removeCgroup, stopChild, type NetnsWorld } from './netns.js';
import { podMaker, type Pod } from './policy-pods.js';
import { eventually } from './envoy.js';
import { yamlDir, type YamlDir } from './yaml-dir.js';
// Plain JS, shared with bench/mesh.mjs, which runs on plain node.
import { nodeIndex, podCidr, twoNodeObjects as objectsOf, WIRE } from './two-node-objects.mjs';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export type NodeName = 'n1' | 'n2';
export const NODES: readonly NodeName[] = ['n1', 'n2'];
/** Each node's address on the wire. */
export { WIRE, podCidr };
/** The interface of the wire, by that name on both nodes. */
export const WIRE_IF = 'wire';

export interface TwoNodePodSpec {
  name: string;
  node: NodeName;
  namespace: string;
  serviceAccount?: string;
  labels?: Record<string, string>;
}

export interface TwoNodePod extends Pod {
  spec: TwoNodePodSpec;
  uid: string;
  /** Its own cgroup, where its clients and servers run. */
  cgroupDir: string;
}

export interface TwoNodeWorld {
  nodes: Record<NodeName, NetnsWorld>;
  pods: Record<string, TwoNodePod>;
  /** The YAML directory: world.yaml holds what the world is; tests add files beside it. */
  yaml: YamlDir;
  /** What world.yaml holds, as the model an agent would build from it. */
  objects: object[];
  model(extra?: object[]): Model;
  /** The ifindex of the wire on a node (it carries the policy program's ingress hook there). */
  wireIfindex(node: NodeName): number;
  /** Starts tcpdump on a node's end of the wire; stop() ends it (by PID) and returns the lines it printed (with `payload`, each packet's bytes as ASCII too, -A). */
  capture(node: NodeName, filter: string, opts?: { payload?: boolean }): Promise<{ stop(): Promise<string[]> }>;
}

/** Meshed namespaces carry the mesh label; the rest are plain. */
export function twoNodeObjects(namespaces: Record<string, boolean>, pods: (TwoNodePodSpec & { uid: string; ip4: string; ip6: string })[]): object[] {
  return objectsOf(namespaces, pods, MESH_LABEL);
}

/**
 * The world with these pods, numbered on their node in order: the k-th pod of
 * node N has 10.77.N.(10+k) and fd00:77:N::(10+k) (hex).
 */
export async function twoNodeWorld(t: Teardown, namespaces: Record<string, boolean>, pods: TwoNodePodSpec[]): Promise<TwoNodeWorld> {
  const nodes = { n1: await netnsWorld(t, []), n2: await netnsWorld(t, []) };
  const n1 = nodes.n1;
  n1.sh('ip', ['link', 'add', WIRE_IF, 'type', 'veth', 'peer', 'name', WIRE_IF, 'netns', nodes.n2.ns]);
  for (const n of NODES) {
    const sh = nodes[n].sh;
    const other: NodeName = n === 'n1' ? 'n2' : 'n1';
    sh('ip', ['addr', 'add', `${WIRE[n].ip4}/24`, 'dev', WIRE_IF]);
    sh('ip', ['addr', 'add', `${WIRE[n].ip6}/64`, 'dev', WIRE_IF, 'nodad']);
    sh('ip', ['link', 'set', WIRE_IF, 'up']);
    sh('ip', ['route', 'add', podCidr(other).ip4, 'via', WIRE[other].ip4]);
    sh('ip', ['-6', 'route', 'add', podCidr(other).ip6, 'via', WIRE[other].ip6]);
  }

  // Pod cgroups go after the pods' processes (podMaker's teardown, registered later, runs first) and before the nodes'.
  const cgroups: string[] = [];
  t.teardown(async () => {
    for (const dir of cgroups.reverse()) await removeCgroup(dir);
  });
  const makers = { n1: podMaker(t, nodes.n1), n2: podMaker(t, nodes.n2) };
  const counts = { n1: 0, n2: 0 };
  const made: Record<string, TwoNodePod> = {};
  const specs: Parameters<typeof twoNodeObjects>[1] = [];
  for (const spec of pods) {
    const k = ++counts[spec.node];
    const host = 10 + k;
    const ip4 = `10.77.${nodeIndex(spec.node)}.${host}`;
    const ip6 = `fd00:77:${nodeIndex(spec.node)}::${host.toString(16)}`;
    const uid = randomUUID();
    const cgroupDir = join(nodes[spec.node].cgroupDir, `pod${uid}`);
    mkdirSync(cgroupDir);
    cgroups.push(cgroupDir);
    made[spec.name] = { ...makers[spec.node](k, ip4, ip6, { cgroupDir }), spec, uid, cgroupDir };
    specs.push({ ...spec, uid, ip4, ip6 });
  }

  const yaml = yamlDir(t, 'sluice-two-node-');
  const objects = twoNodeObjects(namespaces, specs);
  yaml.write('world.yaml', objects);

  const captures: ChildProcess[] = [];
  t.teardown(() => Promise.all(captures.map(stopChild)));
  const capture = async (node: NodeName, filter: string, opts: { payload?: boolean } = {}) => {
    // -l: a line per packet as it comes; --immediate-mode: nothing held in a buffer when stopped.
    const c = spawn('nsenter', [`--net=/var/run/netns/${nodes[node].ns}`, 'tcpdump', '-i', WIRE_IF, '-nn', '-l', '--immediate-mode', ...(opts.payload ? ['-A'] : []), filter], { stdio: ['ignore', 'pipe', 'pipe'] });
    captures.push(c);
    let out = '';
    let err = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (err += d));
    await eventually(() => /listening on/.test(err) || c.exitCode !== null, 10_000, 'tcpdump to listen');
    if (c.exitCode !== null) throw new Error(`tcpdump exited ${c.exitCode}: ${err}`);
    return {
      stop: async () => {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGINT');
        await gone;
        return out.split('\n').filter(Boolean);
      },
    };
  };
  return {
    nodes,
    pods: made,
    yaml,
    objects,
    model: (extra = []) => Model.from([...objects, ...extra].map((object, index) => ({ object: object as ModelObject, origin: { file: 'world.yaml', index } }))),
    wireIfindex: (node) => JSON.parse(nodes[node].sh('ip', ['-j', 'link', 'show', WIRE_IF]))[0].ifindex,
    capture,
  };
}
