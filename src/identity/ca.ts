// The trust domain's certificate authority: the only object that holds the root
// key. It signs X.509-SVIDs per the SPIFFE X.509-SVID spec and JWT-SVIDs.
import { exportJWK } from 'jose';
import type { Logger } from '../log.js';
import { loadOrCreateCaFiles } from './ca-files.js';
import { JwtAuthority } from './jwt-svid.js';
import { generateKeyPair, loadPrivateKeyPem, privateKeyPem, signingAlgorithm, type LoadedKey } from './keys.js';
import { CLOCK_SKEW_MS, randomSerialHex } from './root.js';
import { checkTrustDomain, checkWorkloadId, parseSpiffeId } from './spiffe-id.js';
import { x509 } from './x509.js';
import type { JwtSvid, KeyType, TrustBundle, X509Svid } from './types.js';

export interface CaOptions {
  /** Key type of the SVIDs it issues; defaults to the root's. */
  keyType?: KeyType;
  log?: Logger;
  /** The clock; tests set it to issue certificates that are already expired. */
  now?: () => Date;
  /** The shared JWT signing key; without it a key is made that only this process knows. */
  jwtKeyPem?: string;
}

export class SpiffeCa {
  private constructor(
    readonly trustDomain: string,
    private readonly root: x509.X509Certificate,
    private readonly rootPem: string,
    private readonly rootKey: LoadedKey,
    private readonly rootKeyId: string,
    private readonly rootJwk: Record<string, unknown>,
    private readonly jwt: JwtAuthority,
    readonly svidKeyType: KeyType,
    private readonly now: () => Date,
  ) {}

  /** Loads the root from `dir` (ca.crt/ca.key or tls.crt/tls.key), or creates and stores one. */
  static async loadOrCreate(opts: { trustDomain: string; dir: string; keyType?: KeyType; log?: Logger; now?: () => Date }): Promise<SpiffeCa> {
    checkTrustDomain(opts.trustDomain);
    const now = opts.now ?? (() => new Date());
    const files = await loadOrCreateCaFiles({
      dir: opts.dir,
      trustDomain: opts.trustDomain,
      keyType: opts.keyType ?? 'ec-p256',
      now: now(),
      log: opts.log,
    });
    if (files.jwtKeyPem === undefined) {
      opts.log?.warn({ dir: opts.dir }, 'no jwt.key beside the CA and the dir is read-only: JWT-SVIDs are signed with a key only this agent knows');
    }
    return SpiffeCa.fromPem(files.certPem, files.keyPem, opts.trustDomain, { keyType: opts.keyType, log: opts.log, now, jwtKeyPem: files.jwtKeyPem });
  }

  static async fromPem(certPem: string, keyPem: string, trustDomain: string, opts: CaOptions = {}): Promise<SpiffeCa> {
    checkTrustDomain(trustDomain);
    const now = opts.now ?? (() => new Date());
    let root: x509.X509Certificate;
    try {
      root = new x509.X509Certificate(certPem);
    } catch (err) {
      throw new Error(`CA certificate: not a readable PEM certificate (${(err as Error).message})`);
    }
    const constraints = root.getExtension(x509.BasicConstraintsExtension);
    if (!constraints?.ca) throw new Error('CA certificate: basicConstraints cA is not true; this is not a CA');
    const usage = root.getExtension(x509.KeyUsagesExtension);
    if (usage && !(usage.usages & x509.KeyUsageFlags.keyCertSign)) throw new Error('CA certificate: keyUsage lacks keyCertSign');
    if (!(await root.isSelfSigned())) throw new Error('CA certificate: only a self-signed root is supported');
    const uris = (root.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? []).filter((n) => n.type === 'url');
    if (uris.length !== 1) throw new Error(`CA certificate: needs exactly one URI SAN spiffe://${trustDomain}, has ${uris.length}`);
    const rootId = parseSpiffeId(uris[0].value);
    if (rootId.trustDomain !== trustDomain) {
      throw new Error(`CA certificate: its trust domain "${rootId.trustDomain}" is not the configured "${trustDomain}"`);
    }
    if (root.notAfter.getTime() <= now().getTime()) throw new Error(`CA certificate: expired at ${root.notAfter.toISOString()}`);
    const rootKey = await loadPrivateKeyPem(keyPem, 'CA key');
    if (!Buffer.from(root.publicKey.rawData).equals(rootKey.spki)) throw new Error('CA key does not match the CA certificate');
    const ski = root.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId
      ?? (await x509.SubjectKeyIdentifierExtension.create(rootKey.publicKey)).keyId;
    const rootJwk = {
      ...(await exportJWK(rootKey.publicKey)),
      use: 'x509-svid',
      x5c: [Buffer.from(root.rawData).toString('base64')],
    };
    const jwt = await JwtAuthority.create(trustDomain, opts.jwtKeyPem, now);
    const pem = root.toString('pem') + '\n';
    return new SpiffeCa(trustDomain, root, pem, rootKey, ski, rootJwk, jwt, opts.keyType ?? rootKey.keyType, now);
  }

  get rootNotAfter(): Date {
    return this.root.notAfter;
  }

  async issueX509Svid(spiffeId: string, ttlSeconds = 3600): Promise<X509Svid> {
    checkWorkloadId(spiffeId, this.trustDomain);
    if (!(ttlSeconds > 0)) throw new Error(`X.509-SVID ttl must be positive, not ${ttlSeconds}`);
    const now = this.now().getTime();
    const notBefore = new Date(Math.max(now - CLOCK_SKEW_MS, this.root.notBefore.getTime()));
    // A leaf never outlives its root: peers would reject the chain from then on anyway.
    const notAfter = new Date(Math.min(now + ttlSeconds * 1000, this.root.notAfter.getTime()));
    if (notAfter.getTime() <= now) throw new Error(`the CA root expired at ${this.root.notAfter.toISOString()}`);
    const keys = await generateKeyPair(this.svidKeyType);
    let usages = x509.KeyUsageFlags.digitalSignature;
    // RSA key exchange (TLS 1.2 RSA suites) encrypts with the leaf key.
    if (this.svidKeyType === 'rsa-2048') usages |= x509.KeyUsageFlags.keyEncipherment;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerialHex(),
      subject: 'O=SPIFFE',
      issuer: this.root.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey,
      signingKey: this.rootKey.privateKey,
      signingAlgorithm: signingAlgorithm(this.rootKey.keyType),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(usages, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], false),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        new x509.AuthorityKeyIdentifierExtension(this.rootKeyId),
      ],
    });
    return {
      spiffeId,
      certChainPem: [cert.toString('pem') + '\n'],
      keyPem: await privateKeyPem(keys.privateKey),
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      serial: cert.serialNumber.toLowerCase(),
    };
  }

  issueJwtSvid(spiffeId: string, audience: string[], ttlSeconds = 300): Promise<JwtSvid> {
    return this.jwt.issue(spiffeId, audience, ttlSeconds);
  }

  validateJwtSvid(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    return this.jwt.validate(token, audience);
  }

  /** The trust bundle as PEM roots, as a JWT JWKS, and as a SPIFFE bundle document holding both. */
  bundle(): TrustBundle {
    // The root and JWT key are fixed for this CA's lifetime.
    const sequence = 1;
    return {
      trustDomain: this.trustDomain,
      x509AuthoritiesPem: [this.rootPem],
      jwks: { keys: [{ ...this.jwt.jwk }] },
      spiffeBundle: { keys: [{ ...this.rootJwk }, { ...this.jwt.jwk }], spiffe_sequence: sequence },
      sequence,
    };
  }
}
