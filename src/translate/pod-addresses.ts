// Which source addresses are which namespace's clients on this node: the
// node's Envoy tells a consumer namespace's requests apart by them.
import type { Model } from '../model/model.js';

/** Host prefixes of this node's running pods, by namespace. Host-network pods share the node's address, so they are nobody's. */
export function podPrefixesByNamespace(model: Model, nodeName: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const taken = new Set<string>();
  const pods = model
    .pods()
    .filter((p) => p.spec?.nodeName === nodeName && !p.spec?.hostNetwork && p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed')
    .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  for (const p of pods) {
    const ips = p.status?.podIPs?.map((x) => x.ip) ?? (p.status?.podIP ? [p.status.podIP] : []);
    for (const ip of ips) {
      // An address reused before the old pod is gone must not sit in two namespaces' filter chains.
      if (taken.has(ip)) continue;
      taken.add(ip);
      const ns = p.metadata.namespace ?? 'default';
      const list = out.get(ns) ?? [];
      list.push(ip.includes(':') ? `${ip}/128` : `${ip}/32`);
      out.set(ns, list);
    }
  }
  return out;
}
