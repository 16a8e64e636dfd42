// A fresh self-signed SPIFFE root and JWT signing key, as PEM, for a new
// trust domain (a first start, or the first agent to create the cluster Secret).
import { generateKeyPair, privateKeyPem, signingAlgorithm } from './keys.js';
import { x509 } from './x509.js';
import { checkTrustDomain } from './spiffe-id.js';
import type { KeyType } from './types.js';

export const ROOT_LIFETIME_MS = 365 * 24 * 3600 * 1000;
/** How far back notBefore goes, so peers with a slightly slow clock accept new certificates. */
export const CLOCK_SKEW_MS = 30_000;

export interface RootPem {
  certPem: string;
  keyPem: string;
  jwtKeyPem: string;
}

/** 16 random bytes with the top bit clear: positive, and always 16 bytes in DER. */
export function randomSerialHex(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

export async function createRootPem(trustDomain: string, keyType: KeyType = 'ec-p256', now = new Date()): Promise<RootPem> {
  checkTrustDomain(trustDomain);
  const keys = await generateKeyPair(keyType);
  const name = `O=SPIFFE, CN=${trustDomain} root`;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: name,
    issuer: name,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + ROOT_LIFETIME_MS),
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    signingAlgorithm: signingAlgorithm(keyType),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }], false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await privateKeyPem(keys.privateKey), jwtKeyPem: await createJwtKeyPem() };
}

/** A JWT-SVID signing key (ES256 needs P-256 whatever the root's type). */
export async function createJwtKeyPem(): Promise<string> {
  return privateKeyPem((await generateKeyPair('ec-p256')).privateKey);
}
