// The cluster source: one list+watch per kind the model reads, through
// @kubernetes/client-node. The watch caches are the state; every change (after
// a short debounce) becomes a whole new Model. When the API server goes away the
// caches keep serving, and each watch resumes from its last resourceVersion.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { ADD, DELETE, ERROR, KubeConfig, ListWatch, UPDATE, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { ModelDeriver } from './model-deriver.js';
import { API_VERSIONS, type Kind } from '../model/objects.js';
import type { TranslationIssue } from '../issues/issue.js';
import { checkKubeObject, type Checked } from './kube-objects.js';
import type { ModelSource, ModelUpdate } from './source.js';

interface Watched {
  kind: Kind;
  /** The collection's path across all namespaces. */
  path: string;
}

export const WATCHED: readonly Watched[] = [
  { kind: 'Service', path: '/api/v1/services' },
  { kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices' },
  // Every node's pods: policy gives each an identity, so a peer elsewhere is not "world". Consumers that mean this node's pods filter by spec.nodeName.
  { kind: 'Pod', path: '/api/v1/pods' },
  { kind: 'Namespace', path: '/api/v1/namespaces' },
  { kind: 'ServiceAccount', path: '/api/v1/serviceaccounts' },
  // Every node: policy tells other nodes' addresses (remote-node) from the world's.
  { kind: 'Node', path: '/api/v1/nodes' },
  { kind: 'CiliumEnvoyConfig', path: '/apis/cilium.io/v2/ciliumenvoyconfigs' },
  { kind: 'CiliumClusterwideEnvoyConfig', path: '/apis/cilium.io/v2/ciliumclusterwideenvoyconfigs' },
  { kind: 'CiliumNetworkPolicy', path: '/apis/cilium.io/v2/ciliumnetworkpolicies' },
  { kind: 'CiliumClusterwideNetworkPolicy', path: '/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies' },
  { kind: 'NetworkPolicy', path: '/apis/networking.k8s.io/v1/networkpolicies' },
  { kind: 'HTTPRoute', path: '/apis/gateway.networking.k8s.io/v1/httproutes' },
  { kind: 'ReferenceGrant', path: '/apis/gateway.networking.k8s.io/v1beta1/referencegrants' },
];

export interface KubeApiSourceOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** Changes arriving within this window become one model. */
  debounceMs?: number;
  /** Longest wait between attempts to re-establish a failed list or watch. */
  maxBackoffMs?: number;
}

interface Informer {
  watched: Watched;
  /**
   * Each cached object's check, by uid (or ns/name), while its resourceVersion
   * stays: an unchanged object stays the same ModelObject, so translation memos
   * keyed on identity hit, and a relist after a watch gap costs no re-check.
   */
  checked: Map<string, { version: string | KubernetesObject; checked: Checked }>;
  lw: ListWatch<KubernetesObject>;
  /** What the last read made of this kind's cache; stale once an event changed the cache. */
  read?: { objects: Extract<Checked, { object: unknown }>[]; issues: TranslationIssue[] };
  synced: boolean;
  /** Listed, or known not to be served: start() need not wait for it. */
  settled: boolean;
  failures: number;
  retry?: NodeJS.Timeout;
  lastError?: string;
  /** Resolves once the kind is listed, or the API server has answered that it does not serve it. */
  settle: () => void;
}

/** The HTTP status of a failed list (ApiException.code) or watch (statusCode); NaN without one. */
function statusOf(e: unknown): number {
  const err = e as { statusCode?: unknown; code?: unknown };
  return Number(err.statusCode ?? err.code);
}

/**
 * The API server says it does not serve this kind at all (a CRD not installed):
 * the one failure that may count as an empty collection. Forbidden, throttled or
 * unavailable says nothing about what exists, and reading it as "none" would
 * withdraw every such object from the node.
 */
export function notServed(e: unknown): boolean {
  if (statusOf(e) === 404) return true;
  // Discovery found the group and version, but no such kind in it.
  return /^Unrecognized API version and kind/.test(String((e as { message?: unknown }).message ?? ''));
}

