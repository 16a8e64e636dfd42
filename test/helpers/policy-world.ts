// Pods and policies for the pure policy tests, as users write them in YAML.
import { Model } from '../../src/model/model.js';
import type { ModelObject } from '../../src/model/objects.js';
import { computePolicy, identityAllocators, type PolicyContext, type PolicyResult } from '../../src/policy/index.js';

export function pod(name: string, ip: string, labels: Record<string, string>, opts: { namespace?: string; node?: string; sa?: string } = {}): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: opts.namespace ?? 'default', labels },
    spec: { nodeName: opts.node ?? 'node-a', ...(opts.sa ? { serviceAccountName: opts.sa } : {}) },
    status: { podIP: ip, podIPs: [{ ip }] },
  };
}

export function namespace(name: string, labels: Record<string, string> = {}): object {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } } };
}

export function cnp(name: string, spec: object, namespace = 'default'): object {
  return { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name, namespace }, spec };
}

export function ccnp(name: string, spec: object): object {
  return { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name }, spec };
}

export function knp(name: string, spec: object, namespace = 'default'): object {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec };
}

export const model = (objects: object[]) => Model.from(objects.map((object, index) => ({ object: object as ModelObject, origin: { file: 'policy.yaml', index } })));

export function compute(objects: object[], ctx: Partial<PolicyContext> = {}): PolicyResult {
  return computePolicy(model(objects), { nodeName: 'node-a', ...identityAllocators(), ...ctx });
}

/** The Star Wars demo's pods (Cilium's getting-started world). */
export const demoPods = [
  pod('xwing', '10.0.1.10', { org: 'alliance', class: 'xwing' }),
  pod('tiefighter', '10.0.1.11', { org: 'empire', class: 'tiefighter' }),
  pod('deathstar', '10.0.1.12', { org: 'empire', class: 'deathstar' }),
];

export const rule1 = cnp('rule1', {
  endpointSelector: { matchLabels: { org: 'empire', class: 'deathstar' } },
  ingress: [{ fromEndpoints: [{ matchLabels: { org: 'empire' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
});

export const rule1L7 = cnp('rule1', {
  endpointSelector: { matchLabels: { org: 'empire', class: 'deathstar' } },
  ingress: [
    {
      fromEndpoints: [{ matchLabels: { org: 'empire' } }],
      toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'POST', path: '/v1/request-landing' }] } }],
    },
  ],
});

/** A seeded xorshift generator: random tests that run the same every time. rand(n) is in [0, n). */
export function seeded(seed: number): (n: number) => number {
  let s = seed | 0 || 1;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}
