// JWT-SVIDs: ES256 tokens signed with the trust domain's JWT key, a key separate
// from the X.509 root so either can be rotated or published alone.
import { calculateJwkThumbprint, exportJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { generateKeyPair, loadPrivateKeyPem } from './keys.js';
import { checkWorkloadId } from './spiffe-id.js';
import type { JwtSvid } from './types.js';

export class JwtSvidError extends Error {
  override name = 'JwtSvidError';
}

export class JwtAuthority {
  private constructor(
    private readonly trustDomain: string,
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    /** The public key as a SPIFFE bundle entry. */
    readonly jwk: JWK & { kid: string; use: 'jwt-svid' },
    private readonly now: () => Date,
  ) {}

  /** From a PEM key, or a key made now (not shared with other agents) when none is given. */
  static async create(trustDomain: string, keyPem: string | undefined, now: () => Date): Promise<JwtAuthority> {
    let privateKey: CryptoKey;
    let publicKey: CryptoKey;
    if (keyPem === undefined) {
      ({ privateKey, publicKey } = await generateKeyPair('ec-p256'));
    } else {
      const loaded = await loadPrivateKeyPem(keyPem, 'JWT signing key');
      if (loaded.keyType !== 'ec-p256') throw new Error('JWT signing key: must be EC P-256 (ES256)');
      ({ privateKey, publicKey } = loaded);
    }
    const pub = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(pub);
    return new JwtAuthority(trustDomain, privateKey, publicKey, { ...pub, kid, use: 'jwt-svid' }, now);
  }

  async issue(spiffeId: string, audience: string[], ttlSeconds: number): Promise<JwtSvid> {
    checkWorkloadId(spiffeId, this.trustDomain);
    if (!Array.isArray(audience) || audience.length === 0 || audience.some((a) => typeof a !== 'string' || a === '')) {
      throw new JwtSvidError('a JWT-SVID needs at least one non-empty audience');
    }
    if (!(ttlSeconds > 0)) throw new JwtSvidError(`ttl must be positive, not ${ttlSeconds}`);
    const iat = Math.floor(this.now().getTime() / 1000);
    const exp = iat + Math.ceil(ttlSeconds);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: this.jwk.kid, typ: 'JWT' })
      .setSubject(spiffeId)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(this.privateKey);
    return { spiffeId, token, audience: [...audience], expiry: new Date(exp * 1000) };
  }

  async validate(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    let result;
    try {
      result = await jwtVerify(token, this.publicKey, {
        algorithms: ['ES256'],
        audience,
        requiredClaims: ['sub', 'aud', 'exp'],
        currentDate: this.now(),
      });
    } catch (err) {
      throw new JwtSvidError(`JWT-SVID rejected: ${(err as Error).message}`);
    }
    if (result.protectedHeader.kid !== this.jwk.kid) throw new JwtSvidError('JWT-SVID rejected: unknown key id');
    const sub = result.payload.sub as string;
    try {
      checkWorkloadId(sub, this.trustDomain);
    } catch (err) {
      throw new JwtSvidError(`JWT-SVID rejected: sub: ${(err as Error).message}`);
    }
    return { spiffeId: sub, claims: result.payload as Record<string, unknown> };
  }
}

/**
 * The JWT keys of a SPIFFE bundle in the form JOSE verifiers accept: the bundle
 * marks them `use: "jwt-svid"`, which jose's key sets ignore as a foreign use.
 */
export function jwtVerificationJwks(jwks: { keys: Record<string, unknown>[] }): { keys: JWK[] } {
  return { keys: jwks.keys.filter((k) => k.use === 'jwt-svid').map((k) => ({ ...(k as JWK), use: 'sig' })) };
}
