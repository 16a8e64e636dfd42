// The Workload API carries certificates and keys as DER; the CA keeps PEM.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { TrustBundle, X509Svid } from './types.js';

const concatCerts = (pems: string[]) => Buffer.concat(pems.map((p) => new X509Certificate(p).raw));

/** Leaf first, then intermediates, as concatenated DER. */
export const svidChainDer = (svid: X509Svid): Buffer => concatCerts(svid.certChainPem);

/** The SVID's key as unencrypted PKCS#8 DER. */
export const svidKeyDer = (svid: X509Svid): Buffer => createPrivateKey(svid.keyPem).export({ type: 'pkcs8', format: 'der' });

/** The trust domain's roots as concatenated DER. */
export const bundleDer = (bundle: TrustBundle): Buffer => concatCerts(bundle.x509AuthoritiesPem);
