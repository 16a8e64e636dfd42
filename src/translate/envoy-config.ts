// CiliumEnvoyConfig and CiliumClusterwideEnvoyConfig (cilium.io/v2) for one node.
import type { Model } from '../model/model.js';
import type { CiliumClusterwideEnvoyConfig, CiliumEnvoyConfig, Service } from '../model/objects.js';
import { describeObject } from '../model/objects.js';
import { anyFromJson, anyToJson, type Any } from '../proto/any.js';
import { ProtoJsonError } from '../proto/json.js';
import { isServedType, SERVED_TYPES, TypeUrl } from '../resources/types.js';
import { backendClusterName, loadAssignment, readyBackends } from './backends.js';
import type { TranslateContext } from './context.js';
import { proxyListenerAddress } from './envoy-json.js';
import type { TranslationMemo } from './memo.js';
import { selects } from './node-selector.js';
import type { ObjectTranslation } from './output.js';
import { listenerAddressProblems, takenPorts } from './listener-ports.js';
import { qualifier, qualify, qualifyResource } from './qualify.js';

type EnvoyConfig = CiliumEnvoyConfig | CiliumClusterwideEnvoyConfig;

export function translateEnvoyConfigs(model: Model, ctx: TranslateContext, memo?: TranslationMemo): ObjectTranslation[] {
  const node = model.node(ctx.nodeName);
  const nodeLabels = node?.metadata.labels ?? {};
  const taken = takenPorts(model, ctx);
  // Compared by value, so a NodePort appearing or going re-translates configs.
  const takenKey = [...taken.keys()].sort((a, b) => a - b).join(',');
  return [...model.envoyConfigs(), ...model.clusterwideEnvoyConfigs()].map((cec) => {
    const translate = () => translateEnvoyConfig(model, ctx, cec, nodeLabels, taken);
    return memo ? memo.get(describeObject(cec), [...inputsOf(model, cec, node), takenKey], translate) : translate();
  });
}

/** Everything a config's translation reads: itself, the node, and the Services it names with their slices. */
function inputsOf(model: Model, cec: EnvoyConfig, node: unknown): unknown[] {
  const inputs: unknown[] = [cec, node, model.originOf(cec)];
  const defaultNs = cec.metadata.namespace ?? 'default';
  for (const s of [...(cec.spec.services ?? []), ...(cec.spec.backendServices ?? [])]) {
    const ns = s.namespace ?? defaultNs;
    inputs.push(model.service(ns, s.name), ...model.endpointSlices(ns, s.name));
  }
  return inputs;
}

