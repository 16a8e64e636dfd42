// Key pairs for the CA and its SVIDs, over Node's WebCrypto (what @peculiar/x509
// and jose both sign with), and their PKCS#8 PEM form for files and Secrets.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import type { KeyType } from './types.js';

const subtle = globalThis.crypto.subtle;

const EC_P256: EcKeyImportParams = { name: 'ECDSA', namedCurve: 'P-256' };
const RSA_SHA256: RsaHashedImportParams = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };

function importParams(keyType: KeyType): EcKeyImportParams | RsaHashedImportParams {
  return keyType === 'ec-p256' ? EC_P256 : RSA_SHA256;
}

/** The algorithm @peculiar/x509 signs with for a CA key of this type. */
export function signingAlgorithm(keyType: KeyType): Algorithm | EcdsaParams {
  return keyType === 'ec-p256' ? { name: 'ECDSA', hash: 'SHA-256' } : RSA_SHA256;
}

export async function generateKeyPair(keyType: KeyType): Promise<CryptoKeyPair> {
  const params: EcKeyGenParams | RsaHashedKeyGenParams =
    keyType === 'ec-p256'
      ? EC_P256
      : { ...RSA_SHA256, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) };
  return subtle.generateKey(params, true, ['sign', 'verify']);
}

function pem(label: string, der: ArrayBuffer | Buffer): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`;
}

export async function privateKeyPem(key: CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', await subtle.exportKey('pkcs8', key));
}

export interface LoadedKey {
  keyType: KeyType;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** SubjectPublicKeyInfo DER, to match the key against a certificate. */
  spki: Buffer;
}

/**
 * Reads a private key in any PEM form OpenSSL writes (PKCS#8, SEC1 "EC PRIVATE
 * KEY", PKCS#1 "RSA PRIVATE KEY"), as a mounted kubernetes.io/tls Secret may hold any.
 * Error messages never quote the PEM.
 */
export async function loadPrivateKeyPem(keyPem: string, what: string): Promise<LoadedKey> {
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new Error(`${what}: not a readable PEM private key (${(err as Error).message})`);
  }
  let keyType: KeyType;
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') keyType = 'ec-p256';
  else if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) keyType = 'rsa-2048';
  else throw new Error(`${what}: key must be EC P-256 or RSA of at least 2048 bits, not ${key.asymmetricKeyType}`);
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const params = importParams(keyType);
  const privateKey = await subtle.importKey('pkcs8', pkcs8, params, false, ['sign']);
  const publicKey = await subtle.importKey('spki', spki, params, true, ['verify']);
  return { keyType, privateKey, publicKey, spki };
}
