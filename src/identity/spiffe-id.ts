// SPIFFE ID syntax as the SPIFFE-ID spec defines it. Every ID the CA signs or
// accepts passes through here, so a malformed name never reaches a certificate.

export class SpiffeIdError extends Error {
  constructor(id: string, why: string) {
    super(`invalid SPIFFE ID ${JSON.stringify(id)}: ${why}`);
    this.name = 'SpiffeIdError';
  }
}

export interface SpiffeId {
  trustDomain: string;
  /** '' for the trust domain itself, else '/seg/seg'. */
  path: string;
}

const SCHEME = 'spiffe://';
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;
// The spec caps a SPIFFE ID at 2048 bytes and a trust domain at 255 so that
// they fit in URI SANs and DNS-like names.
const MAX_ID = 2048;
const MAX_TRUST_DOMAIN = 255;

/** Parses a SPIFFE ID strictly; throws SpiffeIdError naming the rule that failed. */
export function parseSpiffeId(id: string): SpiffeId {
  if (typeof id !== 'string' || id === '') throw new SpiffeIdError(String(id), 'empty');
  if (Buffer.byteLength(id) > MAX_ID) throw new SpiffeIdError(id, `longer than ${MAX_ID} bytes`);
  // The scheme is matched case-sensitively: URIs are case-insensitive there, but
  // the spec requires the lowercase form so that IDs compare byte for byte.
  if (!id.startsWith(SCHEME)) throw new SpiffeIdError(id, 'scheme must be "spiffe://"');
  const rest = id.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (trustDomain === '') throw new SpiffeIdError(id, 'trust domain is empty');
  if (trustDomain.includes('@')) throw new SpiffeIdError(id, 'userinfo is not allowed');
  if (trustDomain.includes(':')) throw new SpiffeIdError(id, 'a port is not allowed');
  if (/[?#]/.test(id)) throw new SpiffeIdError(id, 'query and fragment are not allowed');
  if (trustDomain.length > MAX_TRUST_DOMAIN) throw new SpiffeIdError(id, `trust domain longer than ${MAX_TRUST_DOMAIN} characters`);
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    throw new SpiffeIdError(id, 'trust domain may hold only lowercase letters, digits, ".", "-" and "_"');
  }
  if (path !== '') {
    const segments = path.slice(1).split('/');
    for (const seg of segments) {
      if (seg === '') throw new SpiffeIdError(id, 'path has an empty segment (or a trailing "/")');
      if (seg === '.' || seg === '..') throw new SpiffeIdError(id, 'path segments "." and ".." are not allowed');
      if (!SEGMENT_CHARS.test(seg)) {
        throw new SpiffeIdError(id, 'path segments may hold only letters, digits, ".", "-" and "_"');
      }
    }
  }
  return { trustDomain, path };
}

/** A workload's ID: syntactically valid, in `trustDomain`, and naming a workload (non-empty path). */
export function checkWorkloadId(id: string, trustDomain: string): SpiffeId {
  const parsed = parseSpiffeId(id);
  if (parsed.trustDomain !== trustDomain) {
    throw new SpiffeIdError(id, `trust domain "${parsed.trustDomain}" is not this CA's "${trustDomain}"`);
  }
  if (parsed.path === '') throw new SpiffeIdError(id, 'a workload ID needs a path; the bare trust domain names the CA');
  return parsed;
}

export function checkTrustDomain(trustDomain: string): void {
  const parsed = parseSpiffeId(SCHEME + trustDomain);
  if (parsed.path !== '') throw new SpiffeIdError(SCHEME + trustDomain, 'a trust domain has no path');
}
