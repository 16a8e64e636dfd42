// Gateway API HTTPRoute (gateway.networking.k8s.io/v1, Gateway API v1.2) in
// mesh mode (GAMMA): routes whose parent is a Service. Every Service port with
// routes attached gets a node-local listener and one RouteConfiguration that
// merges its producer routes (those in the Service's namespace) in Gateway API
// precedence order, ending in a 404 for requests no rule matches. The
// Service's traffic is redirected there.
//
// A route in another namespace than its parent Service is a consumer route: it
// applies only to clients in its own namespace. Those clients are told apart
// by source address: each such namespace with pods on this node gets a filter
// chain matching its pods' IPs, and a RouteConfiguration where its consumer
// routes come before the producer routes.
import type { Model, Origin } from '../model/model.js';
import type { HTTPBackendRef, HTTPHeaderFilter, HTTPRoute, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule, Service, ServicePort } from '../model/objects.js';
import { describeObject } from '../model/objects.js';
import { anyFromJson } from '../proto/any.js';
import { fromProtoJson, ProtoJsonError } from '../proto/json.js';
import { backendClusterName, edsCluster, findServicePort, loadAssignment, readyBackends } from './backends.js';
import type { TranslateContext } from './context.js';
import { httpFilterChain, httpListener } from './envoy-json.js';
import type { TranslationIssue } from '../issues/issue.js';
import type { ObjectTranslation } from './output.js';
import { podPrefixesByNamespace } from './pod-addresses.js';
import { referenceGranted } from './reference-grant.js';

type Json = Record<string, any>;
const T = 'type.googleapis.com/';
const isCoreService = (group: string | undefined, kind: string | undefined) => (group ?? '') in { '': 1, core: 1 } && (kind ?? 'Service') === 'Service';

interface Backend {
  svc: Service;
  port: ServicePort;
  cluster: string;
}

/** One Envoy route, with what it takes to order it among routes of other HTTPRoutes. */
interface Entry {
  route: Json;
  key: (number | string)[];
  backends: Backend[];
}

interface Attachment {
  svc: Service;
  port: ServicePort;
  /** Routes in the Service's namespace: for every client. */
  producer: Entry[];
  /** Routes of other namespaces, by namespace: for that namespace's clients only. */
  consumers: Map<string, Entry[]>;
  /** The issue lists of the routes attached, so a problem of the listener reaches them. */
  routeIssues: { object: string; origin?: Origin; issues: TranslationIssue[] }[];
}

export function translateHttpRoutes(model: Model, ctx: TranslateContext): ObjectTranslation[] {
  const units: ObjectTranslation[] = [];
  const attached = new Map<string, Attachment>();
  for (const route of model.httpRoutes()) {
    const object = describeObject(route);
    const origin = model.originOf(route);
    const issues: TranslationIssue[] = [];
    const problem = (field: string, message: string) => issues.push({ object, origin, field, message });
    const parents = serviceParents(model, route, problem);
    if (parents.length) {
      const entries = routeEntries(model, route, problem);
      const routeNs = route.metadata.namespace ?? 'default';
      for (const { svc, port } of parents) {
        const key = `${svc.metadata.namespace}/${svc.metadata.name}:${port.port}`;
        const a: Attachment = attached.get(key) ?? { svc, port, producer: [], consumers: new Map(), routeIssues: [] };
        if (svc.metadata.namespace === routeNs) a.producer.push(...entries);
        else a.consumers.set(routeNs, [...(a.consumers.get(routeNs) ?? []), ...entries]);
        a.routeIssues.push({ object, origin, issues });
        attached.set(key, a);
      }
    }
    units.push({ object, resources: [], redirects: [], issues });
  }
  const clients = podPrefixesByNamespace(model, ctx.nodeName);
  for (const [key, a] of [...attached].sort(([x], [y]) => (x < y ? -1 : 1))) {
    const unit = serviceUnit(model, ctx, key, a, clients);
    if (unit) units.push(unit);
  }
  return units;
}

function serviceParents(model: Model, route: HTTPRoute, problem: (f: string, m: string) => void): { svc: Service; port: ServicePort }[] {
  const out: { svc: Service; port: ServicePort }[] = [];
  (route.spec.parentRefs ?? []).forEach((p, i) => {
    // Parents that are Gateways belong to a gateway implementation, not the mesh.
    if (!isCoreService(p.group, p.kind ?? 'Gateway')) return;
    const ns = p.namespace ?? route.metadata.namespace ?? 'default';
    const svc = model.service(ns, p.name);
    if (!svc) return problem(`spec.parentRefs[${i}]`, `Service ${ns}/${p.name} not found`);
    const ports = p.port === undefined ? (svc.spec.ports ?? []) : (svc.spec.ports ?? []).filter((sp) => sp.port === p.port);
    if (!ports.length) return problem(`spec.parentRefs[${i}].port`, `Service ${ns}/${p.name} has no port ${p.port ?? ''}`.trim());
    for (const port of ports) out.push({ svc, port });
  });
  return out;
}

