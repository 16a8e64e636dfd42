// Kubernetes NetworkPolicy into the same rule sets as Cilium's policies.
import type { NetworkPolicy } from '../model/objects.js';
import { describeObject } from '../model/objects.js';
import { entityPeer } from './entities.js';
import { NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX } from './labels.js';
import { cidrPeer, inNamespace } from './peers.js';
import { PROTO, parsePort } from './ports.js';
import { PolicyProblem, isObject, listAt, type Direction, type Parsed, type PeerRule, type PortRule } from './rules.js';
import { compileSelector, selectorPeer, type Peer, type Requirement } from './selectors.js';

function requirements(v: unknown, field: string, prefix = ''): Requirement[] {
  const c = compileSelector(v, field, 'k8s');
  if ('problem' in c) throw new PolicyProblem(c.field, c.problem);
  // Pod labels keep their key; namespace labels are pod identity labels under Cilium's prefix.
  return c.requirements.map((r) => ({ ...r, source: 'k8s', key: prefix + r.key }));
}

function peer(p: unknown, field: string, ns: string, cidrs: string[]): Peer {
  if (!isObject(p)) throw new PolicyProblem(field, 'want an object');
  for (const k of Object.keys(p)) if (!['podSelector', 'namespaceSelector', 'ipBlock'].includes(k)) throw new PolicyProblem(`${field}.${k}`, `unknown field "${k}"`);
  if (p.ipBlock !== undefined) {
    if (p.podSelector !== undefined || p.namespaceSelector !== undefined) throw new PolicyProblem(`${field}.ipBlock`, 'ipBlock cannot be combined with a selector');
    if (!isObject(p.ipBlock)) throw new PolicyProblem(`${field}.ipBlock`, 'want {cidr, except}');
    const c = cidrPeer(p.ipBlock.cidr, listAt(p.ipBlock.except, `${field}.ipBlock.except`), `${field}.ipBlock.cidr`);
    cidrs.push(...c.prefixes);
    return c.peer;
  }
  if (p.podSelector === undefined && p.namespaceSelector === undefined) throw new PolicyProblem(field, 'want podSelector, namespaceSelector or ipBlock');
  const reqs = p.podSelector !== undefined ? requirements(p.podSelector, `${field}.podSelector`) : [];
  if (p.namespaceSelector === undefined) reqs.push(inNamespace(ns));
  else {
    reqs.push(...requirements(p.namespaceSelector, `${field}.namespaceSelector`, NAMESPACE_LABELS_PREFIX));
    // An empty namespaceSelector means every namespace's pods, and nothing outside the cluster.
    reqs.push({ source: 'k8s', key: NAMESPACE_LABEL, op: 'Exists', values: [] });
  }
  return selectorPeer(reqs);
}

function ports(list: unknown[], field: string): PortRule[] | undefined {
  if (list.length === 0) return undefined;
  return list.map((p, i) => {
    const f = `${field}[${i}]`;
    if (!isObject(p)) throw new PolicyProblem(f, 'want an object');
    const protocol = p.protocol ?? 'TCP';
    if (protocol !== 'TCP' && protocol !== 'UDP' && protocol !== 'SCTP') throw new PolicyProblem(`${f}.protocol`, `unknown protocol ${JSON.stringify(protocol)}; want TCP, UDP or SCTP`);
    const parsed = parsePort(p.port);
    if (typeof parsed === 'object' && 'problem' in parsed) throw new PolicyProblem(`${f}.port`, parsed.problem);
    if (typeof parsed === 'object') {
      if (p.endPort !== undefined) throw new PolicyProblem(`${f}.endPort`, 'a named port takes no endPort');
      return { field: f, proto: PROTO[protocol as 'TCP'], lo: 0, hi: 0, name: parsed.name };
    }
    const port = parsed;
    if (p.port !== undefined && port === 0) throw new PolicyProblem(`${f}.port`, 'port 0 is out of range 1-65535');
    let hi = port === 0 ? 65535 : port;
    if (p.endPort !== undefined) {
      if (!Number.isInteger(p.endPort) || port === 0 || p.endPort < port || p.endPort > 65535)
        throw new PolicyProblem(`${f}.endPort`, `want a port from ${port || 1} to 65535 after a numeric port, not ${JSON.stringify(p.endPort)}`);
      hi = p.endPort;
    }
    return { field: f, proto: PROTO[protocol as 'TCP'], lo: port, hi };
  });
}

export function parseNetworkPolicy(np: NetworkPolicy): Parsed {
  const ns = np.metadata.namespace ?? 'default';
  try {
    const spec = np.spec ?? {};
    if (!isObject(spec)) throw new PolicyProblem('spec', 'want an object');
    const subject = selectorPeer([...requirements(spec.podSelector ?? {}, 'spec.podSelector'), inNamespace(ns)]);
    const types = listAt(spec.policyTypes, 'spec.policyTypes');
    for (const [i, t] of types.entries()) if (t !== 'Ingress' && t !== 'Egress') throw new PolicyProblem(`spec.policyTypes[${i}]`, `want Ingress or Egress, not ${JSON.stringify(t)}`);
    const enforce = types.length
      ? { ingress: types.includes('Ingress'), egress: types.includes('Egress') }
      : { ingress: true, egress: spec.egress !== undefined };
    const cidrs: string[] = [];
    const rules: PeerRule[] = [];
    for (const [direction, key, peersKey] of [
      ['ingress', 'ingress', 'from'],
      ['egress', 'egress', 'to'],
    ] as [Direction, 'ingress' | 'egress', 'from' | 'to'][]) {
      for (const [i, r] of listAt(spec[key], `spec.${key}`).entries()) {
        const field = `spec.${key}[${i}]`;
        if (!isObject(r)) throw new PolicyProblem(field, 'want an object');
        const list = listAt(r[peersKey], `${field}.${peersKey}`);
        // No peers listed: every peer, inside the cluster or not.
        const peers = list.length ? list.map((p, j) => peer(p, `${field}.${peersKey}[${j}]`, ns, cidrs)) : [entityPeer('all') as Peer];
        // Rules of a direction the policy does not enforce are ignored, as Kubernetes does.
        if (enforce[direction]) rules.push({ field, direction, deny: false, peers, ports: ports(listAt(r.ports, `${field}.ports`), `${field}.ports`) });
      }
    }
    return { ruleSets: [{ policy: describeObject(np), subject, enforce, rules, cidrs }] };
  } catch (e) {
    if (e instanceof PolicyProblem) return { problems: [{ field: e.field, message: e.message }] };
    throw e;
  }
}
