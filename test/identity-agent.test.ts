// The agent's identity wiring, in process against the real CA: which SVIDs a
// node's snapshot carries (its own pods' service accounts, not others'), the
// bundle Secret, and an unloadable CA that neither stops the agent nor blocks
// the rest of its config, and is picked up once it loads.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpiffeCa } from '../src/identity/ca.js';
import { BUNDLE_SECRET_NAME, svidSecretName } from '../src/identity/types.js';
import { TypeUrl } from '../src/resources/types.js';
import { ANY_NODE } from '../src/xds/snapshot-cache.js';
import { eventually } from './helpers/envoy.js';
import { startAgent } from './helpers/agent.js';
import { service } from './helpers/kube.js';

const TD = 'cluster.local';

const pod = (name: string, ns: string, sa: string, node: string, ip: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, uid: `uid-${name}` },
  spec: { nodeName: node, serviceAccountName: sa },
  status: { podIP: ip, phase: 'Running' },
});

t.test("a node's snapshot carries the bundle and its own pods' SVIDs; a CA that fails to load is retried while the rest serves", async (t) => {
  const caDir = mkdtempSync(join(tmpdir(), 'sluice-ca-'));
  t.teardown(() => rmSync(caDir, { recursive: true, force: true }));
  let attempts = 0;
  const loadCa = async () => {
    if (++attempts === 1) throw new Error('the API server is not there yet');
    return SpiffeCa.loadOrCreate({ trustDomain: TD, dir: caDir });
  };
  const a = await startAgent(
    t,
    {
      'world.yaml': [
        pod('a', 'shop', 'client', 'n1', '10.1.0.1'),
        pod('a2', 'shop', 'client', 'n1', '10.1.0.2'),
        pod('b', 'shop', 'server', 'n2', '10.2.0.1'),
        pod('c', 'other', 'client', 'n1', '10.1.0.3'),
        service('web', [{ port: 80, name: 'http', targetPort: 8080 }], { namespace: 'shop' }),
      ],
    },
    { kube: true, nodeName: 'n1', identity: { trustDomain: TD, loadCa, svidTtlSeconds: 60, jwtTtlSeconds: 60 } },
  );
  const secrets = () => [...a.agent.cache.getSnapshot(ANY_NODE)!.snapshot.get(TypeUrl.Secret).keys()].sort();
  t.ok(a.agent.ready, 'the agent serves although the CA did not load');
  t.same(secrets(), [], 'no Secrets yet');
  t.ok(a.logs.some((l) => /the CA could not be loaded/.test(l.msg) && /not there yet/.test(l.err)), 'the failure is logged, with its cause');
  const want = [BUNDLE_SECRET_NAME, svidSecretName(`spiffe://${TD}/ns/other/sa/client`), svidSecretName(`spiffe://${TD}/ns/shop/sa/client`)].sort();
  await eventually(() => JSON.stringify(secrets()) === JSON.stringify(want), 15_000, 'the Secrets after the retry');
  t.equal(attempts, 2, 'loaded on the second attempt');
  t.same(secrets(), want, "the bundle and one SVID per service account with a pod on n1 (a namespace's sa is its own); none for n2's pod");
  t.notOk(JSON.stringify(a.logs).includes('PRIVATE KEY'), 'no key material in the logs');
});
