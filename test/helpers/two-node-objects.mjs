// The two-node world written as Kubernetes YAML objects: Namespaces (meshed
// ones carry the mesh label), the Nodes n1 and n2 with their pod CIDRs and wire
// addresses, and the Pods with nodeName, uid, serviceAccountName and addresses.
// Plain JS so bench/mesh.mjs, run with plain node, builds the same world.

/** Each node's address on the wire. */
export const WIRE = { n1: { ip4: '192.168.77.1', ip6: 'fd00:77::1' }, n2: { ip4: '192.168.77.2', ip6: 'fd00:77::2' } };
export const NODES = ['n1', 'n2'];
export const nodeIndex = (n) => (n === 'n1' ? 1 : 2);
export const podCidr = (n) => ({ ip4: `10.77.${nodeIndex(n)}.0/24`, ip6: `fd00:77:${nodeIndex(n)}::/64` });

/** `pods`: { name, node, namespace, serviceAccount?, labels?, uid, ip4, ip6 }. */
export function twoNodeObjects(namespaces, pods, meshLabel) {
  const ns = Object.entries(namespaces).map(([name, meshed]) => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...(meshed ? { [meshLabel]: 'enabled' } : {}) } },
  }));
  const nodes = NODES.map((n) => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: n, labels: { 'kubernetes.io/hostname': n } },
    spec: { podCIDR: podCidr(n).ip4, podCIDRs: [podCidr(n).ip4, podCidr(n).ip6] },
    status: { addresses: [{ type: 'InternalIP', address: WIRE[n].ip4 }, { type: 'InternalIP', address: WIRE[n].ip6 }, { type: 'Hostname', address: n }] },
  }));
  const podObjects = pods.map((p) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: p.name, namespace: p.namespace, uid: p.uid, labels: { app: p.name, ...p.labels } },
    spec: { nodeName: p.node, serviceAccountName: p.serviceAccount ?? 'default', containers: [{ name: 'app', image: 'none' }] },
    status: { phase: 'Running', hostIP: WIRE[p.node].ip4, podIP: p.ip4, podIPs: [{ ip: p.ip4 }, { ip: p.ip6 }] },
  }));
  return [...ns, ...nodes, ...podObjects];
}
