// A real control plane for cluster-mode tests and benches: etcd from Debian and
// the kube-apiserver that scripts/install-kube.sh built, on loopback ports, with
// RBAC on and a static admin token. No controller-manager or scheduler runs.
// Plain JavaScript so that bench/ (.mjs, no TypeScript loader) can start one too;
// test/helpers/kube-apiserver.ts gives it its types.
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort } from './free-port.mjs';

const CACHE = process.env.SLUICE_CACHE ?? '/var/cache/sluice';
export const KUBE_BIN = join(CACHE, 'bin');
/** helm, built by scripts/install-kube.sh. */
export const HELM = join(KUBE_BIN, 'helm');
const ETCD = '/usr/bin/etcd';
/** Gateway API's standard-channel CRDs, as scripts/install-kube.sh fetched them. */
export const GATEWAY_API_CRDS = join(CACHE, 'gateway-api-v1.2.1');

function binaries() {
  const apiserver = join(KUBE_BIN, 'kube-apiserver');
  const kubectl = join(KUBE_BIN, 'kubectl');
  for (const [what, path] of [['kube-apiserver', apiserver], ['kubectl', kubectl], ['etcd', ETCD]])
    if (!existsSync(path)) throw new Error(`${what} is missing at ${path}: run scripts/install-kube.sh (scripts/test.sh does)`);
  return { apiserver, kubectl };
}

async function waitFor(what, proc, log, ready, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}):\n${log().slice(-3000)}`);
    if (await ready().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms:\n${log().slice(-3000)}`);
}

function stopProcess(p) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => p.kill('SIGKILL'), 10_000);
    p.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

/** A kubeconfig for one bearer token against the test API server (its certificate is self-signed, on loopback). */
export function writeKubeconfig(file, url, user, token) {
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user } }],
      'current-context': 'test',
    }),
  );
}

/**
 * Starts etcd and kube-apiserver; both are stopped and their data removed at teardown.
 * `opts.baseDir` holds their data (a bench puts it on tmpfs, where etcd's fsyncs cost nothing).
 */
export async function startKubeCluster(t, opts = {}) {
  const bin = binaries();
  const dir = mkdtempSync(join(opts.baseDir ?? tmpdir(), 'sluice-kube-'));
  const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const token = randomBytes(16).toString('hex');
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n`);
  const url = `https://127.0.0.1:${apiPort}`;
  const kubeconfig = join(dir, 'kubeconfig');
  writeKubeconfig(kubeconfig, url, 'admin', token);

  let etcdLog = '';
  const etcd = spawn(
    ETCD,
    [
      '--name', 'test', '--data-dir', join(dir, 'etcd'),
      '--listen-client-urls', `http://127.0.0.1:${etcdPort}`, '--advertise-client-urls', `http://127.0.0.1:${etcdPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', `test=http://127.0.0.1:${peerPort}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  etcd.stdout.on('data', (d) => (etcdLog = (etcdLog + d).slice(-20_000)));
  etcd.stderr.on('data', (d) => (etcdLog = (etcdLog + d).slice(-20_000)));

  let apiserver;
  let apiLog = '';
  // The API server's serving certificate is self-signed (--cert-dir), which
  // fetch() refuses; ask with node:https, not verifying it (loopback only).
  const healthy = (path) =>
    new Promise((resolve) => {
      const req = httpsGet(`${url}${path}`, { headers: { authorization: `Bearer ${token}` }, rejectUnauthorized: false, timeout: 5000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
    });
  const startApiserver = async () => {
    apiLog = '';
    apiserver = spawn(
      bin.apiserver,
      [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        '--bind-address=127.0.0.1', `--secure-port=${apiPort}`, '--advertise-address=127.0.0.1',
        `--cert-dir=${join(dir, 'certs')}`,
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        '--authorization-mode=RBAC',
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        '--service-cluster-ip-range=10.96.0.0/16',
        // Loopback cannot be a "kubernetes" Service endpoint; nothing here needs one.
        '--endpoint-reconciler-type=none',
        // No controller-manager makes each namespace's default ServiceAccount, so don't require it.
        '--disable-admission-plugins=ServiceAccount',
        '--enable-priority-and-fairness=false',
        // Debian's etcd (3.4.23) predates the progress-notify fixes that consistent reads
        // from the watch cache rely on (3.4.31): with the cache on, lists time out with
        // "Too large resource version". Without it, reads go straight to etcd.
        '--watch-cache=false',
        '--v=1',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    apiserver.stdout.on('data', (d) => (apiLog = (apiLog + d).slice(-50_000)));
    apiserver.stderr.on('data', (d) => (apiLog = (apiLog + d).slice(-50_000)));
    await waitFor('kube-apiserver', apiserver, () => apiLog, () => healthy('/readyz'), 90_000);
  };
  const stopApiserver = () => stopProcess(apiserver);

  // A test file that dies outright never reaches its teardown; leave no server behind.
  const killOnExit = () => {
    apiserver?.kill('SIGKILL');
    etcd.kill('SIGKILL');
  };
  const close = async () => {
    process.off('exit', killOnExit);
    await stopApiserver();
    await stopProcess(etcd);
    rmSync(dir, { recursive: true, force: true });
  };
  t.teardown(close);
  process.once('exit', killOnExit);
  try {
    await waitFor('etcd', etcd, () => etcdLog, async () => (await fetch(`http://127.0.0.1:${etcdPort}/health`)).ok);
    await startApiserver();
  } catch (e) {
    await close();
    throw e;
  }

  const kubectl = (args, opts = {}) => {
    const as = opts.as ? [`--as=${opts.as}`] : [];
    const r = spawnSync(bin.kubectl, [`--kubeconfig=${kubeconfig}`, ...as, ...args], { input: opts.input, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
  };
  const kubectlOk = (args, opts) => {
    const r = kubectl(args, opts);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  const apply = (objects) =>
    kubectlOk(['apply', '--server-side', '--force-conflicts', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
  return { url, kubeconfig, dir, kubectl, kubectlOk, apply, stopApiserver, startApiserver, close };
}
