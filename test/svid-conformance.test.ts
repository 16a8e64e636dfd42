// The X.509-SVID spec, rule by rule, on certificates the CA issues; the root
// it creates; SPIFFE IDs it must refuse; and its key files on disk.
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SpiffeCa } from '../src/identity/ca.js';
import { parseSpiffeId } from '../src/identity/spiffe-id.js';
import type { KeyType } from '../src/identity/types.js';
import { x509 } from '../src/identity/x509.js';
import { logLines } from './helpers/log-lines.js';

const TD = 'example.org';
const ID = 'spiffe://example.org/ns/default/sa/web';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A CA in a fresh dir, and that dir. */
async function newCa(t: Test, trustDomain = TD, keyType?: KeyType): Promise<{ ca: SpiffeCa; dir: string }> {
  const dir = tempDir(t);
  return { ca: await SpiffeCa.loadOrCreate({ trustDomain, dir, keyType }), dir };
}

async function checkSvid(t: Test, ca: SpiffeCa, keyType: 'ec-p256' | 'rsa-2048') {
  const before = Date.now();
  const svid = await ca.issueX509Svid(ID, 600);
  const after = Date.now();
  t.equal(svid.certChainPem.length, 1, 'the chain holds only the leaf (the root is in the bundle)');
  const leaf = new x509.X509Certificate(svid.certChainPem[0]);
  const node = new X509Certificate(svid.certChainPem[0]);
  const root = new X509Certificate(ca.bundle().x509AuthoritiesPem[0]);
  const rootP = new x509.X509Certificate(ca.bundle().x509AuthoritiesPem[0]);

  const san = leaf.getExtension(x509.SubjectAlternativeNameExtension);
  t.ok(san, 'has a SAN extension');
  t.same(san!.names.items.map((n) => n.toJSON()), [{ type: 'url', value: ID }], 'exactly one SAN, the URI SPIFFE ID');
  t.equal(node.subjectAltName, `URI:${ID}`, 'node:crypto reads the same single URI SAN');

  const ku = leaf.getExtension(x509.KeyUsagesExtension);
  t.ok(ku?.critical, 'keyUsage is critical');
  t.ok(ku!.usages & x509.KeyUsageFlags.digitalSignature, 'keyUsage has digitalSignature');
  t.notOk(ku!.usages & x509.KeyUsageFlags.keyCertSign, 'no keyCertSign');
  t.notOk(ku!.usages & x509.KeyUsageFlags.cRLSign, 'no cRLSign');
  const allowed = x509.KeyUsageFlags.digitalSignature | (keyType === 'rsa-2048' ? x509.KeyUsageFlags.keyEncipherment : 0);
  t.equal(ku!.usages & ~allowed, 0, 'no key usage beyond digitalSignature (and keyEncipherment for RSA)');

  const bc = leaf.getExtension(x509.BasicConstraintsExtension);
  t.ok(bc?.critical, 'basicConstraints is critical');
  t.equal(bc!.ca, false, 'cA is false');
  t.equal(node.ca, false);

  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  t.same([...eku!.usages].sort(), [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth].sort(), 'EKU serverAuth and clientAuth');

  t.ok(leaf.notBefore.getTime() <= before, 'notBefore is in the past');
  t.ok(leaf.notBefore.getTime() >= before - 31_000, 'notBefore at most 30 s back (clock skew)');
  t.ok(Math.abs(leaf.notAfter.getTime() - (before + 600_000)) <= 1000 + (after - before), 'notAfter is now + ttl');
  t.same([svid.notBefore, svid.notAfter], [leaf.notBefore, leaf.notAfter], 'the SVID reports the certificate validity');

  t.match(svid.serial, /^[0-7][0-9a-f]{31}$/, 'serial: 16 bytes, positive, lowercase hex');
  t.equal(svid.serial, node.serialNumber.toLowerCase());

  const ski = rootP.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
  t.equal(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, ski, "AKI is the root's SKI");
  t.ok(leaf.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId, 'has an SKI');

  t.ok(node.checkIssued(root), 'issued by the root');
  t.ok(node.verify(root.publicKey), 'signature verifies against the root');
  t.ok(await leaf.verify({ publicKey: rootP.publicKey, date: new Date() }), '@peculiar/x509 verifies it and its validity now');
  t.ok(node.checkPrivateKey(createPrivateKey(svid.keyPem)), 'the key matches the certificate');
  const key = createPrivateKey(svid.keyPem);
  t.equal(key.asymmetricKeyType, keyType === 'ec-p256' ? 'ec' : 'rsa');
  if (keyType === 'rsa-2048') t.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
  else t.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.match(svid.keyPem, /^-----BEGIN PRIVATE KEY-----\n/, 'PKCS#8 PEM');

  const again = await ca.issueX509Svid(ID, 600);
  t.not(again.serial, svid.serial, 'each SVID has its own serial');
  t.not(again.keyPem, svid.keyPem, 'and its own key');
}

