// Identities: stable across recomputation and restarts, independent of object
// order; policy cost grows with identities, not with pods.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { FIRST_CLUSTER_IDENTITY, identityAllocators } from '../src/policy/index.js';
import { ccnp, cnp, compute, demoPods, namespace, pod } from './helpers/policy-world.js';

const world = [
  namespace('default', { env: 'prod' }),
  ...demoPods,
  pod('xwing-2', '10.0.1.20', { org: 'alliance', class: 'xwing', 'pod-template-hash': 'abc123' }),
  pod('ywing', '10.0.1.21', { org: 'alliance', class: 'ywing' }, { namespace: 'rebels' }),
  cnp('rule1', { endpointSelector: { matchLabels: { class: 'deathstar' } }, ingress: [{ fromEndpoints: [{ matchLabels: { org: 'empire' } }] }, { fromCIDR: ['192.0.2.0/24', '198.51.100.0/24'] }] }),
];
const summary = (r: ReturnType<typeof compute>) => ({
  endpoints: [...r.state.endpoints].sort((a, b) => (a.pod < b.pod ? -1 : 1)),
  ipcache: [...r.state.ipcache].sort((a, b) => (a.prefix < b.prefix ? -1 : 1)),
  entries: r.state.entries.map((e) => JSON.stringify(e)).sort(),
});

t.test('pods with one label set share an identity; volatile labels do not split it', async (t) => {
  const r = compute(world);
  const id = (p: string) => r.state.endpoints.find((e) => e.pod === p)!.identity;
  t.equal(id('default/xwing'), id('default/xwing-2'), 'pod-template-hash is not an identity label');
  t.not(id('default/xwing'), id('default/tiefighter'));
  t.ok([id('default/xwing'), id('default/tiefighter'), id('rebels/ywing')].every((i) => i >= FIRST_CLUSTER_IDENTITY));
  t.equal(new Set(r.state.endpoints.map((e) => e.endpoint)).size, r.state.endpoints.length, 'endpoint numbers are distinct');
  t.equal(r.keys.identities.length, 4, 'four label sets in use');
  t.same(r.keys.cidrIdentities, ['cidr:192.0.2.0/24', 'cidr:198.51.100.0/24']);
  t.same(r.keys.endpoints, ['default/deathstar', 'default/tiefighter', 'default/xwing', 'default/xwing-2', 'rebels/ywing']);
});

t.test('the same numbers for any object order, and on recomputation', async (t) => {
  const first = summary(compute(world));
  for (let i = 0; i < 5; i++) {
    const shuffled = [...world].sort(() => ((i * 7919 + world.length) % 3) - 1).reverse();
    t.same(summary(compute(shuffled)), first, `order ${i}`);
  }
  const alloc = identityAllocators();
  const again = compute(world, alloc);
  t.same(summary(compute(world, alloc)), summary(again), 'the same allocators give the same numbers');
  // A new label set gets a new number; the old ones keep theirs.
  const grown = compute([...world, pod('awing', '10.0.1.30', { org: 'alliance', class: 'awing' })], alloc);
  for (const e of again.state.endpoints) t.equal(grown.state.endpoints.find((g) => g.pod === e.pod)!.identity, e.identity, `${e.pod} keeps its identity`);
});

t.test('an agent restart keeps identities through the state files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-policy-ids-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = { identities: join(dir, 'identities.json'), cidrs: join(dir, 'cidr-identities.json'), endpoints: join(dir, 'endpoints.json') };
  // The first agent saw a pod the restarted one will not: its number stays taken, so nothing shifts.
  const before = compute([...world, pod('early', '10.0.1.40', { class: 'aaa-first' })], identityAllocators(files));
  await new Promise((r) => setTimeout(r, 10)); // the allocators save on a microtask
  const after = compute(world, identityAllocators(files));
  for (const e of after.state.endpoints) {
    const b = before.state.endpoints.find((x) => x.pod === e.pod)!;
    t.same([e.identity, e.endpoint], [b.identity, b.endpoint], `${e.pod}: same identity and endpoint number`);
  }
  for (const c of after.state.ipcache) t.equal(before.state.ipcache.find((x) => x.prefix === c.prefix)?.identity, c.identity, `${c.prefix} keeps its identity`);
});

t.test('cost: 2,000 pods in 50 label sets; entries follow identities, not pods', async (t) => {
  const build = (pods: number) => {
    const objs: object[] = [];
    for (let i = 0; i < pods; i++) {
      const set = i % 50;
      // The first 100 run on this node: every label set twice.
      objs.push(pod(`p${i}`, `10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, { app: `app${set}`, tier: `t${set % 5}` }, { namespace: `ns${set % 10}`, node: i < 100 ? 'node-a' : `node-${i % 20}` }));
    }
    for (let s = 0; s < 50; s++)
      objs.push(cnp(`allow-${s}`, {
        endpointSelector: { matchLabels: { app: `app${s}` } },
        ingress: [{ fromEndpoints: [{ matchLabels: { tier: `t${(s + 1) % 5}`, 'k8s:io.kubernetes.pod.namespace': `ns${(s + 1) % 10}` } }], toPorts: [{ ports: [{ port: '8000', endPort: 8015 }] }] }],
      }, `ns${s % 10}`));
    objs.push(ccnp('deny-world', { endpointSelector: {}, egressDeny: [{ toEntities: ['world'] }], egress: [{ toEntities: ['cluster'] }] }));
    return compute(objs);
  };
  const small = build(200);
  const large = build(2000);
  t.same(large.issues, []);
  t.equal(large.state.endpoints.length, 100, '100 local endpoints');
  t.equal(large.state.ipcache.filter((c) => c.prefix.startsWith('10.')).length, 2000, 'every pod in the ipcache');
  const clusterIds = new Set(large.state.endpoints.map((e) => e.identity));
  t.equal(clusterIds.size, 50, '50 identities for 100 local pods');
  t.equal(large.stats.identities, 50 + 7, '50 label sets plus the reserved identities');
  // Each distinct selector is evaluated once per identity, not once per pod (pairs would be 4,000,000).
  t.ok(large.stats.selectorEvaluations <= large.stats.selectors * large.stats.identities, `${large.stats.selectorEvaluations} selector checks for ${large.stats.selectors} selectors`);
  t.equal(large.stats.selectorEvaluations, small.stats.selectorEvaluations, 'ten times the pods: the same selector work');
  // Entries per endpoint are bounded by remote identities times port prefixes, whatever the pod count.
  const perEndpoint = (r: typeof large) => {
    const n = new Map<number, number>();
    for (const e of r.state.entries) n.set(e.endpoint, (n.get(e.endpoint) ?? 0) + 1);
    return Math.max(...n.values());
  };
  // Two directions, each at most every identity (and 0) once per protocol with one prefix (8000-8015 is 8000/12).
  t.ok(perEndpoint(large) <= 2 * (large.stats.identities + 1) * 3, `at most ${perEndpoint(large)} entries per endpoint`);
  t.equal(perEndpoint(large), perEndpoint(small), 'the same per-endpoint entries with 200 or 2,000 pods');
  t.equal(large.state.entries.length, (small.state.entries.length / small.state.endpoints.length) * large.state.endpoints.length, 'total entries: local endpoints times entries per identity');
  t.ok(large.state.entries.length < 100 * 57 * 2, `${large.state.entries.length} entries in all`);
});
