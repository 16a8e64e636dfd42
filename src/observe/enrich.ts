// What the model knows of a flow's endpoints, filled in as Hubble shows it:
// namespace, pod, identity and its labels ("k8s:app=web", as Cilium prints
// them) for each address, and the Service a translated connection was for.
// Pure: the context is computed once per model and policy result, then each
// flow costs a few map lookups.
import type { Model } from '../model/model.js';
import { normalizeCidr } from '../policy/cidr.js';
import type { PolicyResult } from '../policy/index.js';
import { identityOfIp } from '../policy/identities.js';
import type { Label } from '../policy/labels.js';
import { serviceOfKey } from '../redirect/desired.js';
import type { Flow, FlowEndpoint } from './flow.js';

interface PodInfo {
  namespace: string;
  podName: string;
  identity: number;
}

export interface EnrichContext {
  /** Pods by normalized address ("10.0.0.5/32"). */
  pods: Map<string, PodInfo>;
  /** Identity labels as Cilium strings, by identity. */
  labels: Map<number, string[]>;
  ipcache: PolicyResult['state']['ipcache'];
  /** Services by frontend: "address/len|port". */
  frontends: Map<string, { namespace: string; name: string }>;
}

/** Cilium's Label.String(): "source:key=value", or "source:key" without a value. */
export function labelString(l: Label): string {
  return l.value === '' ? `${l.source}:${l.key}` : `${l.source}:${l.key}=${l.value}`;
}

export function enrichContext(model: Model, policy: PolicyResult): EnrichContext {
  const ids = policy.compiled.identities;
  const pods = new Map<string, PodInfo>();
  for (const p of ids.pods.values())
    for (const ip of p.ips) {
      const key = normalizeCidr(ip);
      if (key) pods.set(key, { namespace: p.pod.metadata.namespace ?? 'default', podName: p.pod.metadata.name, identity: p.identity });
    }
  const labels = new Map<number, string[]>();
  for (const info of ids.all) labels.set(info.id, info.labels.map(labelString).sort());
  const frontends = new Map<string, { namespace: string; name: string }>();
  for (const svc of model.services()) {
    const ref = { namespace: svc.metadata.namespace ?? 'default', name: svc.metadata.name };
    const vips = [...(svc.spec.clusterIPs ?? []), ...(svc.spec.clusterIP ? [svc.spec.clusterIP] : []), ...(svc.spec.externalIPs ?? [])];
    for (const vip of vips) {
      const key = normalizeCidr(vip);
      if (key) for (const port of svc.spec.ports ?? []) frontends.set(`${key}|${port.port}`, ref);
    }
  }
  return { pods, labels, ipcache: policy.state.ipcache, frontends };
}

function endpointOf(ctx: EnrichContext, ip: string | undefined, given: FlowEndpoint | undefined): FlowEndpoint | undefined {
  const pod = ip ? ctx.pods.get(normalizeCidr(ip) ?? '') : undefined;
  // The datapath's own identity, when it reported one, is what it decided with.
  const identity = given?.identity || pod?.identity || (ip ? identityOfIp(ctx.ipcache, ip) : 0);
  if (!identity && !given) return undefined;
  const out: FlowEndpoint = { ...given, identity };
  if (pod && !out.namespace) out.namespace = pod.namespace;
  if (pod && !out.podName) out.podName = pod.podName;
  if (!out.labels?.length && ctx.labels.has(identity)) out.labels = ctx.labels.get(identity);
  return out;
}

export interface EnrichHints {
  /** The Service the socket LB translated for: "ns/name" or a socket-LB serviceKey ("ns/name:80/TCP/v4"). */
  service?: string;
  /** The address the client dialled before translation (a ClusterIP or external IP, and port). */
  originalDestination?: { ip: string; port: number };
}

function serviceRef(ctx: EnrichContext, hints: EnrichHints): Flow['destinationService'] {
  if (hints.service) {
    const id = hints.service.includes(':') ? serviceOfKey(hints.service).service : hints.service;
    const [namespace, name] = id.split('/');
    if (namespace && name) return { namespace, name };
  }
  const o = hints.originalDestination;
  return o ? ctx.frontends.get(`${normalizeCidr(o.ip)}|${o.port}`) : undefined;
}

/** The flow with its endpoints and Service filled in; what the producer already set wins. */
export function enrichFlow(flow: Flow, ctx: EnrichContext, hints: EnrichHints = {}): Flow {
  const out: Flow = { ...flow };
  const source = endpointOf(ctx, flow.ip?.source, flow.source);
  const destination = endpointOf(ctx, flow.ip?.destination, flow.destination);
  if (source) out.source = source;
  if (destination) out.destination = destination;
  const svc = flow.destinationService ?? serviceRef(ctx, hints);
  if (svc) out.destinationService = svc;
  return out;
}