/** What an operator can do about a refusal: fix the credentials (401) or grant the kind (403). */
function refusalHint(status: number, path: string): string {
  if (status === 401) return "; the API server does not accept the agent's credentials (an expired or revoked token?)";
  if (status !== 403) return '';
  const parts = path.split('/');
  const group = parts[1] === 'apis' ? parts[2] : '""';
  return `; the agent's ServiceAccount needs list and watch on ${parts[parts.length - 1]} (apiGroup ${group})`;
}

/** One line: the status and the API server's own reason (a Status object's message) when it gave one. */
function describeError(e: unknown): string {
  const err = e as { body?: unknown; message?: string };
  const status = statusOf(e);
  let body = err.body;
  if (typeof body === 'string')
    try {
      body = JSON.parse(body);
    } catch {
      /* not a Status object */
    }
  const reason = (body as { message?: unknown } | undefined)?.message;
  // ApiException's own message spans lines and carries the response headers.
  const text = typeof reason === 'string' ? reason : (err.message ?? String(e)).split('\n')[0];
  return `${status ? `${status} ` : ''}${text}`.slice(0, 300);
}

/**
 * One list of a collection, as the API server's JSON. The client's typed lists
 * (KubernetesObjectApi.list) walk every field of every item through a
 * deserializer that, at 25,000 objects, costs as much CPU as parsing the body,
 * and turn timestamps into Dates the watch events (plain JSON) never carry.
 */
async function listJson(kc: KubeConfig, path: string): Promise<KubernetesListObject<KubernetesObject>> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('no Kubernetes cluster configured');
  const url = new URL(server + path);
  const opts: RequestOptions = { method: 'GET', headers: { accept: 'application/json' } };
  // Credentials (tokens, client certificates, exec plugins), CA and proxy, as the watches get them.
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'http:' ? httpRequest : httpsRequest)(url, opts, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON: reported as text */
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300 && typeof body === 'object' && body !== null) resolve(body as KubernetesListObject<KubernetesObject>);
        else reject(Object.assign(new Error(`list ${path}: ${status} ${res.statusMessage ?? ''}`.trim()), { statusCode: status, body }));
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Cluster state from the Kubernetes API: what `sluice agent --source kube` reads. */
export class KubeApiSource implements ModelSource {
  private readonly informers: Informer[] = [];
  private onChange: ((u: ModelUpdate) => void) | undefined;
  private debounce: NodeJS.Timeout | undefined;
  /** Each emit's model derives from the last by the objects that changed, so unchanged ones keep their translations. */
  private readonly deriver = new ModelDeriver();
  private stopped = false;
  /** Every kind has settled: from here on a change is a new model. Before, a model would be missing whole kinds. */
  private delivering = false;

  constructor(private readonly opts: KubeApiSourceOptions) {}

  /** Every kind has been listed at least once. */
  get synced(): boolean {
    return this.informers.length > 0 && this.informers.every((i) => i.synced);
  }

