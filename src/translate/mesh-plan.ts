// What the node's Envoy must do for the mesh, as plain data, before any Envoy
// shape: which local identities tunnel to which remote identities on which
// nodes (outbound), and which local identities take tunnels for which pods
// (inbound). Problems that make part of it impossible are issues on the
// object responsible; the rest is still planned.
import { isIP } from 'node:net';
import type { TranslationIssue } from '../issues/issue.js';
import type { MeshWorkload } from '../mesh/membership.js';

export interface OutboundTunnel {
  source: string;
  destination: string;
  node: string;
  /** The local pods holding the source identity. */
  sourceIps: string[];
  /** The destination identity's pods on that node. */
  destinationIps: string[];
  /** Where that node's Envoy takes tunnels: its InternalIPs. */
  nodeAddresses: string[];
}

export interface InboundIdentity {
  spiffeId: string;
  /** The local pods holding it, each with the addresses a tunnel may name. */
  pods: { pod: string; ips: string[] }[];
}

export interface MeshPlan {
  /** This node's InternalIPs: where the inbound listener binds. */
  nodeAddresses: string[];
  outbound: OutboundTunnel[];
  inbound: InboundIdentity[];
  issues: TranslationIssue[];
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function group<T>(items: readonly T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of items) {
    const k = key(x);
    const g = m.get(k);
    if (g) g.push(x);
    else m.set(k, [x]);
  }
  return m;
}

/** IPv6 in the compressed form Envoy prints in %DOWNSTREAM_LOCAL_ADDRESS%, which the far side's routes must match. */
const canonical = (ip: string) => (isIP(ip) === 6 ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip);

/** Addresses that are no IP (a hand-written status, in standalone mode) would make Envoy refuse the whole listener: left out, with an issue. */
function withValidIps(workloads: readonly MeshWorkload[], issues: TranslationIssue[]): MeshWorkload[] {
  const reported = new Set<string>();
  return workloads.map((w) => {
    for (const ip of w.ips) if (!isIP(ip)) issues.push({ object: `Pod ${w.pod}`, field: 'status.podIPs', message: `"${ip}" is not an IP address: not meshed at it` });
    for (const a of w.nodeAddresses)
      if (!isIP(a) && !reported.has(w.node)) {
        reported.add(w.node);
        issues.push({ object: `Node ${w.node}`, field: 'status.addresses', message: `InternalIP "${a}" is not an IP address: no mesh tunnel uses it` });
      }
    return { ...w, ips: w.ips.filter((ip) => isIP(ip)).map(canonical), nodeAddresses: w.nodeAddresses.filter((a) => isIP(a)).map(canonical) };
  });
}

/**
 * An address two meshed pods claim (a stale status, say) cannot say which
 * identity a connection has: it is left out of the mesh for both, which also
 * keeps Envoy's filter chain matches unique.
 */
function withoutSharedIps(workloads: readonly MeshWorkload[], issues: TranslationIssue[]): MeshWorkload[] {
  const owners = group(workloads.flatMap((w) => w.ips.map((ip) => ({ ip, pod: w.pod }))), (x) => x.ip);
  const shared = new Set([...owners].filter(([, o]) => new Set(o.map((x) => x.pod)).size > 1).map(([ip]) => ip));
  if (shared.size === 0) return [...workloads];
  return workloads.map((w) => {
    const mine = w.ips.filter((ip) => shared.has(ip));
    for (const ip of mine) {
      const others = owners.get(ip)!.map((x) => x.pod).filter((p) => p !== w.pod);
      issues.push({ object: `Pod ${w.pod}`, field: 'status.podIPs', message: `address ${ip} is also claimed by meshed pod ${others.join(', ')}: neither is tunnelled at it` });
    }
    return { ...w, ips: w.ips.filter((ip) => !shared.has(ip)) };
  });
}

export function planMesh(meshed: readonly MeshWorkload[], nodeName: string): MeshPlan {
  const issues: TranslationIssue[] = [];
  if (!meshed.some((w) => w.node === nodeName)) return { nodeAddresses: [], outbound: [], inbound: [], issues };
  const all = withValidIps(meshed, issues);
  const local = all.filter((w) => w.node === nodeName);
  const workloads = withoutSharedIps(all, issues).filter((w) => w.ips.length > 0);
  const nodeAddresses = local[0].nodeAddresses;
  if (nodeAddresses.length === 0)
    issues.push({ object: `Node ${nodeName}`, field: 'status.addresses', message: 'no InternalIP: this node takes no mesh tunnels, so its meshed pods are unreachable from other nodes' });

  const mine = workloads.filter((w) => w.node === nodeName);
  const sources = group(mine, (w) => w.spiffeId);
  const remote = group(
    workloads.filter((w) => w.node !== nodeName),
    (w) => JSON.stringify([w.spiffeId, w.node]),
  );
  const unreachable = new Set<string>();
  const outbound: OutboundTunnel[] = [];
  for (const [key, dst] of remote) {
    const [destination, node] = JSON.parse(key) as [string, string];
    if (dst[0].nodeAddresses.length === 0) {
      unreachable.add(node);
      continue;
    }
    for (const [source, src] of sources)
      outbound.push({
        source,
        destination,
        node,
        sourceIps: src.flatMap((w) => w.ips).sort(byString),
        destinationIps: dst.flatMap((w) => w.ips).sort(byString),
        nodeAddresses: dst[0].nodeAddresses,
      });
  }
  for (const node of [...unreachable].sort(byString))
    issues.push({ object: `Node ${node}`, field: 'status.addresses', message: 'no InternalIP: meshed pods on this node are not reachable through the mesh from other nodes' });
  outbound.sort((a, b) => byString(a.source, b.source) || byString(a.destination, b.destination) || byString(a.node, b.node));
  const inbound = nodeAddresses.length === 0 ? [] : [...sources].sort(([a], [b]) => byString(a, b)).map(([spiffeId, ws]) => ({ spiffeId, pods: ws.map((w) => ({ pod: w.pod, ips: w.ips })) }));
  return { nodeAddresses, outbound, inbound, issues };
}
