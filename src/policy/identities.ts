// Numeric security identities, as Cilium derives them: one per distinct label
// set of pods (cluster-wide, from FIRST_CLUSTER_IDENTITY), one per CIDR that a
// policy names (node-local, from FIRST_CIDR_IDENTITY), and the reserved ones.
import type { Model } from '../model/model.js';
import type { Pod } from '../model/objects.js';
import { objectKey } from '../model/objects.js';
import { FIRST_CIDR_IDENTITY, FIRST_CLUSTER_IDENTITY, ReservedIdentity, type IpcacheEntry } from './datapath-state.js';
import { cidrContains, formatCidr, parseCidr, type Cidr } from './cidr.js';
import { labelsKey, podIdentityLabels, type Label } from './labels.js';
import { StableIds } from '../ids/stable-ids.js';
import { addNamedPorts, type NamedPorts } from './named-ports.js';

export interface IdentityInfo {
  id: number;
  kind: 'reserved' | 'endpoint' | 'cidr';
  labels: Label[];
  cidr?: Cidr;
}

/** Hands out a number per key and keeps it (src/ids/stable-ids.ts, persisted by the caller). */
export interface IdAllocator {
  idFor(key: string): number;
}

/** In-memory allocators over the contract's ranges; the agent passes file-backed ones so a restart keeps the numbers. */
export function identityAllocators(files: { identities?: string; cidrs?: string; endpoints?: string } = {}) {
  return {
    identities: new StableIds(files.identities, [FIRST_CLUSTER_IDENTITY, 65535]),
    cidrIdentities: new StableIds(files.cidrs, [FIRST_CIDR_IDENTITY, FIRST_CIDR_IDENTITY + 0xffffff]),
    endpoints: new StableIds(files.endpoints, [1, 65535]),
  };
}

const reserved = (id: number, name: string): IdentityInfo => ({ id, kind: 'reserved', labels: [{ source: 'reserved', key: name, value: '' }] });

/** The reserved identities a selector or entity can name. */
export const RESERVED: readonly IdentityInfo[] = [
  reserved(ReservedIdentity.Host, 'host'),
  reserved(ReservedIdentity.World, 'world'),
  reserved(ReservedIdentity.Unmanaged, 'unmanaged'),
  reserved(ReservedIdentity.Health, 'health'),
  reserved(ReservedIdentity.Init, 'init'),
  reserved(ReservedIdentity.RemoteNode, 'remote-node'),
  reserved(ReservedIdentity.KubeApiserver, 'kube-apiserver'),
];

export interface PodIdentity {
  pod: Pod;
  key: string;
  identity: number;
  ips: string[];
}

export interface Identities {
  all: IdentityInfo[];
  byId: Map<number, IdentityInfo>;
  /** By "ns/name". */
  pods: Map<string, PodIdentity>;
  namedPorts: NamedPorts;
  ipcache: IpcacheEntry[];
}

export function podIPs(pod: Pod): string[] {
  const ips = pod.status?.podIPs?.map((p) => p.ip) ?? (pod.status?.podIP ? [pod.status.podIP] : []);
  return [...new Set(ips)].filter((ip) => parseCidr(ip) !== undefined);
}

export interface IdentityInputs {
  cluster: string;
  identities: IdAllocator;
  cidrIdentities: IdAllocator;
  hostIPs: string[];
  remoteNodeIPs: string[];
}

/**
 * Every identity the policies can see. New numbers are taken in sorted key
 * order, so a fresh allocator gives the same numbers whatever order the
 * objects came in.
 */
export function computeIdentities(model: Model, cidrs: Iterable<string>, inp: IdentityInputs): Identities {
  const all: IdentityInfo[] = [...RESERVED];
  const pods = new Map<string, PodIdentity>();
  const byLabels = new Map<string, Label[]>();
  const podKeys: [Pod, string][] = [];
  for (const pod of model.pods()) {
    if (pod.spec?.hostNetwork) continue; // it speaks with the host's addresses and identity
    const labels = podIdentityLabels(pod, model.get('Namespace', pod.metadata.namespace ?? 'default'), inp.cluster);
    const key = labelsKey(labels);
    byLabels.set(key, labels);
    podKeys.push([pod, key]);
  }
  const idOf = new Map<string, number>();
  for (const key of [...byLabels.keys()].sort()) {
    const id = inp.identities.idFor(key);
    idOf.set(key, id);
    all.push({ id, kind: 'endpoint', labels: byLabels.get(key)! });
  }
  const ipcache: IpcacheEntry[] = [
    { prefix: '0.0.0.0/0', identity: ReservedIdentity.World },
    { prefix: '::/0', identity: ReservedIdentity.World },
  ];
  const namedPorts: NamedPorts = new Map();
  for (const [pod, key] of podKeys) {
    const ips = podIPs(pod);
    pods.set(objectKey(pod), { pod, key, identity: idOf.get(key)!, ips });
    addNamedPorts(namedPorts, idOf.get(key)!, pod);
  }
  const named = [...new Set([...cidrs].map((c) => parseCidr(c)).filter((c): c is Cidr => !!c && c.len > 0).map(formatCidr))].sort();
  for (const prefix of named) {
    const id = inp.cidrIdentities.idFor(`cidr:${prefix}`);
    all.push({ id, kind: 'cidr', cidr: parseCidr(prefix), labels: [{ source: 'cidr', key: prefix, value: '' }, { source: 'reserved', key: 'world', value: '' }] });
    ipcache.push({ prefix, identity: id });
  }
  const host = (ip: string) => formatCidr(parseCidr(ip)!);
  for (const ip of inp.remoteNodeIPs) if (parseCidr(ip)) ipcache.push({ prefix: host(ip), identity: ReservedIdentity.RemoteNode });
  for (const ip of inp.hostIPs) if (parseCidr(ip)) ipcache.push({ prefix: host(ip), identity: ReservedIdentity.Host });
  for (const p of [...pods.values()].sort((a, b) => (objectKey(a.pod) < objectKey(b.pod) ? -1 : 1)))
    for (const ip of p.ips) ipcache.push({ prefix: host(ip), identity: p.identity });
  // One entry per prefix: later sources (pods over nodes over CIDRs) win a clash.
  const byPrefix = new Map(ipcache.map((e) => [e.prefix, e]));
  return { all, byId: new Map(all.map((i) => [i.id, i])), pods, namedPorts, ipcache: [...byPrefix.values()] };
}

/** The identity that holds `ip`, by longest prefix, as the datapath finds it. */
export function identityOfIp(ipcache: readonly IpcacheEntry[], ip: string): number {
  const addr = parseCidr(ip);
  if (!addr) return ReservedIdentity.World;
  let best: { len: number; id: number } | undefined;
  for (const e of ipcache) {
    const c = parseCidr(e.prefix)!;
    if (cidrContains(c, addr) && (!best || c.len > best.len)) best = { len: c.len, id: e.identity };
  }
  return best?.id ?? ReservedIdentity.World;
}
