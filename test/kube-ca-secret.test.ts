// The cluster's shared root in a kubernetes.io/tls Secret, against a real
// kube-apiserver: created once however many agents start together.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import t, { type Test } from 'tap';
import { SpiffeCa } from '../src/identity/ca.js';
import { loadOrCreateCaSecret } from '../src/identity/kube-ca-secret.js';
import { createRootPem } from '../src/identity/root.js';
import { startKubeCluster, type KubeCluster } from './helpers/kube-apiserver.js';
import { logLines } from './helpers/log-lines.js';

const cluster: KubeCluster = await startKubeCluster(t);
const NS = 'sluice-system';
cluster.kubectlOk(['create', 'namespace', NS]);

function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  return kc;
}

function secret(name: string): { type: string; data: Record<string, string> } {
  return JSON.parse(cluster.kubectlOk(['-n', NS, 'get', 'secret', name, '-o', 'json']));
}

t.test('four agents starting together create one root Secret and all use it', async (t) => {
  const { log, lines } = logLines('info');
  const cas = await Promise.all(
    Array.from({ length: 4 }, () => loadOrCreateCaSecret({ kubeConfig: kubeConfig(), namespace: NS, name: 'sluice-ca', trustDomain: 'cluster.local', log })),
  );
  t.equal(new Set(cas.map((c) => JSON.stringify(c.bundle()))).size, 1, 'one root and one JWT key among all four');
  t.equal(lines.filter((l) => /created the SPIFFE root CA Secret/.test(l)).length, 1, 'exactly one agent created it');
  t.comment(`${lines.filter((l) => /created the CA Secret first/.test(l)).length} agents lost the create race (409) and read the winner's`);
  const s = secret('sluice-ca');
  t.equal(s.type, 'kubernetes.io/tls');
  t.same(Object.keys(s.data).sort(), ['jwt.key', 'tls.crt', 'tls.key']);
  const pem = Buffer.from(s.data['tls.crt'], 'base64').toString();
  t.equal(pem, cas[0].bundle().x509AuthoritiesPem[0], 'the Secret holds the root they serve');
  t.ok(new X509Certificate(pem).ca);

  const later = await loadOrCreateCaSecret({ kubeConfig: kubeConfig(), namespace: NS, name: 'sluice-ca', trustDomain: 'cluster.local' });
  t.same(later.bundle(), cas[0].bundle(), 'an agent starting later reads the same');
  const svid = await cas[1].issueX509Svid('spiffe://cluster.local/ns/a/sa/b');
  t.ok(new X509Certificate(svid.certChainPem[0]).verify(new X509Certificate(later.bundle().x509AuthoritiesPem[0]).publicKey), "one node's SVID verifies with another's bundle");
});

t.test('a tls Secret made outside sluice gets one shared jwt.key', async (t) => {
  const root = await createRootPem('cluster.local');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-kca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'tls.crt'), root.certPem);
  writeFileSync(join(dir, 'tls.key'), root.keyPem, { mode: 0o600 });
  cluster.kubectlOk(['-n', NS, 'create', 'secret', 'tls', 'byo-ca', `--cert=${join(dir, 'tls.crt')}`, `--key=${join(dir, 'tls.key')}`]);
  const cas = await Promise.all(
    Array.from({ length: 3 }, () => loadOrCreateCaSecret({ kubeConfig: kubeConfig(), namespace: NS, name: 'byo-ca', trustDomain: 'cluster.local' })),
  );
  t.equal(new Set(cas.map((c) => JSON.stringify(c.bundle()))).size, 1, 'all three agree on the JWT key too');
  t.equal(cas[0].bundle().x509AuthoritiesPem[0].trim(), root.certPem.trim(), "the operator's root is used");
  const jwtKey = Buffer.from(secret('byo-ca').data['jwt.key'], 'base64').toString();
  const fromSecret = await SpiffeCa.fromPem(root.certPem, root.keyPem, 'cluster.local', { jwtKeyPem: jwtKey });
  t.same(fromSecret.bundle(), cas[0].bundle(), 'the jwt.key added to the Secret is the one in use');
});

t.test('a Secret for another trust domain is refused, not overwritten', async (t) => {
  await loadOrCreateCaSecret({ kubeConfig: kubeConfig(), namespace: NS, name: 'other-td', trustDomain: 'other.local' });
  const before = secret('other-td').data['tls.crt'];
  await t.rejects(loadOrCreateCaSecret({ kubeConfig: kubeConfig(), namespace: NS, name: 'other-td', trustDomain: 'cluster.local' }), {
    message: /trust domain "other.local" is not the configured "cluster.local"/,
  });
  t.equal(secret('other-td').data['tls.crt'], before, 'the Secret is unchanged');
});

t.test('API errors other than 404/409 surface with the Secret named', async (t) => {
  await t.rejects(loadOrCreateCaSecret({ kubeConfig: kubeConfig(), namespace: 'no-such-ns', name: 'sluice-ca', trustDomain: 'cluster.local' }), {
    message: /creating the CA Secret no-such-ns\/sluice-ca: 404/,
  });
});
