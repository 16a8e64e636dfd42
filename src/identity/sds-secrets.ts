// The identity room's outputs as Envoy Secret resources, for SDS over the
// agent's ADS stream. Pure: the reconciler decides which SVIDs a node gets;
// this only says how one looks to Envoy. The bundle carries Envoy's SPIFFE
// validator rather than a plain trusted_ca: a peer is then accepted only with
// exactly one URI SAN of a known trust domain, chained to that domain's own
// roots, which a CA list alone does not check.
import { anyFromJson, type Any } from '../proto/any.js';
import { BUNDLE_SECRET_NAME, svidSecretName, type TrustBundle, type X509Svid } from './types.js';

const T = 'type.googleapis.com/';
export const SPIFFE_VALIDATOR = 'envoy.tls.cert_validator.spiffe';

/** A tls_certificate Secret named after the workload's SPIFFE ID: its leaf, intermediates and key. */
export function svidSecret(svid: X509Svid): Any {
  return anyFromJson(
    {
      '@type': `${T}envoy.extensions.transport_sockets.tls.v3.Secret`,
      name: svidSecretName(svid.spiffeId),
      tls_certificate: {
        certificate_chain: { inline_string: svid.certChainPem.map((p) => p.trim()).join('\n') + '\n' },
        private_key: { inline_string: svid.keyPem },
      },
    },
    'secret',
  );
}

/** The validation_context Secret every mesh TLS context refers to: the SPIFFE validator over the bundle's roots. */
export function bundleSecret(bundle: TrustBundle): Any {
  if (bundle.x509AuthoritiesPem.length === 0) throw new Error(`trust bundle of ${bundle.trustDomain} has no X.509 authority`);
  return anyFromJson(
    {
      '@type': `${T}envoy.extensions.transport_sockets.tls.v3.Secret`,
      name: BUNDLE_SECRET_NAME,
      validation_context: {
        custom_validator_config: {
          name: SPIFFE_VALIDATOR,
          typed_config: {
            '@type': `${T}envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig`,
            trust_domains: [{ name: bundle.trustDomain, trust_bundle: { inline_string: bundle.x509AuthoritiesPem.map((p) => p.trim()).join('\n') + '\n' } }],
          },
        },
      },
    },
    'secret',
  );
}
