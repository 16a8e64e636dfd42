// In cluster mode every node's agent must sign with the same root, so the root
// lives in one kubernetes.io/tls Secret. The first agent to find it missing
// creates it; the API server admits exactly one create (409 for the others),
// and the losers read the winner's.
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { SpiffeCa } from './ca.js';
import { JWT_KEY, TLS_CERT, TLS_KEY } from './ca-files.js';
import { createJwtKeyPem, createRootPem } from './root.js';
import type { KeyType } from './types.js';

export interface CaSecretOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  trustDomain: string;
  keyType?: KeyType;
  log?: Logger;
  now?: () => Date;
}

function status(err: unknown): number {
  const e = err as { code?: unknown; statusCode?: unknown };
  return Number(e.code ?? e.statusCode);
}

function describe(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  let message: unknown;
  try {
    message = (typeof body === 'string' ? JSON.parse(body) : body)?.message;
  } catch {
    /* not a Status object */
  }
  return `${status(err) || ''} ${typeof message === 'string' ? message : String((err as Error).message ?? err).split('\n')[0]}`.trim();
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s === undefined ? undefined : Buffer.from(s, 'base64').toString('utf8'));

async function read(api: CoreV1Api, namespace: string, name: string): Promise<V1Secret | undefined> {
  try {
    return await api.readNamespacedSecret({ namespace, name });
  } catch (err) {
    if (status(err) === 404) return undefined;
    throw new Error(`reading the CA Secret ${namespace}/${name}: ${describe(err)}`);
  }
}

/** The CA from the cluster's CA Secret, which this call creates if no agent has yet. */
export async function loadOrCreateCaSecret(opts: CaSecretOptions): Promise<SpiffeCa> {
  const { namespace, name, log } = opts;
  const api = opts.kubeConfig.makeApiClient(CoreV1Api);
  const now = opts.now ?? (() => new Date());
  const caOptions = { keyType: opts.keyType, log, now };
  // Each pass either returns or saw another agent's write land in between (create or update conflict).
  for (let attempt = 0; attempt < 5; attempt++) {
    const secret = await read(api, namespace, name);
    if (secret === undefined) {
      const root = await createRootPem(opts.trustDomain, opts.keyType ?? 'ec-p256', now());
      const body: V1Secret = {
        metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'sluice' } },
        type: 'kubernetes.io/tls',
        data: { [TLS_CERT]: b64(root.certPem), [TLS_KEY]: b64(root.keyPem), [JWT_KEY]: b64(root.jwtKeyPem) },
      };
      try {
        await api.createNamespacedSecret({ namespace, body });
      } catch (err) {
        if (status(err) === 409) {
          log?.info({ secret: `${namespace}/${name}` }, 'another agent created the CA Secret first; using theirs');
          continue;
        }
        throw new Error(`creating the CA Secret ${namespace}/${name}: ${describe(err)}`);
      }
      log?.info({ secret: `${namespace}/${name}`, trustDomain: opts.trustDomain }, 'created the SPIFFE root CA Secret');
      return SpiffeCa.fromPem(root.certPem, root.keyPem, opts.trustDomain, { ...caOptions, jwtKeyPem: root.jwtKeyPem });
    }
    const certPem = unb64(secret.data?.[TLS_CERT]);
    const keyPem = unb64(secret.data?.[TLS_KEY]);
    if (!certPem || !keyPem) throw new Error(`the CA Secret ${namespace}/${name} lacks ${TLS_CERT} or ${TLS_KEY}`);
    let jwtKeyPem = unb64(secret.data?.[JWT_KEY]);
    if (jwtKeyPem === undefined) {
      // A Secret made outside sluice (cert-manager, kubectl create secret tls) has no JWT key: add one,
      // guarded by resourceVersion so that two agents adding keys at once end up sharing one.
      jwtKeyPem = await createJwtKeyPem();
      try {
        await api.replaceNamespacedSecret({
          namespace,
          name,
          body: { ...secret, data: { ...secret.data, [JWT_KEY]: b64(jwtKeyPem) } },
        });
      } catch (err) {
        if (status(err) === 409) continue;
        log?.warn({ secret: `${namespace}/${name}`, err: describe(err) }, 'cannot add jwt.key to the CA Secret: JWT-SVIDs are signed with a key only this agent knows');
        jwtKeyPem = undefined;
      }
    }
    return SpiffeCa.fromPem(certPem, keyPem, opts.trustDomain, { ...caOptions, jwtKeyPem });
  }
  throw new Error(`the CA Secret ${namespace}/${name} kept changing under concurrent writers; giving up for now`);
}
