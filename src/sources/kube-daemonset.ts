// Whether a DaemonSet is being uninstalled, as a pod's preStop hook must judge
// it: a pod restart, an eviction or a rolling update leaves the DaemonSet in
// place; `helm uninstall` deletes it (gone) or marks it (deletionTimestamp).
import { AppsV1Api, Watch, type KubeConfig } from '@kubernetes/client-node';

export type DaemonSetState = 'present' | 'deleting' | 'gone';

/** Asks the API server; throws on anything but an answer (an error, a refusal, no reply within timeoutMs). */
export async function daemonSetState(kc: KubeConfig, namespace: string, name: string, timeoutMs = 10_000): Promise<DaemonSetState> {
  const api = kc.makeApiClient(AppsV1Api);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the API server within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    const ds = await Promise.race([api.readNamespacedDaemonSet({ name, namespace }), timeout]);
    return ds.metadata?.deletionTimestamp ? 'deleting' : 'present';
  } catch (e) {
    const { code, body } = e as { code?: number; body?: unknown };
    if (code === 404) return 'gone';
    throw new Error(`cannot read daemonset ${namespace}/${name}: ${code ? `HTTP ${code}: ${statusMessage(body)}` : (e as Error).message.split('\n')[0]}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Watches the DaemonSet and calls onGone once it is deleted or being deleted.
 * The preStop hook cannot always ask for itself: `helm uninstall` deletes the
 * Role and ServiceAccount it would ask with right after the DaemonSet, before
 * the pods stop. A watch opened while they existed still gets the event.
 * Returns a function that stops watching.
 */
export function watchDaemonSet(kc: KubeConfig, namespace: string, name: string, onGone: () => void, onError: (e: Error) => void): () => void {
  let stopped = false;
  let gone = false;
  let abort: AbortController | undefined;
  let retry: NodeJS.Timeout | undefined;
  const seen = () => {
    if (!gone) onGone();
    gone = true;
  };
  const start = async () => {
    if (stopped || gone) return;
    try {
      // A deletion while no watch was open shows only in a fresh read.
      if ((await daemonSetState(kc, namespace, name)) !== 'present') return seen();
      abort = await new Watch(kc).watch(
        `/apis/apps/v1/namespaces/${namespace}/daemonsets`,
        { fieldSelector: `metadata.name=${name}` },
        (type, obj) => {
          if (type === 'DELETED' || obj?.metadata?.deletionTimestamp) seen();
        },
        (err) => {
          if (err && !stopped) onError(err instanceof Error ? err : new Error(String(err)));
          again();
        },
      );
    } catch (e) {
      onError(e as Error);
      again();
    }
  };
  const again = () => {
    if (!stopped && !gone) retry = setTimeout(() => void start(), 2000);
  };
  void start();
  return () => {
    stopped = true;
    clearTimeout(retry);
    abort?.abort();
  };
}

/** The message of a Status the API server answered with, or the body's first line. */
function statusMessage(body: unknown): string {
  try {
    const status = typeof body === 'string' ? JSON.parse(body) : body;
    if (typeof status?.message === 'string') return status.message;
  } catch {
    /* not JSON */
  }
  return String(body ?? '').split('\n')[0];
}
