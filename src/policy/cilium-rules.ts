// CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy into rule sets.
import type { CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy } from '../model/objects.js';
import { describeObject } from '../model/objects.js';
import { entityPeer } from './entities.js';
import { parseHttpRules } from './http.js';
import { CLUSTER_LABEL } from './labels.js';
import { cidrPeer, inNamespace, namesNamespace } from './peers.js';
import { PORT_PROTOS, PROTO, parsePort } from './ports.js';
import { PolicyProblem, isObject, listAt, type Direction, type HttpRule, type Parsed, type PeerRule, type PortRule, type RuleSet } from './rules.js';
import { compileSelector, selectorPeer, type Peer, type Requirement } from './selectors.js';

const SPEC_FIELDS = new Set(['endpointSelector', 'nodeSelector', 'ingress', 'ingressDeny', 'egress', 'egressDeny', 'labels', 'description', 'enableDefaultDeny']);

const L3 = {
  ingress: { endpoints: 'fromEndpoints', cidr: 'fromCIDR', cidrSet: 'fromCIDRSet', entities: 'fromEntities', unsupported: ['fromRequires', 'fromGroups', 'fromNodes'] },
  egress: { endpoints: 'toEndpoints', cidr: 'toCIDR', cidrSet: 'toCIDRSet', entities: 'toEntities', unsupported: ['toRequires', 'toServices', 'toFQDNs', 'toGroups', 'toNodes'] },
} as const;
const UNSUPPORTED_ANYWHERE = ['icmps'];
const PORT_RULE_UNSUPPORTED = ['terminatingTLS', 'originatingTLS', 'serverNames', 'listener'];
const L7_UNSUPPORTED = ['kafka', 'dns', 'l7proto', 'l7'];

function selector(v: unknown, field: string, scope: string | undefined, isSubject: boolean): Peer {
  const c = compileSelector(v, field, 'any');
  if ('problem' in c) throw new PolicyProblem(c.field, c.problem);
  const reqs: Requirement[] = [...c.requirements];
  // A namespaced policy selects only its own namespace's endpoints, and its peers there unless they say otherwise.
  if (scope !== undefined && (isSubject || !namesNamespace(reqs))) reqs.push(inNamespace(scope));
  // A peer selector means pods of the cluster (as Cilium's policy-default-local-cluster has it), so `{}` or a
  // NotIn never reaches the world or the host; reserved: labels name those.
  if (!isSubject && !reqs.some((r) => r.source === 'reserved' || r.key === CLUSTER_LABEL)) reqs.push({ source: 'k8s', key: CLUSTER_LABEL, op: 'Exists', values: [] });
  return selectorPeer(reqs);
}

function protocols(p: unknown, field: string): number[] {
  if (p === undefined || p === 'ANY') return [PROTO.ANY];
  if (p === 'TCP' || p === 'UDP' || p === 'SCTP') return [PROTO[p]];
  throw new PolicyProblem(field, `unknown protocol ${JSON.stringify(p)}; want TCP, UDP, SCTP or ANY`);
}