  async start(onChange: (u: ModelUpdate) => void): Promise<void> {
    this.onChange = onChange;
    const { kubeConfig } = this.opts;
    const settled: Promise<void>[] = [];
    for (const watched of WATCHED) {
      const list = () => listJson(kubeConfig, watched.path);
      const lw = new ListWatch<KubernetesObject>(watched.path, new Watch(kubeConfig), list, false);
      const inf: Informer = { watched, lw, checked: new Map(), synced: false, settled: false, failures: 0, settle: () => {} };
      settled.push(
        new Promise<void>((r) => {
          inf.settle = () => {
            inf.settled = true;
            r();
          };
        }),
      );
      for (const verb of [ADD, UPDATE, DELETE] as const)
        lw.on(verb, () => {
          inf.read = undefined;
          this.changed(inf);
        });
      lw.on(ERROR, (e) => this.failed(inf, e));
      this.informers.push(inf);
    }
    for (const inf of this.informers) void this.connect(inf);
    // Serving a model from caches that never filled would wipe the node's config, so wait
    // while the API server is unreachable or refuses a kind; only a kind it does not
    // serve (its CRD not installed) may count as empty and not hold up the rest.
    await Promise.all(settled);
    this.delivering = true;
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
    const absent = notServed(e);
    if (absent && !inf.settled) inf.settle();
    // Say it once per distinct failure, not on every retry of an outage.
    if (message !== inf.lastError) {
      const { kind, path } = inf.watched;
      const hint = refusalHint(statusOf(e), path);
      const meanwhile = inf.synced
        ? `the ${inf.lw.list().length} cached ${kind} objects keep serving until it recovers${hint}`
        : absent
          ? `counted as none for now; is the ${API_VERSIONS[kind][0]} ${kind} CRD installed?`
          : inf.settled
            ? `still counted as none (it was not served before) until it is listed${hint}`
            : `not ready, and nothing published or removed, until it is listed${hint}`;
      this.opts.log.warn({ kind, path, error: message }, `list/watch of ${kind} failed; ${meanwhile}; retrying`);
      inf.lastError = message;
    }
    const delay = Math.min(this.opts.maxBackoffMs ?? 30_000, 250 * 2 ** Math.min(inf.failures, 10));
    inf.retry = setTimeout(() => {
      inf.retry = undefined;
      void this.connect(inf);
    }, delay);
  }

  private changed(inf: Informer): void {
    if (!inf.synced || !this.delivering || this.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.emit(), this.opts.debounceMs ?? 50);
  }

  /** The kinds start() still waits for, each with the API server's last answer. */
  pending(): string[] {
    return this.informers.filter((i) => !i.settled).map((i) => `${i.watched.kind}${i.lastError ? ` (${i.lastError})` : ''}`);
  }

  /** The current model, built from every watch cache; only kinds an event changed are walked again. */
  read(): ModelUpdate {
    const objects = [];
    const issues: TranslationIssue[] = [];
    for (const inf of this.informers) {
      inf.read ??= this.readKind(inf);
      // A loop, not push(...): a kind may hold more objects than a call takes arguments.
      for (const o of inf.read.objects) objects.push(o);
      for (const i of inf.read.issues) issues.push(i);
    }
    return { model: this.deriver.next(objects), issues };
  }

  private readKind(inf: Informer): NonNullable<Informer['read']> {
    const out: NonNullable<Informer['read']> = { objects: [], issues: [] };
    const next: Informer['checked'] = new Map();
    for (const o of inf.lw.list()) {
      const c = this.check(inf, o, next);
      if ('issue' in c) out.issues.push(c.issue);
      else if ('object' in c) out.objects.push(c);
    }
    // Objects gone from the cache leave the memo with it.
    inf.checked = next;
    return out;
  }

  private check(inf: Informer, o: KubernetesObject, next: Informer['checked']): Checked {
    const m = o.metadata ?? {};
    const key = m.uid ?? `${m.namespace ?? ''}/${m.name ?? ''}`;
    // Without a resourceVersion only the very same cached object counts as unchanged.
    const version = m.resourceVersion ?? o;
    const hit = inf.checked.get(key);
    if (hit && hit.version === version) {
      next.set(key, hit);
      return hit.checked;
    }
    // List responses leave kind and apiVersion off their items.
    const { managedFields: _, ...metadata } = m;
    const checked = checkKubeObject({ ...o, apiVersion: API_VERSIONS[inf.watched.kind][0], kind: inf.watched.kind, metadata }, {});
    next.set(key, { version, checked });
    return checked;
  }

  private emit(): void {
    clearTimeout(this.debounce);
    if (!this.stopped) this.onChange?.(this.read());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.debounce);
    for (const inf of this.informers) {
      inf.settle();
      clearTimeout(inf.retry);
      await inf.lw.stop();
    }
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
