// A stand-in identity source for Workload API tests, built from the openssl
// CLI (an EC P-256 root and SPIFFE leaf certificates) and jose (ES256
// JWT-SVIDs): independent of our own CA, so a CA bug cannot hide a server bug.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import type { WorkloadIdentitySource } from '../../src/identity/workload-api.js';
import type { JwtSvid, TrustBundle, X509Svid } from '../../src/identity/types.js';

export interface FixtureSource extends WorkloadIdentitySource {
  /** Issues a fresh SVID for this identity and reports the change. */
  rotate(spiffeId: string): X509Svid;
  /** A new bundle sequence (as when a signing key is added), reported as a bundle change. */
  bumpBundle(): void;
  wanted: Set<string>;
}

export async function fixtureSource(t: { teardown(fn: () => unknown): void }, trustDomain: string, ids: string[]): Promise<FixtureSource> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-spiffe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1',
    '-subj', `/O=sluice test/CN=${trustDomain}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', `subjectAltName=URI:spiffe://${trustDomain}`);
  const caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');

  let n = 0;
  const issue = (spiffeId: string): X509Svid => {
    const base = `leaf${++n}`;
    // The X.509-SVID profile: one URI SAN, digitalSignature only, not a CA.
    writeFileSync(join(dir, `${base}.ext`), [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=URI:${spiffeId}`,
    ].join('\n'));
    ossl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', '/O=sluice test');
    const serial = randomBytes(16);
    serial[0] &= 0x7f;
    serial[0] |= 0x10; // positive, and no leading zero byte to normalise away
    ossl('x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${serial.toString('hex')}`, '-days', '1',
      '-extfile', `${base}.ext`, '-out', `${base}.pem`);
    const now = Date.now();
    return {
      spiffeId,
      certChainPem: [readFileSync(join(dir, `${base}.pem`), 'utf8')],
      keyPem: readFileSync(join(dir, `${base}.key`), 'utf8'),
      notBefore: new Date(now),
      notAfter: new Date(now + 86400_000),
      serial: serial.toString('hex'),
    };
  };

  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const kid = randomBytes(8).toString('hex');
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, use: 'jwt-svid' }] as Record<string, unknown>[] };
  let bundle: TrustBundle = { trustDomain, x509AuthoritiesPem: [caPem], jwks, sequence: 1 };
  const svids = new Map(ids.map((id) => [id, issue(id)]));
  const listeners = new Set<(c: string[] | 'bundle') => void>();
  // jose matches only keys with no `use` or use "sig"; the SPIFFE bundle says "jwt-svid".
  const localJwks = createLocalJWKSet({ keys: jwks.keys.map(({ use: _use, ...k }) => k) } as never);

  const wanted = new Set<string>();
  return {
    wanted,
    x509Svid: (id) => svids.get(id),
    bundle: () => bundle,
    async issueJwtSvid(spiffeId, audience): Promise<JwtSvid> {
      const expiry = new Date(Date.now() + 300_000);
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .setSubject(spiffeId)
        .setAudience(audience)
        .setIssuedAt()
        .setExpirationTime(Math.floor(expiry.getTime() / 1000))
        .sign(privateKey);
      return { spiffeId, token, audience, expiry };
    },
    async validateJwtSvid(token, audience) {
      const { payload } = await jwtVerify(token, localJwks, { audience, algorithms: ['ES256'] });
      if (!payload.sub?.startsWith(`spiffe://${trustDomain}/`)) throw new Error(`subject ${payload.sub} is not of ${trustDomain}`);
      return { spiffeId: payload.sub, claims: payload as Record<string, unknown> };
    },
    onChange(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    want(ids) {
      for (const id of ids) wanted.add(id);
    },
    rotate(spiffeId) {
      const svid = issue(spiffeId);
      svids.set(spiffeId, svid);
      for (const l of listeners) l([spiffeId]);
      return svid;
    },
    bumpBundle() {
      bundle = { ...bundle, sequence: bundle.sequence + 1 };
      for (const l of listeners) l('bundle');
    },
  };
}