/** One toPorts entry: its ports, each with the L7 rules that go with them. */
function portRules(tp: unknown, field: string, deny: boolean): PortRule[] {
  if (!isObject(tp)) throw new PolicyProblem(field, 'want an object');
  for (const k of PORT_RULE_UNSUPPORTED) if (tp[k] !== undefined) throw new PolicyProblem(`${field}.${k}`, `"${k}" is not supported by sluice`);
  for (const k of Object.keys(tp)) if (k !== 'ports' && k !== 'rules' && !PORT_RULE_UNSUPPORTED.includes(k)) throw new PolicyProblem(`${field}.${k}`, `unknown field "${k}"`);
  let http: HttpRule[] | undefined;
  if (tp.rules !== undefined) {
    if (!isObject(tp.rules)) throw new PolicyProblem(`${field}.rules`, 'want an object');
    if (deny) throw new PolicyProblem(`${field}.rules`, 'deny rules cannot carry L7 rules');
    for (const k of L7_UNSUPPORTED) if (tp.rules[k] !== undefined) throw new PolicyProblem(`${field}.rules.${k}`, `L7 "${k}" rules are not supported by sluice; only http`);
    for (const k of Object.keys(tp.rules)) if (k !== 'http' && !L7_UNSUPPORTED.includes(k)) throw new PolicyProblem(`${field}.rules.${k}`, `unknown field "${k}"`);
    http = parseHttpRules(tp.rules.http, `${field}.rules.http`);
  }
  const ports = listAt(tp.ports, `${field}.ports`);
  if (ports.length === 0) {
    if (http) throw new PolicyProblem(`${field}.ports`, 'L7 rules need a port');
    return [{ field, proto: PROTO.ANY, lo: 0, hi: 65535 }];
  }
  return ports.flatMap((p, i) => {
    const f = `${field}.ports[${i}]`;
    if (!isObject(p)) throw new PolicyProblem(f, 'want an object');
    const parsed = parsePort(p.port);
    if (typeof parsed === 'object' && 'problem' in parsed) throw new PolicyProblem(`${f}.port`, parsed.problem);
    const name = typeof parsed === 'object' ? parsed.name : undefined;
    if (name !== undefined && p.endPort !== undefined) throw new PolicyProblem(`${f}.endPort`, 'a named port takes no endPort');
    const port = typeof parsed === 'number' ? parsed : 0;
    let hi = port === 0 && name === undefined ? 65535 : port;
    if (p.endPort !== undefined) {
      if (!Number.isInteger(p.endPort) || p.endPort < port || p.endPort > 65535 || port === 0)
        throw new PolicyProblem(`${f}.endPort`, `want a port from ${port || 1} to 65535 after a non-zero port, not ${JSON.stringify(p.endPort)}`);
      hi = p.endPort;
    }
    let protos = protocols(p.protocol, `${f}.protocol`);
    if (http) {
      if ((port === 0 && name === undefined) || hi !== port) throw new PolicyProblem(p.endPort !== undefined ? `${f}.endPort` : `${f}.port`, 'L7 rules need a single port');
      if (protos[0] !== PROTO.TCP && protos[0] !== PROTO.ANY) throw new PolicyProblem(`${f}.protocol`, 'HTTP rules need TCP');
      protos = [PROTO.TCP];
    } else if (protos[0] === PROTO.ANY && !(port === 0 && hi === 65535)) protos = [...PORT_PROTOS];
    return protos.map((proto) => ({ field: f, proto, lo: proto === PROTO.ANY ? 0 : port, hi, ...(name !== undefined ? { name } : {}), ...(http ? { http } : {}) }));
  });
}

function peerRule(r: unknown, field: string, direction: Direction, deny: boolean, scope: string | undefined, cidrs: string[]): PeerRule {
  if (!isObject(r)) throw new PolicyProblem(field, 'want an object');
  const names = L3[direction];
  for (const k of [...names.unsupported, ...UNSUPPORTED_ANYWHERE]) if (r[k] !== undefined) throw new PolicyProblem(`${field}.${k}`, `"${k}" is not supported by sluice`);
  const known = new Set<string>([names.endpoints, names.cidr, names.cidrSet, names.entities, 'toPorts', 'authentication', ...names.unsupported, ...UNSUPPORTED_ANYWHERE]);
  for (const k of Object.keys(r)) if (!known.has(k)) throw new PolicyProblem(`${field}.${k}`, `unknown field "${k}"`);
  const peers: Peer[] = [];
  for (const [i, s] of listAt(r[names.endpoints], `${field}.${names.endpoints}`).entries()) peers.push(selector(s, `${field}.${names.endpoints}[${i}]`, scope, false));
  for (const [i, c] of listAt(r[names.cidr], `${field}.${names.cidr}`).entries()) {
    const p = cidrPeer(c, [], `${field}.${names.cidr}[${i}]`);
    peers.push(p.peer);
    cidrs.push(...p.prefixes);
  }
  for (const [i, s] of listAt(r[names.cidrSet], `${field}.${names.cidrSet}`).entries()) {
    const f = `${field}.${names.cidrSet}[${i}]`;
    if (!isObject(s)) throw new PolicyProblem(f, 'want {cidr, except}');
    if (s.cidrGroupRef !== undefined || s.cidrGroupSelector !== undefined) throw new PolicyProblem(`${f}.cidrGroupRef`, 'CIDR groups are not supported by sluice');
    const p = cidrPeer(s.cidr, listAt(s.except, `${f}.except`), `${f}.cidr`);
    peers.push(p.peer);
    cidrs.push(...p.prefixes);
  }
  for (const [i, e] of listAt(r[names.entities], `${field}.${names.entities}`).entries()) {
    const p = entityPeer(e);
    if ('problem' in p) throw new PolicyProblem(`${field}.${names.entities}[${i}]`, p.problem);
    peers.push(p);
  }
  const toPorts = listAt(r.toPorts, `${field}.toPorts`);
  const ports = toPorts.length ? toPorts.flatMap((tp, i) => portRules(tp, `${field}.toPorts[${i}]`, deny)) : undefined;
  const authRequired = authentication(r.authentication, `${field}.authentication`, deny);
  // The mesh's authorization is by identity and port; it cannot carry http rules, so an mTLS-only
  // rule with them would admit nothing anywhere. Refused loudly rather than silently empty.
  if (authRequired && ports?.some((p) => p.http)) throw new PolicyProblem(`${field}.authentication`, 'authentication required together with L7 http rules is not supported by sluice');
  // No L3 field: with ports, every peer on those ports; without, an empty rule that only turns enforcement on.
  const l3 = [names.endpoints, names.cidr, names.cidrSet, names.entities].some((k) => listAt(r[k], k).length > 0);
  if (!l3 && ports) peers.push(entityPeer('all') as Peer);
  return { field, direction, deny, peers, ports, ...(authRequired ? { authRequired } : {}) };
}

