// What the socket load balancer should hold, as a pure function of the model:
// one entry per frontend (VIP, port, protocol) with its backends and options.
import { isIPv4, isIPv6 } from 'node:net';
import type { Model } from '../model/model.js';
import type { EndpointSlice, Service } from '../model/objects.js';
import { readyBackendsIn } from '../translate/backends.js';
import type { ServiceRedirect } from '../translate/output.js';

export const LB_ALGORITHM_ANNOTATION = 'sluice.io/lb-algorithm';
const DEFAULT_AFFINITY_TIMEOUT = 10800;

export interface Frontend {
  vip: string;
  port: number;
  proto: 'TCP' | 'UDP';
}

export interface DesiredService {
  frontend: Frontend;
  /**
   * "ns/name:port/proto/v4" (or v6, and "/local" for node-local endpoints only):
   * the reverse-NAT id, which keys Maglev tables and affinity, so frontends
   * share one only when they pick from the same backends.
   */
  serviceKey: string;
  backends: { ip: string; port: number }[];
  affinityTimeout?: number;
  maglev: boolean;
  /** The node-local Envoy port when the Service's traffic goes through L7 policy or routing. */
  l7Port?: number;
}

/** The Service and port a serviceKey was made from (the inverse of the key desiredServices writes). */
export function serviceOfKey(key: string): { service: string; port: string } {
  const at = key.lastIndexOf(':');
  return { service: key.slice(0, at), port: key.slice(at + 1).split('/').slice(0, 2).join('/') };
}

export interface NodeAddresses {
  /** The node's own addresses, for NodePort frontends reached from the node itself. */
  nodeIPs: string[];
  /** This node's name: the endpoints an internalTrafficPolicy of Local keeps. */
  nodeName?: string;
}

function clusterIPs(svc: Service): string[] {
  const ips = svc.spec.clusterIPs?.length ? svc.spec.clusterIPs : svc.spec.clusterIP ? [svc.spec.clusterIP] : [];
  return ips.filter((ip) => ip !== 'None' && (isIPv4(ip) || isIPv6(ip)));
}

/**
 * Every frontend a Service port has on this node, each with the backends it
 * picks from. Only connections made on this node reach the socket LB, so:
 * internalTrafficPolicy Local narrows ClusterIPs to this node's endpoints, and
 * externalTrafficPolicy does not apply: Kubernetes gives traffic from the node
 * and its pods to a NodePort, LoadBalancer or external IP every endpoint, as if
 * it had gone out to the load balancer and come back (kube-proxy does the same).
 */
export function desiredServices(model: Model, redirects: readonly ServiceRedirect[], node: NodeAddresses): DesiredService[] {
  return model.services().flatMap((svc) => desiredOfService(svc, model.endpointSlices(svc.metadata.namespace ?? 'default', svc.metadata.name), redirects, node));
}

/** "ns/name": the unit desired state is computed in, and what DesiredService.serviceKey starts with. */
export function serviceId(svc: Service): string {
  return `${svc.metadata.namespace ?? 'default'}/${svc.metadata.name}`;
}

/** The frontends of one Service, from its EndpointSlices: what desiredServices gives for it. */
export function desiredOfService(svc: Service, slices: Iterable<EndpointSlice>, redirects: readonly ServiceRedirect[], node: NodeAddresses): DesiredService[] {
  if (svc.spec.type === 'ExternalName') return [];
  const out: DesiredService[] = [];
  const id = serviceId(svc);
  const sliceList = [...slices];
  const affinity = svc.spec.sessionAffinity === 'ClientIP' ? (svc.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT) : undefined;
  const maglev = svc.metadata.annotations?.[LB_ALGORITHM_ANNOTATION] === 'maglev';
  // Without a node name no endpoint is known to be local: a Local policy then refuses, as with no local endpoint.
  const internalLocal = svc.spec.internalTrafficPolicy === 'Local';
  for (const port of svc.spec.ports ?? []) {
    const proto = port.protocol ?? 'TCP';
    if (proto !== 'TCP' && proto !== 'UDP') continue;
    const redirect = redirects.find((r) => r.service === id && (r.port === undefined || r.port === port.port));
    // L7 redirects carry TCP; UDP keeps going straight to backends.
    const l7Port = proto === 'TCP' ? redirect?.proxyPort : undefined;
    const all = readyBackendsIn(sliceList, port);
    const local = internalLocal ? readyBackendsIn(sliceList, port, node.nodeName ?? '') : all;
    const frontends: { vip: string; port: number; local: boolean }[] = clusterIPs(svc).map((vip) => ({ vip, port: port.port, local: internalLocal }));
    for (const vip of svc.spec.externalIPs ?? []) if (isIPv4(vip) || isIPv6(vip)) frontends.push({ vip, port: port.port, local: false });
    if (port.nodePort && (svc.spec.type === 'NodePort' || svc.spec.type === 'LoadBalancer'))
      for (const vip of ['127.0.0.1', ...node.nodeIPs]) frontends.push({ vip, port: port.nodePort, local: false });
    for (const f of frontends) {
      const v4 = isIPv4(f.vip);
      out.push({
        frontend: { vip: f.vip, port: f.port, proto },
        serviceKey: `${id}:${port.port}/${proto}/${v4 ? 'v4' : 'v6'}${f.local ? '/local' : ''}`,
        backends: (f.local ? local : all).filter((b) => isIPv4(b.ip) === v4),
        affinityTimeout: affinity,
        maglev,
        l7Port,
      });
    }
  }
  return out;
}

/**
 * Maglev lookup table (Eisenbud et al., NSDI 2016): each backend walks its own
 * permutation of the M slots and claims the next free one in turn, giving a
 * near-even spread that moves few slots when a backend comes or goes.
 */
export function maglevTable(backendKeys: string[], m: number): number[] {
  const n = backendKeys.length;
  if (n === 0) return [];
  const hash = (s: string, seed: number) => {
    let h = 2166136261 ^ seed;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
    return h >>> 0;
  };
  const offset = backendKeys.map((k) => hash(k, 0x5bd1e995) % m);
  const skip = backendKeys.map((k) => (hash(k, 0x1b873593) % (m - 1)) + 1);
  const next = new Array<number>(n).fill(0);
  const table = new Array<number>(m).fill(-1);
  for (let filled = 0; ; ) {
    for (let i = 0; i < n; i++) {
      let c = (offset[i] + next[i] * skip[i]) % m;
      while (table[c] >= 0) {
        next[i]++;
        c = (offset[i] + next[i] * skip[i]) % m;
      }
      table[c] = i;
      next[i]++;
      if (++filled === m) return table;
    }
  }
}
