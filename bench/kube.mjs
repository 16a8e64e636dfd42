// Cluster-mode plumbing for the benches: kubectl as a child process, and bulk
// creation straight over HTTPS, since kubectl's one request after another
// would spend minutes on the tens of thousands of objects a scale run needs.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { KUBE_BIN } from '../test/helpers/kube-cluster.mjs';
import { root } from './lib.mjs';

export const toYaml = (docs) => docs.map((d) => stringify(d)).join('---\n');

/** kubectl as a child process (not spawnSync: the agent's log is the clock and must keep being read). */
export function kubectl(kubeconfig, args, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(join(KUBE_BIN, 'kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`kubectl ${args.join(' ')}: ${err}`))));
    p.stdin.end(input ?? '');
  });
}

/** Installs sluice's CRDs and makes namespace `ns`. */
export async function prepareCluster(cluster, ns) {
  await kubectl(cluster.kubeconfig, ['apply', '--server-side', '-f', join(root, 'crds')]);
  await kubectl(cluster.kubeconfig, ['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
  await kubectl(cluster.kubeconfig, ['create', 'namespace', ns]);
}

const COLLECTIONS = {
  Service: (ns) => `/api/v1/namespaces/${ns}/services`,
  EndpointSlice: (ns) => `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
  CiliumEnvoyConfig: (ns) => `/apis/cilium.io/v2/namespaces/${ns}/ciliumenvoyconfigs`,
};

/** Creates `objects` (in order per kind: Services before the rest), `concurrency` requests in flight. */
export async function createObjects(cluster, objects, concurrency = 16) {
  const kc = parse(readFileSync(cluster.kubeconfig, 'utf8'));
  const token = kc.users[0].user.token;
  // Loopback only; the API server's certificate is self-signed.
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency, rejectUnauthorized: false });
  const url = new URL(cluster.url);
  const post = (o) =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify(o);
      const req = request(
        { host: url.hostname, port: url.port, method: 'POST', path: COLLECTIONS[o.kind](o.metadata.namespace), agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => (res.statusCode < 300 ? resolve() : reject(new Error(`creating ${o.kind} ${o.metadata.name}: ${res.statusCode} ${text.slice(0, 300)}`))));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  try {
    for (const kind of ['Service', 'EndpointSlice', 'CiliumEnvoyConfig']) {
      const queue = objects.filter((o) => o.kind === kind);
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < queue.length) await post(queue[next++]);
        }),
      );
    }
  } finally {
    agent.destroy();
  }
}