/** Cilium's rule-level `authentication`: true when the rule admits mTLS traffic only. */
function authentication(v: unknown, field: string, deny: boolean): boolean {
  if (v === undefined || v === null) return false;
  // Cilium's deny rules have no such field: a deny applies whatever the transport.
  if (deny) throw new PolicyProblem(field, 'deny rules take no authentication');
  if (!isObject(v)) throw new PolicyProblem(field, 'want {mode}');
  for (const k of Object.keys(v)) if (k !== 'mode') throw new PolicyProblem(`${field}.${k}`, `unknown field "${k}"`);
  if (v.mode === 'disabled') return false;
  if (v.mode === 'required') return true;
  if (v.mode === 'test-always-fail') throw new PolicyProblem(`${field}.mode`, 'mode "test-always-fail" is not supported by sluice; want required or disabled');
  throw new PolicyProblem(`${field}.mode`, `unknown mode ${JSON.stringify(v.mode)}; want required or disabled`);
}

function ruleSet(policy: CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy, spec: unknown, base: string): RuleSet {
  if (!isObject(spec)) throw new PolicyProblem(base, 'want an object');
  for (const k of Object.keys(spec)) if (!SPEC_FIELDS.has(k)) throw new PolicyProblem(`${base}.${k}`, `unknown field "${k}"`);
  if (spec.nodeSelector !== undefined) throw new PolicyProblem(`${base}.nodeSelector`, 'host policies (nodeSelector) are not supported by sluice');
  if (spec.endpointSelector === undefined) throw new PolicyProblem(`${base}.endpointSelector`, 'required');
  const scope = policy.kind === 'CiliumNetworkPolicy' ? (policy.metadata.namespace ?? 'default') : undefined;
  const subject = selector(spec.endpointSelector, `${base}.endpointSelector`, scope, true);
  const cidrs: string[] = [];
  const rules: PeerRule[] = [];
  const sections = [
    ['ingress', 'ingress', false],
    ['ingressDeny', 'ingress', true],
    ['egress', 'egress', false],
    ['egressDeny', 'egress', true],
  ] as const;
  for (const [key, direction, deny] of sections)
    for (const [i, r] of listAt(spec[key], `${base}.${key}`).entries()) rules.push(peerRule(r, `${base}.${key}[${i}]`, direction, deny, scope, cidrs));
  const dd = spec.enableDefaultDeny;
  if (dd !== undefined && !isObject(dd)) throw new PolicyProblem(`${base}.enableDefaultDeny`, 'want {ingress, egress}');
  const enforce = (d: Direction) => rules.some((r) => r.direction === d) && dd?.[d] !== false;
  return { policy: describeObject(policy), subject, enforce: { ingress: enforce('ingress'), egress: enforce('egress') }, rules, cidrs };
}

export function parseCiliumPolicy(policy: CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy): Parsed {
  try {
    if (policy.spec === undefined && policy.specs === undefined) throw new PolicyProblem('spec', 'want spec or specs');
    const ruleSets: RuleSet[] = [];
    if (policy.spec !== undefined) ruleSets.push(ruleSet(policy, policy.spec, 'spec'));
    for (const [i, s] of listAt(policy.specs, 'specs').entries()) ruleSets.push(ruleSet(policy, s, `specs[${i}]`));
    return { ruleSets };
  } catch (e) {
    if (e instanceof PolicyProblem) return { problems: [{ field: e.field, message: e.message }] };
    throw e;
  }
}
