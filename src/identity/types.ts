// The identity room's contract: what the CA issues and what the rest of the
// agent may hold. Only src/identity/ sees CA keys; a workload's own private
// key leaves it only inside an SDS Secret for the node's Envoy or a Workload
// API response to that workload.

/** `spiffe://<trust-domain>/ns/<namespace>/sa/<service account>`, the shape Istio and Cilium use. */
export function workloadSpiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

export type KeyType = 'ec-p256' | 'rsa-2048';

export interface X509Svid {
  spiffeId: string;
  /** PEM certificates, leaf first, then any intermediates (not the root). */
  certChainPem: string[];
  /** The leaf's private key, PKCS#8 PEM. */
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
  /** The leaf's serial number, lowercase hex. */
  serial: string;
}

export interface JwtSvid {
  spiffeId: string;
  token: string;
  audience: string[];
  expiry: Date;
}

export interface TrustBundle {
  trustDomain: string;
  /** Root certificates in PEM. */
  x509AuthoritiesPem: string[];
  /** JWT signing keys as a JWKS (public keys, each with kid and use "jwt-svid"): the Workload API's JWT bundle. */
  jwks: { keys: Record<string, unknown>[] };
  /**
   * The whole bundle in the SPIFFE bundle format: the X.509 roots (use "x509-svid", x5c) and the JWT keys.
   * Kept apart from `jwks` because JWT-bundle readers (go-spiffe's jwtbundle) refuse entries without kid.
   */
  spiffeBundle?: { keys: Record<string, unknown>[]; spiffe_sequence: number };
  /** Changes whenever either set changes. */
  sequence: number;
}

/** The Secret names under which SDS serves identities to the node's Envoy. */
export const BUNDLE_SECRET_NAME = 'spiffe-bundle';
export function svidSecretName(spiffeId: string): string {
  return `svid:${spiffeId}`;
}
