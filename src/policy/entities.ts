// Cilium's entities as peers over identities.
import { ReservedIdentity } from './datapath-state.js';
import type { Peer } from './selectors.js';

const CLUSTER_RESERVED = new Set<number>([
  ReservedIdentity.Host,
  ReservedIdentity.RemoteNode,
  ReservedIdentity.Init,
  ReservedIdentity.Health,
  ReservedIdentity.Unmanaged,
  ReservedIdentity.KubeApiserver,
]);
const WORLD = new Set<number>([ReservedIdentity.World, ReservedIdentity.WorldIPv4, ReservedIdentity.WorldIPv6]);

const ENTITIES: Record<string, Peer> = {
  all: { key: 'entity:all', any: true, matches: () => true },
  // CIDR identities are outside the cluster too: Cilium labels them reserved:world.
  world: { key: 'entity:world', matches: (i) => WORLD.has(i.id) || i.kind === 'cidr' },
  cluster: { key: 'entity:cluster', matches: (i) => i.kind === 'endpoint' || CLUSTER_RESERVED.has(i.id) },
  host: { key: 'entity:host', matches: (i) => i.id === ReservedIdentity.Host },
  'remote-node': { key: 'entity:remote-node', matches: (i) => i.id === ReservedIdentity.RemoteNode },
};

/** Entities Cilium knows that sluice does not enforce yet. */
const UNSUPPORTED = new Set(['health', 'init', 'unmanaged', 'kube-apiserver', 'ingress', 'world-ipv4', 'world-ipv6']);

export function entityPeer(name: unknown): Peer | { problem: string } {
  if (typeof name === 'string' && Object.hasOwn(ENTITIES, name)) return ENTITIES[name];
  if (typeof name === 'string' && UNSUPPORTED.has(name)) return { problem: `entity "${name}" is not supported by sluice; supported: ${Object.keys(ENTITIES).join(', ')}` };
  return { problem: `unknown entity ${JSON.stringify(name)}; want one of ${Object.keys(ENTITIES).join(', ')}` };
}
