// X.509-SVIDs issued per second, by library and key type, in one run: the CA
// (@peculiar/x509 over WebCrypto) with EC P-256 and RSA-2048, and node-forge
// (RSA only) issuing the same certificate shape. Each issuance makes a fresh
// leaf key pair, as the CA does for every SVID. Needs dist/ (npm run build).
//   node bench/svid-issuance.mjs [--seconds 5]
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { col, flags, machine, root } from './lib.mjs';

const opts = flags({ seconds: '5' });
const seconds = Number(opts.seconds);
if (!existsSync(join(root, 'dist/identity/ca.js'))) throw new Error('dist/ is not built; run npm run build');
const { SpiffeCa } = await import(join(root, 'dist/identity/ca.js'));

const TD = 'bench.example';
const ID = `spiffe://${TD}/ns/default/sa/web`;

/** Calls `issue` back to back for `seconds`; returns SVIDs per second and the last result. */
async function measure(issue) {
  let last = await issue(); // warm-up, and a sample to check
  const start = process.hrtime.bigint();
  const budget = BigInt(Math.round(seconds * 1e9));
  let n = 0;
  while (process.hrtime.bigint() - start < budget) {
    last = await issue();
    n++;
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  return { perSecond: n / elapsed, n, last };
}

async function peculiar(keyType) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-ca-'));
  try {
    const ca = await SpiffeCa.loadOrCreate({ trustDomain: TD, dir, keyType });
    const rootCert = new X509Certificate(ca.bundle().x509AuthoritiesPem[0]);
    const r = await measure(() => ca.issueX509Svid(ID, 3600));
    return { ...r, verifies: new X509Certificate(r.last.certChainPem[0]).verify(rootCert.publicKey) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** node-forge: an RSA root and leaves with the X.509-SVID extensions the CA sets. */
async function nodeForge() {
  const pki = forge.pki;
  const caKeys = pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
  const caCert = pki.createCertificate();
  caCert.publicKey = caKeys.publicKey;
  caCert.serialNumber = '01';
  caCert.validity.notBefore = new Date(Date.now() - 30_000);
  caCert.validity.notAfter = new Date(Date.now() + 365 * 86_400_000);
  const caName = [{ shortName: 'O', value: 'SPIFFE' }, { shortName: 'CN', value: `${TD} root` }];
  caCert.setSubject(caName);
  caCert.setIssuer(caName);
  caCert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectAltName', altNames: [{ type: 6, value: `spiffe://${TD}` }] },
    { name: 'subjectKeyIdentifier' },
  ]);
  caCert.sign(caKeys.privateKey, forge.md.sha256.create());
  const caSki = caCert.generateSubjectKeyIdentifier().getBytes();
  const issue = async () => {
    const keys = pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
    const cert = pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = forge.util.bytesToHex(forge.random.getBytesSync(16)).replace(/^[89a-f]/, '1');
    cert.validity.notBefore = new Date(Date.now() - 30_000);
    cert.validity.notAfter = new Date(Date.now() + 3600_000);
    cert.setSubject([{ shortName: 'O', value: 'SPIFFE' }]);
    cert.setIssuer(caName);
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 6, value: ID }] },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: caSki },
    ]);
    cert.sign(caKeys.privateKey, forge.md.sha256.create());
    const keyPem = pki.privateKeyInfoToPem(pki.wrapRsaPrivateKey(pki.privateKeyToAsn1(keys.privateKey)));
    return { certChainPem: [pki.certificateToPem(cert)], keyPem };
  };
  const r = await measure(issue);
  const rootCert = new X509Certificate(pki.certificateToPem(caCert));
  return { ...r, verifies: new X509Certificate(r.last.certChainPem[0]).verify(rootCert.publicKey) };
}

console.log(`X.509-SVID issuance, ${seconds} s per row, one at a time, fresh leaf key each (${machine()})`);
const rows = [
  { library: '@peculiar/x509', key: 'EC P-256', ...(await peculiar('ec-p256')) },
  { library: '@peculiar/x509', key: 'RSA-2048', ...(await peculiar('rsa-2048')) },
  { library: 'node-forge 1.4', key: 'RSA-2048', ...(await nodeForge()) },
];
const base = rows[0].perSecond;
console.log(`${'library'.padEnd(16)} ${'key'.padEnd(9)} ${'SVIDs/s'.padStart(9)} ${'ms/SVID'.padStart(8)} ${'issued'.padStart(7)} ${'vs EC P-256'.padStart(12)} verifies`);
for (const r of rows) {
  console.log(`${r.library.padEnd(16)} ${r.key.padEnd(9)} ${col(r.perSecond, 9, 1)} ${col(1000 / r.perSecond, 8, 2)} ${col(r.n, 7)} ${col(r.perSecond / base, 11, 3)}x ${r.verifies}`);
}
if (!rows.every((r) => r.verifies)) process.exitCode = 1;
