// Which pods are in the mesh, and under which identity. Pure: read from the
// model only, so the translator (Envoy side), the datapath (steering) and the
// identity reconciler (which SVIDs this node needs) agree on one answer.
//
// A namespace opts in with the label `sluice.io/mesh: enabled`, as ambient's
// `istio.io/dataplane-mode: ambient`; a pod may opt out with
// `sluice.io/mesh: disabled` or opt in by itself with `enabled`.
import type { Model } from '../model/model.js';
import type { Namespace, Node, Pod } from '../model/objects.js';
import { workloadSpiffeId } from '../identity/types.js';

export const MESH_LABEL = 'sluice.io/mesh';
/** The port on each node's address where its Envoy takes mTLS tunnels (Istio's HBONE uses the same number). */
export const MESH_INBOUND_PORT = 15008;
/** The port on the node proxy address where the node's Envoy takes steered outbound meshed connections. */
export const MESH_OUTBOUND_PORT = 15001;

export interface MeshWorkload {
  /** "ns/name" */
  pod: string;
  namespace: string;
  serviceAccount: string;
  spiffeId: string;
  /** The pod's addresses (IPv4 and/or IPv6). */
  ips: string[];
  node: string;
  /** The node's InternalIP addresses, where its Envoy's tunnel port is; empty if the Node is unknown. */
  nodeAddresses: string[];
  /** The pod's uid, which the Workload API matches against a caller's cgroup. */
  uid?: string;
}

function podIps(p: Pod): string[] {
  return p.status?.podIPs?.map((x) => x.ip) ?? (p.status?.podIP ? [p.status.podIP] : []);
}

function nodeAddresses(n: Node | undefined): string[] {
  return (n?.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address);
}

export function isMeshed(pod: Pod, namespace: Namespace | undefined): boolean {
  const own = pod.metadata.labels?.[MESH_LABEL];
  if (own === 'enabled') return true;
  if (own === 'disabled') return false;
  return namespace?.metadata.labels?.[MESH_LABEL] === 'enabled';
}

/**
 * Every meshed, running, non-hostNetwork pod with an address and a node, in a
 * stable order (by pod key). Pods on every node are listed: the source side
 * needs the remote ones to reach their node, the destination side its own.
 */
export function meshWorkloads(model: Model, trustDomain: string): MeshWorkload[] {
  const out: MeshWorkload[] = [];
  for (const p of model.list('Pod')) {
    if (p.spec?.hostNetwork) continue;
    const phase = p.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') continue;
    const ns = p.metadata.namespace ?? 'default';
    const node = p.spec?.nodeName;
    const ips = podIps(p);
    if (!node || ips.length === 0) continue;
    if (!isMeshed(p, model.get('Namespace', ns))) continue;
    const sa = p.spec?.serviceAccountName || 'default';
    out.push({
      pod: `${ns}/${p.metadata.name}`,
      namespace: ns,
      serviceAccount: sa,
      spiffeId: workloadSpiffeId(trustDomain, ns, sa),
      ips,
      node,
      nodeAddresses: nodeAddresses(model.get('Node', node)),
      uid: p.metadata.uid,
    });
  }
  return out.sort((a, b) => (a.pod < b.pod ? -1 : a.pod > b.pod ? 1 : 0));
}
