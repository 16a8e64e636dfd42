// Whether a DaemonSet is being uninstalled, as a pod's preStop hook must judge
// it: a pod restart, an eviction or a rolling update leaves the DaemonSet in
// place; `helm uninstall` deletes it (gone) or marks it (deletionTimestamp).
import { AppsV1Api, type KubeConfig } from '@kubernetes/client-node';

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