function routeEntries(model: Model, route: HTTPRoute, problem: (f: string, m: string) => void): Entry[] {
  const entries: Entry[] = [];
  const age = route.metadata.creationTimestamp ?? '9999';
  const id = `${route.metadata.namespace}/${route.metadata.name}`;
  (route.spec.rules ?? []).forEach((rule, ri) => {
    const field = `spec.rules[${ri}]`;
    const backends = ruleBackends(model, route, rule, field, problem);
    const matches: HTTPRouteMatch[] = rule.matches?.length ? rule.matches : [{ path: { type: 'PathPrefix', value: '/' } }];
    matches.forEach((m, mi) => {
      const envoyRoute = { match: envoyMatch(m), ...ruleAction(rule, m, backends, `${field}`, problem) };
      try {
        fromProtoJson('envoy.config.route.v3.Route', envoyRoute, `${field}.matches[${mi}]`);
      } catch (e) {
        problem(e instanceof ProtoJsonError ? e.path : field, e instanceof ProtoJsonError ? e.detail : (e as Error).message);
        return;
      }
      entries.push({ route: envoyRoute, key: [...precedence(m), age, id, ri, mi], backends: backends.filter((b): b is Backend => 'svc' in b) });
    });
  });
  return entries;
}

/** Gateway API precedence: exact path, then longest prefix, then method, header count, query count. */
function precedence(m: HTTPRouteMatch): number[] {
  const type = m.path?.type ?? 'PathPrefix';
  const value = (m.path?.value ?? '/').replace(/\/+$/, '');
  // Regular expressions are implementation-specific: after exact paths, before any prefix that could shadow them.
  const rank = type === 'Exact' ? 0 : type === 'RegularExpression' ? 1 : 2;
  return [rank, type === 'PathPrefix' ? -value.length : 0, m.method ? 0 : 1, -(m.headers?.length ?? 0), -(m.queryParams?.length ?? 0)];
}

