// A node with pods for the L3/L4 policy tests: the node netns (where the TC
// attacher runs, as the agent would), pods x, y (clients), s (the selected
// server), u (unselected), and w, a host outside the pod range standing in for
// the world. The reconciler runs in the test process on the pinned maps.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReservedIdentity, FIRST_CIDR_IDENTITY, type EndpointEntry, type PolicyDatapathState, type PolicyEntry } from '../../src/policy/datapath-state.js';
import { PolicyReconciler } from '../../src/redirect/policy-datapath.js';
import { POLICY_OBJECT } from '../../src/redirect/policy-object.js';
import { eventually } from './envoy.js';
import { netnsWorld, stopChild, type NetnsWorld } from './netns.js';
import { podMaker, type Pod } from './policy-pods.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

const root = fileURLToPath(new URL('../..', import.meta.url));

export const ID = { x: 256, y: 257, s: 258, u: 259, worldNet: FIRST_CIDR_IDENTITY } as const;
export const IP = { x: '10.244.0.11', y: '10.244.0.12', s: '10.244.0.13', u: '10.244.0.14', w: '192.0.2.10' } as const;
export const IP6 = { x: 'fd00:244::11', y: 'fd00:244::12', s: 'fd00:244::13', u: 'fd00:244::14', w: '2001:db8::10' } as const;

export interface PolicyWorld {
  node: NetnsWorld;
  pods: { x: Pod; y: Pod; s: Pod; u: Pod; w: Pod };
  reconciler: PolicyReconciler;
  /** Starts the attacher in the node netns; resolves with what it adopted once every pod veth has both hooks. */
  startAttacher(): Promise<{ child: ChildProcess; adopted: string[] }>;
  state(opts: { enforce?: Partial<Record<'x' | 'y' | 's' | 'u', ('ingress' | 'egress')[]>>; entries?: PolicyEntry[] }): PolicyDatapathState;
}

export const entry = (endpoint: number, direction: 'ingress' | 'egress', identity: number, proto: number, port: number, verdict: PolicyEntry['verdict'], proxyPort?: number): PolicyEntry => ({
  endpoint,
  direction,
  identity,
  proto,
  port,
  portPrefixLen: proto === 0 ? 0 : 16,
  verdict,
  proxyPort,
});

/** Endpoint numbers of the pods. */
export const EP = { x: 1, y: 2, s: 3, u: 4 } as const;

/**
 * Starts the policy TC attacher in a node netns, as the agent would run it
 * there; resolves with what it adopted once each of `veths` (ifindexes) has
 * both hooks. Stopped, by PID, at teardown. `objectPath`: another build of
 * bpf/policy.c (an older version's, say).
 */
export function tcAttacherStarter(t: Teardown, node: NetnsWorld, veths: number[], objectPath = POLICY_OBJECT): () => Promise<{ child: ChildProcess; adopted: string[] }> {
  const attachers: ChildProcess[] = [];
  t.teardown(() => Promise.all(attachers.map(stopChild)));
  return () =>
    new Promise<{ child: ChildProcess; adopted: string[] }>((resolve, reject) => {
      const child = spawn('nsenter', [`--net=/var/run/netns/${node.ns}`, process.execPath, join(root, 'test/helpers/tc-attacher.mjs'), node.pinDir, objectPath], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      attachers.push(child);
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        if (!out.includes('\n')) return;
        const { adopted } = JSON.parse(out.split('\n')[0]);
        const tc = join(node.pinDir, 'tc');
        eventually(() => veths.every((i) => ['ingress', 'egress'].every((dir) => readdirSync(tc).includes(`${i}-${dir}`))), 10_000, 'both hooks on every pod veth').then(
          () => resolve({ child, adopted }),
          reject,
        );
      });
      child.on('exit', (code) => reject(new Error(`attacher exited with ${code}`)));
    });
}

export async function policyWorld(t: Teardown): Promise<PolicyWorld> {
  for (const f of [POLICY_OBJECT, join(root, 'dist/redirect/tc-attach.js')])
    if (!existsSync(f)) throw new Error(`${f} is missing: run scripts/setup.sh (or npm run build and the clang line for bpf/policy.c)`);
  const node = await netnsWorld(t, []);
  const pod = podMaker(t, node);
  const pods = { x: pod(1, IP.x, IP6.x), y: pod(2, IP.y, IP6.y), s: pod(3, IP.s, IP6.s), u: pod(4, IP.u, IP6.u), w: pod(5, IP.w, IP6.w) };
  await Promise.all([
    pods.s.servers({ http: [{ ip: IP.s, port: 80, name: 'deathstar' }, { ip: IP6.s, port: 80, name: 'deathstar6' }], tcp: [{ ip: IP.s, port: 8080, name: 'deathstar-8080' }], echo: [{ ip: IP.s, port: 9000 }] }),
    pods.u.servers({ http: [{ ip: IP.u, port: 80, name: 'open' }] }),
    pods.w.servers({ http: [{ ip: IP.w, port: 80, name: 'world' }] }),
    pods.x.servers({ http: [{ ip: IP.x, port: 80, name: 'x' }] }),
  ]);
  const reconciler = PolicyReconciler.open(node.pinDir, { retryMs: 0 });
  t.teardown(() => reconciler.close());
  const veths = Object.values(pods).map((p) => p.ifindex());
  const startAttacher = tcAttacherStarter(t, node, veths);
  const state: PolicyWorld['state'] = ({ enforce = {}, entries = [] }) => ({
    ipcache: [
      { prefix: '0.0.0.0/0', identity: ReservedIdentity.World },
      { prefix: '::/0', identity: ReservedIdentity.World },
      { prefix: '192.0.2.0/24', identity: ID.worldNet },
      ...(['x', 'y', 's', 'u'] as const).flatMap((p) => [
        { prefix: `${IP[p]}/32`, identity: ID[p] },
        { prefix: `${IP6[p]}/128`, identity: ID[p] },
      ]),
    ],
    // A dual-stack pod is two endpoint entries with one number.
    endpoints: (['x', 'y', 's', 'u'] as const).flatMap((p) => [IP[p], IP6[p]]).map(
      (ip): EndpointEntry => {
        const p = (Object.keys(IP) as (keyof typeof IP)[]).find((k) => IP[k] === ip || IP6[k] === ip) as 'x' | 'y' | 's' | 'u';
        return {
        pod: `default/${p}`,
        ip,
        endpoint: EP[p],
        identity: ID[p],
        ingressEnforced: enforce[p]?.includes('ingress') ?? false,
        egressEnforced: enforce[p]?.includes('egress') ?? false,
      };
      },
    ),
    entries,
  });
  return { node, pods, reconciler, startAttacher, state };
}

/** What a step's results come to: the error, or the status (http) and the body. */
export const outcomes = (rs: any[]) => rs.map((r) => (r.error ? r.error : r.status === undefined ? r.backend : `${r.status} ${r.backend}`));