t.test('EC P-256 SVIDs follow the X.509-SVID spec', async (t) => {
  await checkSvid(t, (await newCa(t)).ca, 'ec-p256');
});

t.test('RSA-2048 SVIDs follow the X.509-SVID spec', async (t) => {
  await checkSvid(t, (await newCa(t, TD, 'rsa-2048')).ca, 'rsa-2048');
});

t.test('the root: a self-signed CA for spiffe://<td>, one year', async (t) => {
  const before = Date.now();
  const { ca, dir } = await newCa(t);
  const root = new x509.X509Certificate(ca.bundle().x509AuthoritiesPem[0]);
  t.ok(await root.isSelfSigned());
  const bc = root.getExtension(x509.BasicConstraintsExtension);
  t.ok(bc?.critical && bc.ca, 'cA true, critical');
  const ku = root.getExtension(x509.KeyUsagesExtension);
  t.ok(ku?.critical, 'keyUsage critical');
  t.equal(ku!.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, 'keyCertSign and cRLSign');
  t.same(root.getExtension(x509.SubjectAlternativeNameExtension)!.names.items.map((n) => n.toJSON()), [{ type: 'url', value: `spiffe://${TD}` }]);
  const days = (root.notAfter.getTime() - before) / 86_400_000;
  t.ok(days > 364.9 && days <= 365.01, `valid for a year (${days.toFixed(3)} days)`);
  t.equal(createPrivateKey(readFileSync(join(dir, 'ca.key'))).asymmetricKeyType, 'ec');

  const capped = await ca.issueX509Svid(ID, 2 * 365 * 86_400);
  t.same(capped.notAfter, root.notAfter, "an SVID's notAfter is capped at the root's");
});

t.test('SPIFFE IDs outside the spec or the trust domain are refused', async (t) => {
  const { ca } = await newCa(t);
  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['http://example.org/ns/a', /scheme/],
    ['SPIFFE://example.org/ns/a', /scheme/],
    ['spiffe:/example.org/ns/a', /scheme/],
    ['spiffe://', /trust domain is empty/],
    ['spiffe:///ns/a', /trust domain is empty/],
    ['spiffe://Example.org/ns/a', /lowercase/],
    ['spiffe://exa$mple.org/ns/a', /trust domain may hold/],
    ['spiffe://example.org:8443/ns/a', /port/],
    ['spiffe://user@example.org/ns/a', /userinfo/],
    ['spiffe://user:pw@example.org/ns/a', /userinfo/],
    ['spiffe://example.org/ns/a?x=1', /query/],
    ['spiffe://example.org/ns/a#frag', /fragment/],
    ['spiffe://example.org/ns//a', /empty segment/],
    ['spiffe://example.org/ns/a/', /trailing/],
    ['spiffe://example.org/./ns/a', /"\."/],
    ['spiffe://example.org/ns/../a', /"\.\."/],
    ['spiffe://example.org/ns/a%20b', /path segments may hold/],
    ['spiffe://example.org/ns/a b', /path segments may hold/],
    ['spiffe://example.org/ns/ä', /path segments may hold/],
    [`spiffe://example.org/${'a'.repeat(2040)}`, /2048/],
    [`spiffe://${'a'.repeat(256)}/ns/a`, /255/],
    ['spiffe://other.org/ns/default/sa/web', /not this CA's/],
    ['spiffe://example.org', /needs a path/],
  ];
  for (const [id, why] of bad) {
    await t.rejects(ca.issueX509Svid(id), { name: 'SpiffeIdError', message: why }, `X.509-SVID refused for ${JSON.stringify(id.slice(0, 60))}`);
    await t.rejects(ca.issueJwtSvid(id, ['aud']), { message: /invalid SPIFFE ID/ }, 'and a JWT-SVID too');
  }
  for (const id of ['spiffe://example.org/ns/default/sa/default', 'spiffe://example.org/A.b-c_d/E9', 'spiffe://example.org/ns/a/sa/..b']) {
    const svid = await ca.issueX509Svid(id);
    t.equal(new X509Certificate(svid.certChainPem[0]).subjectAltName, `URI:${id}`, `accepted: ${id}`);
  }
  t.same(parseSpiffeId('spiffe://a-b_c.d/x'), { trustDomain: 'a-b_c.d', path: '/x' });
});

