// A real control plane for cluster-mode tests: the launcher is kube-cluster.mjs
// (plain JavaScript, so the benches share it); this gives it its types.
import * as cluster from './kube-cluster.mjs';

export const KUBE_BIN: string = cluster.KUBE_BIN;
/** helm, built by scripts/install-kube.sh. */
export const HELM: string = cluster.HELM;
/** Gateway API's standard-channel CRDs, as scripts/install-kube.sh fetched them. */
export const GATEWAY_API_CRDS: string = cluster.GATEWAY_API_CRDS;

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface KubeCluster {
  url: string;
  /** A kubeconfig file for the admin (system:masters) user. */
  kubeconfig: string;
  dir: string;
  kubectl(args: string[], opts?: { input?: string; as?: string }): KubectlResult;
  /** Like kubectl, but throws with kubectl's stderr on failure. */
  kubectlOk(args: string[], opts?: { input?: string; as?: string }): string;
  /** Applies objects (server-side) and returns kubectl's output. */
  apply(objects: object[]): string;
  stopApiserver(): Promise<void>;
  startApiserver(): Promise<void>;
  close(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A kubeconfig for one bearer token against the test API server (its certificate is self-signed, on loopback). */
export const writeKubeconfig: (file: string, url: string, user: string, token: string) => void = cluster.writeKubeconfig;

/** Starts etcd and kube-apiserver; both are stopped and their data removed at teardown. */
export const startKubeCluster: (t: Teardown, opts?: { baseDir?: string }) => Promise<KubeCluster> = cluster.startKubeCluster;
