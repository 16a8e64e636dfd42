// Test SPIFFE certificates made with the openssl CLI: an EC P-256 root per
// trust domain and leaf X.509-SVIDs (one URI SAN, digitalSignature, serverAuth
// and clientAuth), in the shapes the identity room hands out.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrustBundle, X509Svid } from '../../src/identity/types.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface TestCa {
  trustDomain: string;
  rootPem: string;
  bundle: TrustBundle;
  issue(spiffeId: string): X509Svid;
}

const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });

export function testCa(t: Teardown, trustDomain: string): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ca-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = (f: string) => join(dir, f);
  const newKey = (f: string) => openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', p(f)]);
  newKey('root.key');
  openssl(['req', '-x509', '-new', '-key', p('root.key'), '-subj', `/O=sluice test/CN=${trustDomain}`, '-days', '1', '-out', p('root.pem'),
    '-addext', `subjectAltName=URI:spiffe://${trustDomain}`, '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const rootPem = readFileSync(p('root.pem'), 'utf8');
  let n = 0;
  return {
    trustDomain,
    rootPem,
    bundle: { trustDomain, x509AuthoritiesPem: [rootPem], jwks: { keys: [] }, sequence: 1 },
    issue(spiffeId) {
      const f = `leaf${++n}`;
      newKey(`${f}.key`);
      openssl(['req', '-new', '-key', p(`${f}.key`), '-subj', '/O=sluice test', '-out', p(`${f}.csr`)]);
      writeFileSync(p(`${f}.ext`), `subjectAltName=URI:${spiffeId}\nbasicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`);
      const serial = randomBytes(12).toString('hex').replace(/^0+/, '') || '1';
      openssl(['x509', '-req', '-in', p(`${f}.csr`), '-CA', p('root.pem'), '-CAkey', p('root.key'), '-set_serial', `0x${serial}`, '-days', '1', '-extfile', p(`${f}.ext`), '-out', p(`${f}.pem`)]);
      const now = Date.now();
      return {
        spiffeId,
        certChainPem: [readFileSync(p(`${f}.pem`), 'utf8')],
        keyPem: readFileSync(p(`${f}.key`), 'utf8'),
        notBefore: new Date(now),
        notAfter: new Date(now + 86_400_000),
        serial,
      };
    },
  };
}
