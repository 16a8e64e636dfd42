// What the mesh asks of the kernel on one node: which of its endpoints are
// meshed (their flows to meshed pods elsewhere go into the node's Envoy), and
// where those meshed pods elsewhere are. Pure; the policy wiring merges it
// into the state the BPF reconciler applies, so membership switches
// atomically with the rest of the policy state.
import { isIPv4 } from 'node:net';
import type { MeshDestination, PolicyDatapathState } from '../policy/datapath-state.js';
import { MESH_OUTBOUND_PORT, type MeshWorkload } from './membership.js';

export interface MeshDatapath {
  /** Pod keys ("ns/name") of the meshed pods on this node. */
  localPods: ReadonlySet<string>;
  /** Meshed pods on other nodes, each address a host prefix, sorted. */
  destinations: MeshDestination[];
}

const hostPrefix = (ip: string) => `${ip}/${isIPv4(ip) ? 32 : 128}`;

export function meshDatapath(workloads: readonly MeshWorkload[], nodeName: string, proxyPort = MESH_OUTBOUND_PORT): MeshDatapath {
  const localPods = new Set<string>();
  const prefixes = new Set<string>();
  for (const w of workloads) {
    if (w.node === nodeName) localPods.add(w.pod);
    // A local pod is reached over its veth, never over the wire: no tunnel, nothing to steer.
    else for (const ip of w.ips) prefixes.add(hostPrefix(ip));
  }
  return { localPods, destinations: [...prefixes].sort().map((prefix) => ({ prefix, proxyPort })) };
}

/**
 * The policy state with the mesh's part: its endpoints flagged, its
 * destinations listed. An address that is both a local endpoint's and a remote
 * workload's (a stale Pod on another node still holding a reused IP) is left
 * out of the destinations: the local pod behind the veth is the one that is there.
 */
export function withMesh(state: PolicyDatapathState, mesh: MeshDatapath): PolicyDatapathState {
  const local = new Set(state.endpoints.map((e) => hostPrefix(e.ip)));
  return {
    ...state,
    endpoints: state.endpoints.map((e) => (mesh.localPods.has(e.pod) ? { ...e, meshed: true } : e)),
    meshDestinations: mesh.destinations.filter((d) => !local.has(d.prefix)),
  };
}
