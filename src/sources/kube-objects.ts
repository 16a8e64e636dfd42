// Turns a parsed YAML document into a model object, or says precisely why not.
import type { Origin } from '../model/model.js';
import { API_VERSIONS, CLUSTER_SCOPED, type Kind, type ModelObject } from '../model/objects.js';
import type { TranslationIssue } from '../issues/issue.js';

export type Checked = { object: ModelObject; origin: Origin } | { issue: TranslationIssue } | { ignored: string };

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const isObject = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);

const ENVOY_CONFIG_SPEC_FIELDS = new Set(['services', 'backendServices', 'resources', 'nodeSelector']);

/** Shape checks the CRD schemas would make, so standalone mode rejects what a cluster would. */
function specProblem(kind: Kind, o: Record<string, any>): [string, string] | undefined {
  const spec = o.spec;
  switch (kind) {
    case 'CiliumEnvoyConfig':
    case 'CiliumClusterwideEnvoyConfig': {
      if (!isObject(spec)) return ['spec', 'want an object'];
      for (const k of Object.keys(spec)) if (!ENVOY_CONFIG_SPEC_FIELDS.has(k)) return [`spec.${k}`, `unknown field "${k}"`];
      // As the CRD (and Cilium's) requires: a config without resources is a mistake, not a no-op.
      if (spec.resources === undefined) return ['spec.resources', 'required'];
      for (const list of ['resources', 'services', 'backendServices'] as const) {
        if (spec[list] === undefined) continue;
        if (!Array.isArray(spec[list])) return [`spec.${list}`, 'want a list'];
        for (const [i, item] of spec[list].entries()) {
          if (!isObject(item)) return [`spec.${list}[${i}]`, 'want an object'];
          if (list !== 'resources' && typeof item.name !== 'string') return [`spec.${list}[${i}].name`, 'want a Service name'];
          if (list === 'services' && item.ports !== undefined && (!Array.isArray(item.ports) || !item.ports.every((p: unknown) => Number.isInteger(p))))
            return [`spec.${list}[${i}].ports`, 'want a list of port numbers'];
          if (list === 'backendServices' && item.ports !== undefined) return [`spec.${list}[${i}].ports`, 'unknown field "ports"; the port filter of a backend Service is "number"'];
          if (list === 'backendServices' && item.number !== undefined && (!Array.isArray(item.number) || !item.number.every((p: unknown) => typeof p === 'string')))
            return [`spec.${list}[${i}].number`, 'want a list of port numbers or names, as strings'];
        }
      }
      if (spec.nodeSelector !== undefined && !isObject(spec.nodeSelector)) return ['spec.nodeSelector', 'want a label selector'];
      return undefined;
    }
    case 'HTTPRoute':
      if (!isObject(spec)) return ['spec', 'want an object'];
      for (const list of ['parentRefs', 'rules', 'hostnames'] as const)
        if (spec[list] !== undefined && !Array.isArray(spec[list])) return [`spec.${list}`, 'want a list'];
      return undefined;
    case 'ReferenceGrant':
      if (!isObject(spec)) return ['spec', 'want an object'];
      for (const list of ['from', 'to'] as const) {
        if (!Array.isArray(spec[list]) || spec[list].length === 0) return [`spec.${list}`, 'want a non-empty list'];
        for (const [i, item] of spec[list].entries()) {
          if (!isObject(item)) return [`spec.${list}[${i}]`, 'want an object'];
          const fields = list === 'from' ? ['group', 'kind', 'namespace'] : ['group', 'kind'];
          for (const f of fields) if (typeof item[f] !== 'string') return [`spec.${list}[${i}].${f}`, 'want a string'];
        }
      }
      return undefined;
    case 'Pod':
      if (o.status?.podIPs !== undefined && (!Array.isArray(o.status.podIPs) || !o.status.podIPs.every((p: unknown) => isObject(p) && typeof p.ip === 'string')))
        return ['status.podIPs', 'want a list of {ip}'];
      return undefined;
    case 'Service':
      if (!isObject(spec)) return ['spec', 'want an object'];
      if (spec.ports !== undefined && !Array.isArray(spec.ports)) return ['spec.ports', 'want a list'];
      for (const [i, p] of (spec.ports ?? []).entries())
        if (!isObject(p) || !Number.isInteger(p.port) || p.port < 1 || p.port > 65535) return [`spec.ports[${i}].port`, 'want a port number 1-65535'];
      return undefined;
    case 'EndpointSlice':
      if (!['IPv4', 'IPv6', 'FQDN'].includes(o.addressType)) return ['addressType', 'want IPv4, IPv6 or FQDN'];
      if (o.endpoints !== undefined && !Array.isArray(o.endpoints)) return ['endpoints', 'want a list'];
      for (const [i, e] of (o.endpoints ?? []).entries())
        if (!isObject(e) || !Array.isArray(e.addresses)) return [`endpoints[${i}].addresses`, 'want a list of addresses'];
      return undefined;
    default:
      return undefined;
  }
}

export function checkKubeObject(value: unknown, origin: Origin): Checked {
  const where = `${origin.file ?? '?'}[${origin.index ?? 0}]`;
  const issue = (object: string, field: string, message: string): Checked => ({ issue: { object, origin, field, message } });
  if (!isObject(value)) return issue(where, '', 'want a Kubernetes object');
  const { apiVersion, kind, metadata } = value;
  if (typeof kind !== 'string' || typeof apiVersion !== 'string') return issue(where, typeof kind !== 'string' ? 'kind' : 'apiVersion', 'missing');
  const versions = API_VERSIONS[kind as Kind];
  if (!versions) return { ignored: `${apiVersion}/${kind}` };
  const name = metadata?.name;
  const label = `${kind} ${typeof metadata?.namespace === 'string' ? `${metadata.namespace}/` : ''}${typeof name === 'string' ? name : '?'}`;
  if (!versions.includes(apiVersion)) return issue(label, 'apiVersion', `"${apiVersion}" is not supported for ${kind}; want ${versions.join(' or ')}`);
  if (!isObject(metadata) || typeof name !== 'string' || !DNS_SUBDOMAIN.test(name)) return issue(label, 'metadata.name', 'want a DNS subdomain name');
  const namespaced = !CLUSTER_SCOPED.has(kind as Kind);
  const meta = { ...metadata, namespace: namespaced ? (metadata.namespace ?? 'default') : undefined };
  const object = { ...value, metadata: meta } as ModelObject;
  const problem = specProblem(kind as Kind, value);
  if (problem) return issue(`${kind} ${namespaced ? `${meta.namespace}/` : ''}${name}`, problem[0], problem[1]);
  return { object, origin };
}