export function translateEnvoyConfig(model: Model, ctx: TranslateContext, cec: EnvoyConfig, nodeLabels: Record<string, string>, taken: ReadonlyMap<number, string>): ObjectTranslation {
  const object = describeObject(cec);
  const origin = model.originOf(cec);
  const out: ObjectTranslation = { object, resources: [], redirects: [], issues: [] };
  const problem = (field: string, message: string, rejects = true) => {
    out.issues.push({ object, origin, field, message });
    if (rejects) out.rejected = true;
  };
  if (!selects(cec.spec.nodeSelector, nodeLabels)) return out;

  const ns = cec.metadata.namespace;
  const q = qualifier(ns, cec.metadata.name);
  const allocated: string[] = [];
  const listenerPorts = new Map<string, number>();
  const seen = new Set<string>();

  (cec.spec.resources ?? []).forEach((raw, i) => {
    const field = `spec.resources[${i}]`;
    try {
      const json = anyToJson(anyFromJson(raw, field));
      const type = json['@type'] as string;
      if (!isServedType(type)) {
        problem(`${field}.@type`, `"${type}" cannot be served; want one of ${SERVED_TYPES.join(', ')}`);
        return;
      }
      qualifyResource(q, json, field);
      if (type === TypeUrl.Listener) {
        for (const p of listenerAddressProblems(json, ctx, taken, ns !== undefined)) problem(`${field}.${p.field}`, p.message);
        assignListenerAddress(ctx, json, listenerPorts, allocated);
      }
      const name = (type === TypeUrl.ClusterLoadAssignment ? json.clusterName : json.name) as string;
      if (seen.has(`${type}/${name}`)) {
        problem(`${field}.name`, `a second ${type.split('.').pop()} named "${name}" in this config`);
        return;
      }
      seen.add(`${type}/${name}`);
      out.resources.push(anyFromJson(json, field));
    } catch (e) {
      if (e instanceof ProtoJsonError) problem(e.path, e.detail);
      else problem(field, (e as Error).message);
    }
  });

  for (const r of q.refused) problem(r.field, r.message);
  out.authored = out.resources.length;
  if (allocated.length) out.allocated = allocated;
  out.clusterScoped = ns === undefined;

  const defaultNs = ns ?? 'default';
  // A tenant's config steers and reads only its own namespace's Services.
  const foreign = (s: { namespace?: string }, field: string) => {
    if (ns === undefined || s.namespace === undefined || s.namespace === ns) return false;
    problem(`${field}.namespace`, `Service namespace ${s.namespace} is not this config's (${ns}); only a CiliumClusterwideEnvoyConfig may name other namespaces`);
    return true;
  };
  const backends = new Map<string, { svc: Service; ports?: string[] }>();
  (cec.spec.services ?? []).forEach((s, i) => {
    const field = `spec.services[${i}]`;
    if (foreign(s, field)) return;
    const svcNs = s.namespace ?? defaultNs;
    const listener = s.listener ? qualify(q, s.listener) : [...listenerPorts.keys()][0];
    const proxyPort = listener === undefined ? undefined : listenerPorts.get(listener);
    if (listener === undefined || proxyPort === undefined) {
      problem(`${field}.listener`, s.listener ? `no listener "${s.listener}" in this config` : 'this config has no listener to redirect to');
      return;
    }
    const svc = model.service(svcNs, s.name);
    if (!svc) problem(field, `Service ${svcNs}/${s.name} not found; its traffic is redirected once it exists`, false);
    else backends.set(`${svcNs}/${s.name}`, { svc });
    const ports = s.ports?.length ? s.ports : [undefined];
    for (const port of ports) out.redirects.push({ service: `${svcNs}/${s.name}`, port, listener, proxyPort });
  });
  (cec.spec.backendServices ?? []).forEach((s, i) => {
    if (foreign(s, `spec.backendServices[${i}]`)) return;
    const svcNs = s.namespace ?? defaultNs;
    const svc = model.service(svcNs, s.name);
    if (!svc) problem(`spec.backendServices[${i}]`, `Service ${svcNs}/${s.name} not found; its endpoints stay empty until it exists`, false);
    else backends.set(`${svcNs}/${s.name}`, { svc, ports: s.number });
  });
  for (const { svc, ports } of backends.values()) out.resources.push(...serviceLoadAssignments(model, svc, ports));
  return out;
}

/** A listener with no address listens on the node proxy addresses, at a stable proxy port. */
function assignListenerAddress(ctx: TranslateContext, json: Record<string, any>, ports: Map<string, number>, allocated: string[]): void {
  if (!json.address && !json.internalListener) {
    Object.assign(json, proxyListenerAddress(ctx, ctx.proxyPort(json.name)));
    allocated.push(json.name);
  }
  const port = json.address?.socketAddress?.portValue;
  if (typeof port === 'number') ports.set(json.name, port);
}

/** "ns/svc" with the backends of every port, and "ns/svc:port" for each (selected) port. */
export function serviceLoadAssignments(model: Model, svc: Service, onlyPorts?: string[]): Any[] {
  const ns = svc.metadata.namespace ?? 'default';
  const ports = (svc.spec.ports ?? []).filter((p) => !onlyPorts?.length || onlyPorts.includes(String(p.port)) || (p.name !== undefined && onlyPorts.includes(p.name)));
  const all = [];
  const out: Any[] = [];
  for (const p of ports) {
    const backends = readyBackends(model, svc, p);
    all.push(...backends);
    out.push(anyFromJson(loadAssignment(backendClusterName(ns, svc.metadata.name, p.port), backends)));
  }
  out.unshift(anyFromJson(loadAssignment(backendClusterName(ns, svc.metadata.name), all)));
  return out;
}
