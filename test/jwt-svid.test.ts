// JWT-SVIDs: verified with jose against the published JWKS bundle, as any
// relying party would, and by the CA's own validator.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import t, { type Test } from 'tap';
import { SpiffeCa } from '../src/identity/ca.js';
import { jwtVerificationJwks } from '../src/identity/jwt-svid.js';

const ID = 'spiffe://example.org/ns/shop/sa/web';

async function newCa(t: Test, trustDomain = 'example.org', now?: () => Date): Promise<{ ca: SpiffeCa; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-jwt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return { ca: await SpiffeCa.loadOrCreate({ trustDomain, dir, now }), dir };
}

const joseKeys = (ca: SpiffeCa) => createLocalJWKSet(jwtVerificationJwks(ca.bundle().jwks));

t.test('the JWT JWKS, and the SPIFFE bundle document', async (t) => {
  const { ca } = await newCa(t);
  const jwt = ca.bundle().jwks.keys;
  t.equal(jwt.length, 1, 'the JWKS holds the one JWT authority');
  t.equal(jwt[0].use, 'jwt-svid');
  t.match(jwt[0], { kty: 'EC', crv: 'P-256', kid: /^[A-Za-z0-9_-]{43}$/ }, 'EC P-256 with a thumbprint kid');
  const spiffe = ca.bundle().spiffeBundle!;
  t.equal(spiffe.spiffe_sequence, ca.bundle().sequence);
  t.same(spiffe.keys.filter((k) => k.use === 'jwt-svid'), jwt, 'the SPIFFE bundle holds the same JWT authority');
  const x5 = spiffe.keys.filter((k) => k.use === 'x509-svid');
  t.equal(x5.length, 1, 'and one X.509 authority');
  t.equal(spiffe.keys.length, 2);
  const root = new X509Certificate(Buffer.from((x5[0].x5c as string[])[0], 'base64'));
  t.equal(root.toString(), new X509Certificate(ca.bundle().x509AuthoritiesPem[0]).toString(), 'its x5c is the root');
  t.notOk(spiffe.keys.some((k) => 'd' in k), 'no private key parts');
});

t.test('a JWT-SVID validates against the JWKS bundle', async (t) => {
  const { ca } = await newCa(t);
  const before = Math.floor(Date.now() / 1000);
  const svid = await ca.issueJwtSvid(ID, ['https://api.example.org', 'other'], 120);
  const header = decodeProtectedHeader(svid.token);
  t.same(header, { alg: 'ES256', kid: ca.bundle().jwks.keys.find((k) => k.use === 'jwt-svid')!.kid, typ: 'JWT' });
  const { payload } = await jwtVerify(svid.token, joseKeys(ca), { audience: 'https://api.example.org', algorithms: ['ES256'] });
  t.equal(payload.sub, ID);
  t.same(payload.aud, ['https://api.example.org', 'other']);
  t.ok(payload.iat! >= before && payload.exp === payload.iat! + 120, 'exp = iat + ttl');
  t.same(svid.expiry, new Date(payload.exp! * 1000));
  const mine = await ca.validateJwtSvid(svid.token, 'other');
  t.equal(mine.spiffeId, ID, "the CA's validator agrees");
  t.equal(mine.claims.sub, ID);
});

t.test('rejected: wrong audience, expired, bad signature, foreign sub', async (t) => {
  const { ca, dir } = await newCa(t);
  const svid = await ca.issueJwtSvid(ID, ['api']);
  await t.rejects(jwtVerify(svid.token, joseKeys(ca), { audience: 'not-api' }), { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' }, 'jose: wrong audience');
  await t.rejects(ca.validateJwtSvid(svid.token, 'not-api'), { name: 'JwtSvidError', message: /aud/ }, 'CA: wrong audience');

  const { ca: slow } = await newCa(t, 'example.org', () => new Date(Date.now() - 3600_000));
  const old = await slow.issueJwtSvid(ID, ['api'], 60);
  await t.rejects(jwtVerify(old.token, joseKeys(slow), { audience: 'api' }), { code: 'ERR_JWT_EXPIRED' }, 'jose: expired');
  const read = (d: string, f: string) => readFileSync(join(d, f), 'utf8');
  const later = await SpiffeCa.fromPem(read(dir, 'ca.crt'), read(dir, 'ca.key'), 'example.org', {
    jwtKeyPem: read(dir, 'jwt.key'),
    now: () => new Date(Date.now() + 600_000),
  });
  await t.rejects(later.validateJwtSvid(svid.token, 'api'), { message: /exp/ }, 'CA: a 300 s token is expired ten minutes later');

  const { ca: rogue } = await newCa(t);
  const forged = await rogue.issueJwtSvid(ID, ['api']);
  await t.rejects(jwtVerify(forged.token, joseKeys(ca), { audience: 'api' }), { code: 'ERR_JWKS_NO_MATCHING_KEY' }, 'jose: a key outside the bundle');
  await t.rejects(ca.validateJwtSvid(forged.token, 'api'), { name: 'JwtSvidError' }, "CA: another CA's token");
  const [h, p, s] = svid.token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  const tampered = [h, Buffer.from(JSON.stringify({ ...claims, sub: 'spiffe://example.org/ns/shop/sa/admin' })).toString('base64url'), s].join('.');
  await t.rejects(jwtVerify(tampered, joseKeys(ca), { audience: 'api' }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' }, 'jose: tampered claims');
  await t.rejects(ca.validateJwtSvid(tampered, 'api'), { message: /signature/ }, 'CA: tampered claims');

  // Same JWT key, another trust domain's CA: the signature holds, the subject does not.
  const foreign = await newCa(t, 'other.org');
  const sharedKey = await SpiffeCa.fromPem(read(foreign.dir, 'ca.crt'), read(foreign.dir, 'ca.key'), 'other.org', { jwtKeyPem: read(dir, 'jwt.key') });
  const otherSub = await sharedKey.issueJwtSvid('spiffe://other.org/ns/shop/sa/web', ['api']);
  await t.resolves(jwtVerify(otherSub.token, joseKeys(ca), { audience: 'api' }), 'the signature is valid');
  await t.rejects(ca.validateJwtSvid(otherSub.token, 'api'), { message: /sub: .*not this CA's "example.org"/ }, 'CA: sub of another trust domain');
  await t.rejects(ca.issueJwtSvid(ID, []), { message: /audience/ }, 'no audience: refused');
});