t.test('a root that is not a CA, or of another trust domain, or with a foreign key is refused', async (t) => {
  const { ca: good, dir } = await newCa(t);
  const { dir: otherDir } = await newCa(t, 'other.org');
  const rootPem = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const keyPem = readFileSync(join(dir, 'ca.key'), 'utf8');
  await t.resolves(SpiffeCa.fromPem(rootPem, keyPem, TD));
  await t.rejects(SpiffeCa.fromPem(readFileSync(join(otherDir, 'ca.crt'), 'utf8'), readFileSync(join(otherDir, 'ca.key'), 'utf8'), TD), {
    message: /trust domain "other.org" is not the configured "example.org"/,
  });
  const leaf = await good.issueX509Svid(ID);
  await t.rejects(SpiffeCa.fromPem(leaf.certChainPem[0], leaf.keyPem, TD), { message: /not a CA/ });
  await t.rejects(SpiffeCa.fromPem(rootPem, readFileSync(join(otherDir, 'ca.key'), 'utf8'), TD), { message: /does not match/ });
  await t.rejects(SpiffeCa.fromPem('not a cert', keyPem, TD), { message: /not a readable PEM certificate/ });
  const err = await SpiffeCa.fromPem(rootPem, 'garbage', TD).catch((e: Error) => e);
  t.match(String(err), /CA key: not a readable PEM private key/);
});

t.test('key files: mode 0600, reloaded unchanged, key material never logged', async (t) => {
  const dir = tempDir(t);
  const { log, lines } = logLines();
  const ca = await SpiffeCa.loadOrCreate({ trustDomain: TD, dir, log });
  for (const f of ['ca.key', 'jwt.key']) t.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is 0600`);
  t.same(readdirSync(dir).sort(), ['ca.crt', 'ca.key', 'jwt.key'], 'no staging files left behind');
  await ca.issueX509Svid(ID);
  const again = await SpiffeCa.loadOrCreate({ trustDomain: TD, dir, log });
  t.same(again.bundle(), ca.bundle(), 'a restart reads the same root and JWT key');
  t.ok(lines.some((l) => /created a new SPIFFE root CA/.test(l)), 'creation is logged');
  const keyBody = readFileSync(join(dir, 'ca.key'), 'utf8').split('\n')[1];
  const logs = lines.join('');
  t.notMatch(logs, /PRIVATE KEY/, 'no PEM key in the logs');
  t.notOk(logs.includes(keyBody), 'no key bytes in the logs');
});

t.test('a mounted kubernetes.io/tls Secret (tls.crt, SEC1 tls.key) is used as the root', async (t) => {
  const { ca: src, dir: from } = await newCa(t);
  const mount = tempDir(t);
  writeFileSync(join(mount, 'tls.crt'), readFileSync(join(from, 'ca.crt')));
  const sec1 = createPrivateKey(readFileSync(join(from, 'ca.key'))).export({ type: 'sec1', format: 'pem' });
  writeFileSync(join(mount, 'tls.key'), sec1, { mode: 0o600 });
  writeFileSync(join(mount, 'jwt.key'), readFileSync(join(from, 'jwt.key')), { mode: 0o600 });
  const ca = await SpiffeCa.loadOrCreate({ trustDomain: TD, dir: mount });
  t.same(ca.bundle(), src.bundle(), 'same root and JWT key');
  t.notOk(readdirSync(mount).includes('ca.key'), 'no second root created beside the mounted one');
});

t.test('agents racing on an empty shared dir end up with one root', async (t) => {
  for (let round = 0; round < 3; round++) {
    const dir = tempDir(t);
    const { log, lines } = logLines('info');
    const cas = await Promise.all(Array.from({ length: 5 }, () => SpiffeCa.loadOrCreate({ trustDomain: TD, dir, log })));
    t.equal(lines.filter((l) => /created a new SPIFFE root CA/.test(l)).length, 1, 'exactly one of them published a root');
    const roots = new Set(cas.map((c) => c.bundle().x509AuthoritiesPem[0]));
    const jwtKids = new Set(cas.map((c) => JSON.stringify(c.bundle().jwks)));
    t.equal(roots.size, 1, `round ${round}: all five share one root`);
    t.equal(jwtKids.size, 1, `round ${round}: and one JWT key`);
    t.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), [...roots][0], 'the one on disk');
    t.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
    t.same(readdirSync(dir).sort(), ['ca.crt', 'ca.key', 'jwt.key'], 'losers leave no files behind');
    // An SVID from any of them verifies against any other's bundle.
    const svid = await cas[4].issueX509Svid(ID);
    t.ok(new X509Certificate(svid.certChainPem[0]).verify(new X509Certificate(cas[0].bundle().x509AuthoritiesPem[0]).publicKey));
  }
});

t.test('agent processes racing on an empty shared dir end up with one root', async (t) => {
  const dir = tempDir(t);
  // The test's own loader flags, so the children run the TypeScript sources too.
  const child = () =>
    new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [...process.execArgv, join(import.meta.dirname, 'helpers/ca-dir-child.ts'), dir], (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      );
    });
  const bundles = await Promise.all([child(), child(), child()]);
  t.equal(new Set(bundles).size, 1, 'three processes, one root and one JWT key');
  t.equal(JSON.parse(bundles[0]).x509AuthoritiesPem[0], readFileSync(join(dir, 'ca.crt'), 'utf8'), 'the one on disk');
  t.same(readdirSync(dir).sort(), ['ca.crt', 'ca.key', 'jwt.key']);
});