function compareKeys(a: (number | string)[], b: (number | string)[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return 0;
}

function stringMatch(type: string | undefined, value: string): Json {
  return type === 'RegularExpression' ? { safe_regex: { regex: value } } : { exact: value };
}

function envoyMatch(m: HTTPRouteMatch): Json {
  const out: Json = {};
  const value = m.path?.value ?? '/';
  switch (m.path?.type ?? 'PathPrefix') {
    case 'Exact':
      out.path = value;
      break;
    case 'RegularExpression':
      out.safe_regex = { regex: value };
      break;
    default: {
      // Gateway prefixes match whole path elements: /api matches /api and /api/x, not /apiary.
      const trimmed = value.replace(/\/+$/, '');
      if (trimmed === '') out.prefix = '/';
      else out.path_separated_prefix = trimmed;
    }
  }
  const headers = (m.headers ?? []).map((h) => ({ name: h.name.toLowerCase(), string_match: stringMatch(h.type, h.value) }));
  if (m.method) headers.push({ name: ':method', string_match: { exact: m.method } });
  if (headers.length) out.headers = headers;
  if (m.queryParams?.length) out.query_parameters = m.queryParams.map((q) => ({ name: q.name, string_match: stringMatch(q.type, q.value) }));
  return out;
}

type ResolvedRef = Backend | { invalid: string; weight: number } | { weightOnly: number };

function ruleBackends(model: Model, route: HTTPRoute, rule: HTTPRouteRule, field: string, problem: (f: string, m: string) => void): (ResolvedRef & { weight?: number })[] {
  return (rule.backendRefs ?? []).map((ref: HTTPBackendRef, bi) => {
    const where = `${field}.backendRefs[${bi}]`;
    const weight = ref.weight ?? 1;
    const ns = ref.namespace ?? route.metadata.namespace ?? 'default';
    // An invalid backend's share goes to a name nothing can define, so it fails (500)
    // rather than reaching a cluster someone else built under the real name.
    const invalid = (message: string) => {
      problem(where, message);
      return { invalid: `!invalid/${backendClusterName(ns, ref.name, ref.port)}`, weight };
    };
    if (ref.filters?.length) problem(`${where}.filters`, 'backendRef filters are not supported; ignored');
    const from = { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: route.metadata.namespace ?? 'default' };
    if (!referenceGranted(model, { from, to: { group: isCoreService(ref.group, ref.kind) ? '' : (ref.group ?? ''), kind: ref.kind ?? 'Service', namespace: ns, name: ref.name } }))
      return invalid(`no ReferenceGrant in namespace ${ns} lets HTTPRoutes of ${from.namespace} refer to ${ref.kind ?? 'Service'} ${ref.name}; requests to it get 500`);
    if (!isCoreService(ref.group, ref.kind)) return invalid(`${ref.group ?? ''}/${ref.kind} backends are not supported; only Services`);
    if (ref.port === undefined) return invalid('port is required for a Service backend');
    const svc = model.service(ns, ref.name);
    if (!svc) return invalid(`Service ${ns}/${ref.name} not found; requests to it get 500`);
    const port = findServicePort(svc, ref.port);
    if (!port) return invalid(`Service ${ns}/${ref.name} has no port ${ref.port}; requests to it get 500`);
    return { svc, port, cluster: backendClusterName(ns, ref.name, ref.port), weight };
  });
}

function headerEdits(f: HTTPHeaderFilter, prefix: 'request' | 'response'): Json {
  const add = [
    ...(f.set ?? []).map((h) => ({ header: { key: h.name, value: h.value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' })),
    ...(f.add ?? []).map((h) => ({ header: { key: h.name, value: h.value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' })),
  ];
  const out: Json = {};
  if (add.length) out[`${prefix}_headers_to_add`] = add;
  if (f.remove?.length) out[`${prefix}_headers_to_remove`] = f.remove;
  return out;
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function pathRewrite(path: NonNullable<HTTPRouteFilter['urlRewrite']>['path'], m: HTTPRouteMatch): Json | string {
  if (!path) return {};
  if (path.type === 'ReplaceFullPath') return { regex_rewrite: { pattern: { regex: '^/.*$' }, substitution: path.replaceFullPath ?? '/' } };
  if ((m.path?.type ?? 'PathPrefix') !== 'PathPrefix') return 'ReplacePrefixMatch needs a PathPrefix match';
  const prefix = (m.path?.value ?? '/').replace(/\/+$/, '');
  const replacement = path.replacePrefixMatch ?? '/';
  // Replacing with "/" must not leave "//rest"; a regex swallows the separator.
  if (replacement.replace(/\/+$/, '') === '') return { regex_rewrite: { pattern: { regex: `^${escapeRegex(prefix)}/*` }, substitution: '/' } };
  return { prefix_rewrite: replacement };
}

function ruleAction(rule: HTTPRouteRule, m: HTTPRouteMatch, backends: ResolvedRef[], field: string, problem: (f: string, m: string) => void): Json {
  const out: Json = {};
  const action: Json = { cluster_not_found_response_code: 'INTERNAL_SERVER_ERROR' };
  let redirect: Json | undefined;
  (rule.filters ?? []).forEach((f, fi) => {
    const where = `${field}.filters[${fi}]`;
    switch (f.type) {
      case 'RequestHeaderModifier':
        Object.assign(out, headerEdits(f.requestHeaderModifier ?? {}, 'request'));
        break;
      case 'ResponseHeaderModifier':
        Object.assign(out, headerEdits(f.responseHeaderModifier ?? {}, 'response'));
        break;
      case 'RequestRedirect': {
        const r = f.requestRedirect ?? {};
        redirect = { response_code: r.statusCode === 301 ? 'MOVED_PERMANENTLY' : 'FOUND' };
        if (r.scheme) redirect.scheme_redirect = r.scheme;
        if (r.hostname) redirect.host_redirect = r.hostname;
        if (r.port) redirect.port_redirect = r.port;
        if (r.path?.type === 'ReplaceFullPath') redirect.path_redirect = r.path.replaceFullPath ?? '/';
        else if (r.path?.type === 'ReplacePrefixMatch') redirect.prefix_rewrite = r.path.replacePrefixMatch ?? '/';
        break;
      }
      case 'URLRewrite': {
        if (f.urlRewrite?.hostname) action.host_rewrite_literal = f.urlRewrite.hostname;
        const rw = pathRewrite(f.urlRewrite?.path, m);
        if (typeof rw === 'string') problem(`${where}.urlRewrite.path`, rw);
        else Object.assign(action, rw);
        break;
      }
      default:
        problem(where, `filter type ${f.type} is not supported; the rule serves without it`);
    }
  });
  if (redirect) return { ...out, redirect };
  const weighted = backends.map((b) => ({ name: 'svc' in b ? b.cluster : 'invalid' in b ? b.invalid : '', weight: (b as { weight?: number }).weight ?? 1 })).filter((b) => b.weight > 0);
  if (!weighted.length) return { ...out, direct_response: { status: 500 } };
  if (weighted.length === 1) action.cluster = weighted[0].name;
  else action.weighted_clusters = { clusters: weighted };
  const timeout = rule.timeouts?.request;
  if (timeout) {
    const seconds = gatewayDurationSeconds(timeout);
    if (seconds === undefined) problem(`${field}.timeouts.request`, `"${timeout}" is not a Gateway API duration`);
    else action.timeout = `${seconds}s`;
  }
  return { ...out, route: action };
}

/** Gateway API durations: 1h, 30m, 10s, 500ms and combinations. */
function gatewayDurationSeconds(d: string): number | undefined {
  if (!/^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(d)) return undefined;
  const scale: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001 };
  let total = 0;
  for (const [, n, u] of d.matchAll(/(\d+)(ms|h|m|s)/g)) total += Number(n) * scale[u];
  return total;
}

const notFound = { match: { prefix: '/' }, direct_response: { status: 404 } };
const ordered = (entries: Entry[]) => [...entries].sort((x, y) => compareKeys(x.key, y.key)).map((e) => e.route);
const routeConfiguration = (name: string, routes: Json[]): Json => ({ '@type': `${T}envoy.config.route.v3.RouteConfiguration`, name, virtual_hosts: [{ name, domains: ['*'], routes }] });

function serviceUnit(model: Model, ctx: TranslateContext, key: string, a: Attachment, clients: Map<string, string[]>): ObjectTranslation | undefined {
  // One unit per Service port: two ports of one Service are independent listeners.
  const object = `Service ${key}`;
  const name = `gamma/${key}`;
  const service = key.slice(0, key.lastIndexOf(':'));
  const consumers = [...a.consumers].filter(([ns]) => clients.has(ns)).sort(([x], [y]) => (x < y ? -1 : 1));
  if (!a.producer.length && !consumers.length) return undefined;
  let proxyPort: number;
  try {
    proxyPort = ctx.proxyPort(name);
  } catch (e) {
    // No port for this Service port's listener: its routes say so, and other Services keep theirs.
    const message = (e as Error).message;
    for (const r of a.routeIssues) r.issues.push({ object: r.object, origin: r.origin, field: 'spec.parentRefs', message: `Service ${key}: ${message}` });
    return { object, resources: [], redirects: [], issues: [], rejected: true };
  }
  // Without producer routes, clients no consumer route applies to reach the Service as they would without the mesh.
  const self: Backend = { svc: a.svc, port: a.port, cluster: backendClusterName(a.svc.metadata.namespace ?? 'default', a.svc.metadata.name, a.port.port) };
  const producer = ordered(a.producer);
  const listener = httpListener(ctx, name, proxyPort, name) as Json;
  const docs: Json[] = [listener, routeConfiguration(name, a.producer.length ? [...producer, notFound] : [{ match: { prefix: '/' }, route: { cluster: self.cluster } }])];
  const backends = a.producer.length ? a.producer.flatMap((e) => e.backends) : [self];
  for (const [ns, entries] of consumers) {
    const rc = `${name}/consumer/${ns}`;
    listener.filter_chains.push(httpFilterChain(rc, rc, { source_prefix_ranges: clients.get(ns)!.map(prefixRange) }));
    docs.push(routeConfiguration(rc, [...ordered(entries), ...producer, notFound]));
    backends.push(...entries.flatMap((e) => e.backends));
  }
  const seen = new Set<string>();
  for (const b of backends) {
    if (seen.has(b.cluster)) continue;
    seen.add(b.cluster);
    docs.push(edsCluster(b.cluster, { lb_policy: 'ROUND_ROBIN' }), loadAssignment(b.cluster, readyBackends(model, b.svc, b.port)));
  }
  const out: ObjectTranslation = { object, resources: [], redirects: [{ service, port: a.port.port, listener: name, proxyPort }], issues: [] };
  for (const d of docs) {
    try {
      out.resources.push(anyFromJson(d, name));
    } catch (e) {
      out.issues.push({ object, field: 'HTTPRoute translation', message: (e as Error).message });
      out.rejected = true;
    }
  }
  return out;
}

function prefixRange(cidr: string): Json {
  const [address, len] = cidr.split('/');
  return { address_prefix: address, prefix_len: Number(len) };
}
