// The agent's identity as the Helm chart installs it: the chart's ServiceAccount,
// ClusterRole and binding, rendered by helm and applied to the test API server,
// and a kubeconfig holding a token minted for that ServiceAccount. An agent run
// with it gets exactly the access a cluster would give it.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { HELM, writeKubeconfig, type KubeCluster } from './kube-apiserver.js';

const CHART = new URL('../../chart', import.meta.url).pathname;
export const CHART_NAMESPACE = 'sluice-system';
const RELEASE = 'sluice';

export interface ChartIdentity {
  /** A kubeconfig authenticating as the chart's ServiceAccount. */
  kubeconfig: string;
  /** system:serviceaccount:NS:NAME, for `kubectl auth can-i --as`. */
  user: string;
  /** Applies the chart's ClusterRole without these resources (none: as rendered), once the authorizer agrees. */
  withhold(resources: string[]): Promise<void>;
}

function render(kubeVersion: string): any[] {
  const args = ['template', RELEASE, CHART, '--namespace', CHART_NAMESPACE, '--kube-version', kubeVersion, '--show-only', 'templates/serviceaccount.yaml', '--show-only', 'templates/rbac.yaml'];
  const r = spawnSync(HELM, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`helm template failed: ${r.stderr ?? r.error}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS())
    .filter(Boolean);
}

/** Installs the chart's ServiceAccount and RBAC and logs in as it. */
export async function chartIdentity(cluster: KubeCluster): Promise<ChartIdentity> {
  const objects = render(JSON.parse(cluster.kubectlOk(['version', '-o', 'json'])).serverVersion.gitVersion);
  const sa = objects.find((o) => o.kind === 'ServiceAccount');
  const clusterRole = objects.find((o) => o.kind === 'ClusterRole');
  if (!sa || !clusterRole || !objects.some((o) => o.kind === 'ClusterRoleBinding')) throw new Error('the chart rendered no ServiceAccount, ClusterRole or ClusterRoleBinding');
  if (cluster.kubectl(['get', 'namespace', CHART_NAMESPACE]).code !== 0) cluster.kubectlOk(['create', 'namespace', CHART_NAMESPACE]);
  cluster.apply(objects);
  const user = `system:serviceaccount:${CHART_NAMESPACE}:${sa.metadata.name}`;
  const token = cluster.kubectlOk(['create', 'token', sa.metadata.name, '-n', CHART_NAMESPACE, '--duration=2h']).trim();
  const kubeconfig = join(cluster.dir, `kubeconfig-${sa.metadata.name}`);
  writeKubeconfig(kubeconfig, cluster.url, sa.metadata.name, token);
  const rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] = clusterRole.rules;
  const groupOf = (res: string) => rules.find((r) => r.resources.includes(res))?.apiGroups[0] ?? '';
  const allowed = (res: string) => {
    const group = groupOf(res);
    return cluster.kubectl(['auth', 'can-i', 'list', group ? `${res}.${group}` : res, '-A'], { as: user }).stdout.trim() === 'yes';
  };
  let withheld: string[] = [];
  const withhold = async (resources: string[]) => {
    const kept = rules.map((r) => ({ ...r, resources: r.resources.filter((res) => !resources.includes(res)) })).filter((r) => r.resources.length);
    cluster.apply([{ ...clusterRole, rules: kept }]);
    // The authorizer follows RBAC objects through its own watch: wait until it agrees.
    const probes = [...new Set([...withheld, ...resources])];
    const deadline = Date.now() + 30_000;
    while (!probes.every((res) => allowed(res) !== resources.includes(res))) {
      if (Date.now() > deadline) throw new Error(`the API server did not take up the ClusterRole without [${resources.join(', ')}] within 30 s`);
      await new Promise((r) => setTimeout(r, 250));
    }
    withheld = resources;
  };
  return { kubeconfig, user, withhold };
}
