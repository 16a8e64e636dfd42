// Identity labels as Cilium writes them: "source:key=value", where the source
// says who vouches for the label (k8s for Kubernetes objects, reserved for the
// agent's own identities, cidr for addresses outside the cluster).
import type { Namespace, Pod } from '../model/objects.js';

export interface Label {
  source: string;
  key: string;
  value: string;
}

export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
export const SERVICEACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount';
export const CLUSTER_LABEL = 'io.cilium.k8s.policy.cluster';

const SOURCES = new Set(['k8s', 'any', 'reserved', 'cidr', 'container', 'unspec', 'fqdn', 'cilium-generated']);

/** Splits "k8s:app" into source and key; a key without a known source is from `fallback`. */
export function parseLabelKey(text: string, fallback: string): { source: string; key: string } {
  const i = text.indexOf(':');
  if (i > 0 && SOURCES.has(text.slice(0, i))) return { source: text.slice(0, i), key: text.slice(i + 1) };
  return { source: fallback, key: text };
}

/**
 * Pod labels that differ per rollout or per pod. Cilium leaves them out of
 * identities by default; kept in, every pod would get an identity of its own.
 */
const VOLATILE = new Set([
  'pod-template-hash',
  'controller-revision-hash',
  'pod-template-generation',
  'statefulset.kubernetes.io/pod-name',
  'controller-uid',
  'job-name',
  'batch.kubernetes.io/controller-uid',
  'batch.kubernetes.io/job-name',
  'apps.kubernetes.io/pod-index',
]);

/** A pod's identity labels: its own, its namespace and that namespace's labels, its service account and cluster. */
export function podIdentityLabels(pod: Pod, namespace: Namespace | undefined, cluster: string): Label[] {
  const ns = pod.metadata.namespace ?? 'default';
  const labels: Label[] = [];
  for (const [key, value] of Object.entries(pod.metadata.labels ?? {})) if (!VOLATILE.has(key)) labels.push({ source: 'k8s', key, value });
  labels.push({ source: 'k8s', key: NAMESPACE_LABEL, value: ns });
  // The namespace's name as a label even when the Namespace object is not (yet) known, as the API server sets it.
  const nsLabels = { 'kubernetes.io/metadata.name': ns, ...(namespace?.metadata.labels ?? {}) };
  for (const [key, value] of Object.entries(nsLabels)) labels.push({ source: 'k8s', key: NAMESPACE_LABELS_PREFIX + key, value });
  labels.push({ source: 'k8s', key: SERVICEACCOUNT_LABEL, value: pod.spec?.serviceAccountName || 'default' });
  labels.push({ source: 'k8s', key: CLUSTER_LABEL, value: cluster });
  return sortLabels(labels);
}

export function sortLabels(labels: Label[]): Label[] {
  return labels.sort((a, b) => (a.source + ':' + a.key < b.source + ':' + b.key ? -1 : a.source + ':' + a.key > b.source + ':' + b.key ? 1 : 0));
}

/** The label set as one string: the key identities are allocated by. */
export function labelsKey(labels: Label[]): string {
  return labels.map((l) => `${l.source}:${l.key}=${l.value}`).join(';');
}
