// The cluster source: one list+watch per kind the model reads, through
// @kubernetes/client-node. The watch caches are the state; every change (after
// a short debounce) becomes a whole new Model. When the API server goes away the
// caches keep serving, and each watch resumes from its last resourceVersion.
import { ADD, DELETE, ERROR, KubeConfig, KubernetesObjectApi, ListWatch, UPDATE, Watch, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { Model } from '../model/model.js';
import { API_VERSIONS, type Kind } from '../model/objects.js';
import type { TranslationIssue } from '../translate/output.js';
import { checkKubeObject } from './kube-objects.js';
import { KubeStatusWriter } from './kube-status.js';
import type { ModelSource, ModelUpdate, StatusReport } from './source.js';

interface Watched {
  kind: Kind;
  /** The collection's path across all namespaces. */
  path: string;
  /** Narrows the watch to what this node needs. */
  fieldSelector?: (node: string) => string;
}

export const WATCHED: readonly Watched[] = [
  { kind: 'Service', path: '/api/v1/services' },
  { kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices' },
  { kind: 'Pod', path: '/api/v1/pods', fieldSelector: (node) => `spec.nodeName=${node}` },
  { kind: 'Namespace', path: '/api/v1/namespaces' },
  { kind: 'ServiceAccount', path: '/api/v1/serviceaccounts' },
  { kind: 'Node', path: '/api/v1/nodes', fieldSelector: (node) => `metadata.name=${node}` },
  { kind: 'CiliumEnvoyConfig', path: '/apis/cilium.io/v2/ciliumenvoyconfigs' },
  { kind: 'CiliumClusterwideEnvoyConfig', path: '/apis/cilium.io/v2/ciliumclusterwideenvoyconfigs' },
  { kind: 'CiliumNetworkPolicy', path: '/apis/cilium.io/v2/ciliumnetworkpolicies' },
  { kind: 'CiliumClusterwideNetworkPolicy', path: '/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies' },
  { kind: 'HTTPRoute', path: '/apis/gateway.networking.k8s.io/v1/httproutes' },
  { kind: 'ReferenceGrant', path: '/apis/gateway.networking.k8s.io/v1beta1/referencegrants' },
];

export interface KubeApiSourceOptions {
  kubeConfig: KubeConfig;
  nodeName: string;
  log: Logger;
  /** Changes arriving within this window become one model. */
  debounceMs?: number;
  /** Longest wait between attempts to re-establish a failed list or watch. */
  maxBackoffMs?: number;
}

interface Informer {
  watched: Watched;
  lw: ListWatch<KubernetesObject>;
  synced: boolean;
  failures: number;
  retry?: NodeJS.Timeout;
  lastError?: string;
  /** Resolves once the kind is listed, or the API server has answered that it cannot be. */
  settle: () => void;
}

function describeError(e: unknown): string {
  const err = e as { code?: number | string; statusCode?: number; body?: unknown; message?: string };
  const status = err.statusCode ?? err.code;
  const body = typeof err.body === 'string' ? err.body : err.body ? JSON.stringify(err.body) : '';
  return `${status ? `${status} ` : ''}${err.message ?? String(e)}${body ? ` ${body.slice(0, 300)}` : ''}`;
}

/** Cluster state from the Kubernetes API: what `sluice agent --source kube` reads. */
export class KubeApiSource implements ModelSource {
  private readonly informers: Informer[] = [];
  private readonly status: KubeStatusWriter;
  private onChange: ((u: ModelUpdate) => void) | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: KubeApiSourceOptions) {
    this.status = new KubeStatusWriter(opts.kubeConfig, opts.nodeName, opts.log);
  }

  /** Every kind has been listed at least once. */
  get synced(): boolean {
    return this.informers.length > 0 && this.informers.every((i) => i.synced);
  }

  async start(onChange: (u: ModelUpdate) => void): Promise<void> {
    this.onChange = onChange;
    const { kubeConfig, nodeName } = this.opts;
    const objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    const settled: Promise<void>[] = [];
    for (const watched of WATCHED) {
      const apiVersion = API_VERSIONS[watched.kind][0];
      const fieldSelector = watched.fieldSelector?.(nodeName);
      const list = () => objects.list(apiVersion, watched.kind, undefined, undefined, undefined, undefined, fieldSelector);
      const lw = new ListWatch<KubernetesObject>(watched.path, new Watch(kubeConfig), list, false, undefined, fieldSelector);
      const inf: Informer = { watched, lw, synced: false, failures: 0, settle: () => {} };
      settled.push(new Promise<void>((r) => (inf.settle = r)));
      for (const verb of [ADD, UPDATE, DELETE] as const) lw.on(verb, () => this.changed(inf));
      lw.on(ERROR, (e) => this.failed(inf, e));
      this.informers.push(inf);
    }
    for (const inf of this.informers) void this.connect(inf);
    // Serving a model from caches that never filled would wipe the node's config, so wait
    // while the API server is unreachable; a kind it refuses (its CRD not installed, say)
    // must not hold up the rest.
    await Promise.all(settled);
    this.emit();
  }

  private async connect(inf: Informer): Promise<void> {
    if (this.stopped) return;
    let failed = false;
    const onError = () => (failed = true);
    inf.lw.on(ERROR, onError);
    try {
      await inf.lw.start();
    } catch (e) {
      failed = true;
      this.failed(inf, e);
    } finally {
      inf.lw.off(ERROR, onError);
    }
    if (failed) return;
    if (inf.failures > 0) this.opts.log.info({ kind: inf.watched.kind, after: inf.failures }, 'watch re-established');
    inf.failures = 0;
    inf.lastError = undefined;
    if (!inf.synced) {
      inf.synced = true;
      inf.settle();
      this.changed(inf);
    }
  }

  private failed(inf: Informer, e: unknown): void {
    if (this.stopped || inf.retry) return;
    inf.failures++;
    const message = describeError(e);
    const status = Number((e as { statusCode?: number; code?: unknown }).statusCode ?? (e as { code?: unknown }).code);
    if (status >= 400) inf.settle();
    // Say it once per distinct failure, not on every retry of an outage.
    if (message !== inf.lastError) {
      const hint = /\b404\b/.test(message) ? `; is the ${API_VERSIONS[inf.watched.kind][0]} ${inf.watched.kind} CRD installed?` : '';
      this.opts.log.warn({ kind: inf.watched.kind, path: inf.watched.path, error: message }, `list/watch of ${inf.watched.kind} failed; retrying${hint}`);
      inf.lastError = message;
    }
    const delay = Math.min(this.opts.maxBackoffMs ?? 30_000, 250 * 2 ** Math.min(inf.failures, 10));
    inf.retry = setTimeout(() => {
      inf.retry = undefined;
      void this.connect(inf);
    }, delay);
  }

  private changed(inf: Informer): void {
    if (!inf.synced || !this.onChange || this.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.emit(), this.opts.debounceMs ?? 50);
  }

  /** The current model, built from every watch cache. */
  read(): ModelUpdate {
    const objects = [];
    const issues: TranslationIssue[] = [];
    for (const { watched, lw } of this.informers) {
      const apiVersion = API_VERSIONS[watched.kind][0];
      for (const o of lw.list()) {
        // List responses leave kind and apiVersion off their items.
        const { managedFields: _, ...metadata } = o.metadata ?? {};
        const c = checkKubeObject({ ...o, apiVersion, kind: watched.kind, metadata }, {});
        if ('issue' in c) issues.push(c.issue);
        else if ('object' in c) objects.push(c);
      }
    }
    return { model: Model.from(objects), issues };
  }

  private emit(): void {
    clearTimeout(this.debounce);
    if (!this.stopped) this.onChange?.(this.read());
  }

  report(report: StatusReport): void {
    this.status.write(report);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.debounce);
    for (const inf of this.informers) {
      inf.settle();
      clearTimeout(inf.retry);
      await inf.lw.stop();
    }
    await this.status.stop();
  }
}

/** In-cluster config in a pod, else $KUBECONFIG or ~/.kube/config; or the file given. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file) kc.loadFromFile(file);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error(`no Kubernetes cluster configured${file ? ` in ${file}` : ''}: give --kubeconfig, set KUBECONFIG, or run in a pod`);
  return kc;
}
