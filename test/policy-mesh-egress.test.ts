// An egress rule with `authentication: {mode: required}` allows exactly what
// the datapath carries in the mesh's mTLS tunnel: its peers get the "mesh"
// verdict, which the kernel turns into a steer into the node's Envoy for a
// meshed endpoint's TCP to a meshed pod on another node and into a drop for
// anything else. Pure: the entries, and trace() agreeing with them flow by flow.
import t from 'tap';
import { lookupVerdict, trace, type PolicyResult } from '../src/policy/index.js';
import { meshDatapath, withMesh } from '../src/mesh/datapath.js';
import { meshWorkloads } from '../src/mesh/membership.js';
import { formatTrace } from '../src/policy-cli.js';
import { policyApi } from '../src/agent/policy-api.js';
import { createServer, get } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PolicyDatapathState } from '../src/policy/datapath-state.js';
import { cnp, compute, model, namespace, pod } from './helpers/policy-world.js';

const MESHED = { 'sluice.io/mesh': 'enabled' };
/** Clients on node-a, meshed and not; servers meshed on node-b and on node-a, and one outside the mesh on node-b. */
const world = [
  namespace('x', MESHED),
  namespace('plain'),
  pod('c1', '10.0.1.2', { app: 'client' }, { namespace: 'x', sa: 'alpha' }),
  pod('c0', '10.0.1.3', { app: 'client', 'sluice.io/mesh': 'disabled' }, { namespace: 'x', sa: 'alpha' }),
  pod('far', '10.0.2.1', { app: 'server' }, { namespace: 'x', sa: 'server', node: 'node-b' }),
  pod('near', '10.0.1.1', { app: 'server' }, { namespace: 'x', sa: 'server' }),
  pod('unmeshed', '10.0.2.2', { app: 'server', 'sluice.io/mesh': 'disabled' }, { namespace: 'x', sa: 'server', node: 'node-b' }),
  pod('other', '10.0.2.3', { app: 'other' }, { namespace: 'x', sa: 'other', node: 'node-b' }),
];
const PODS = ['x/c1', 'x/c0', 'x/far', 'x/near', 'x/unmeshed', 'x/other'];

function run(policies: object[]): { r: PolicyResult; state: PolicyDatapathState } {
  const objects = [...world, ...policies];
  const r = compute(objects);
  return { r, state: withMesh(r.state, meshDatapath(meshWorkloads(model(objects), 'td'), 'node-a')) };
}

const toServers = (extra: object = {}, more: object = {}) => ({
  endpointSelector: { matchLabels: { app: 'client' } },
  egress: [{ toEndpoints: [{ matchLabels: { app: 'server' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }], authentication: { mode: 'required' }, ...extra }],
  ...more,
});

/** What bpf/policy.c does with the first packet of from → to at the source's egress, from the entries alone. */
function kernel(s: PolicyDatapathState, r: PolicyResult, from: string, to: string, port: number, proto = 6): 'allow' | 'deny' | 'redirect' | 'steer' {
  const src = s.endpoints.find((e) => e.pod === from)!;
  const dst = r.compiled.identities.pods.get(to)!;
  const hit = lookupVerdict(s.entries, { endpoint: src.endpoint, direction: 'egress', identity: dst.identity, proto, port });
  const steerable = !!src.meshed && proto === 6 && (s.meshDestinations ?? []).some((d) => d.prefix === `${dst.ips[0]}/32`);
  const v = hit?.verdict ?? (src.egressEnforced ? 'deny' : 'allow');
  if (v === 'mesh') return steerable ? 'steer' : 'deny';
  return v === 'allow' && steerable ? 'steer' : v;
}

t.test('the rule’s peers get the mesh verdict on its ports; nothing else is allowed', async (t) => {
  const { r, state } = run([cnp('e', toServers(), 'x')]);
  t.same(r.issues, []);
  const c1 = state.endpoints.find((e) => e.pod === 'x/c1')!;
  t.ok(c1.egressEnforced && c1.meshed);
  const server = r.compiled.identities.pods.get('x/far')!.identity;
  const unmeshed = r.compiled.identities.pods.get('x/unmeshed')!.identity;
  t.equal(r.compiled.identities.pods.get('x/near')!.identity, server, 'near and far share one identity');
  const mine = state.entries.filter((e) => e.endpoint === c1.endpoint);
  t.same([...new Set(mine.map((e) => `${e.direction} ${e.identity} ${e.verdict}`))].sort(), [`egress ${server} mesh`, `egress ${unmeshed} mesh`].sort(), 'only mesh entries, only for the servers');
  t.equal(lookupVerdict(mine, { endpoint: c1.endpoint, direction: 'egress', identity: server, proto: 6, port: 8080 })?.verdict, 'mesh');
  t.equal(lookupVerdict(mine, { endpoint: c1.endpoint, direction: 'egress', identity: server, proto: 6, port: 8081 }), undefined, 'another port: default deny');
  t.equal(lookupVerdict(mine, { endpoint: c1.endpoint, direction: 'egress', identity: server, proto: 17, port: 8080 }), undefined, 'UDP: default deny');
  t.notOk(state.entries.some((e) => e.direction === 'ingress'), 'ingress untouched');

  t.equal(kernel(state, r, 'x/c1', 'x/far', 8080), 'steer', 'meshed → meshed on another node: into the tunnel');
  t.equal(kernel(state, r, 'x/c1', 'x/near', 8080), 'deny', 'meshed → meshed on this node: no tunnel, no authentication');
  t.equal(kernel(state, r, 'x/c1', 'x/unmeshed', 8080), 'deny', 'to a pod outside the mesh: nothing can authenticate it');
  t.equal(kernel(state, r, 'x/c0', 'x/far', 8080), 'deny', 'from a pod outside the mesh: the same');
  t.equal(kernel(state, r, 'x/c1', 'x/other', 8080), 'deny', 'not a peer of the rule');
});

t.test('a plain allow of the same traffic wins over the mesh-only one, as in the kernel', async (t) => {
  const { r, state } = run([
    cnp('e', toServers(), 'x'),
    cnp('plain', { endpointSelector: { matchLabels: { app: 'client' } }, egress: [{ toEndpoints: [{ matchLabels: { app: 'server' } }], toPorts: [{ ports: [{ port: '8080', endPort: 8081, protocol: 'TCP' }] }] }] }, 'x'),
  ]);
  t.equal(kernel(state, r, 'x/c1', 'x/unmeshed', 8080), 'allow', 'plain allow: plaintext to the unmeshed pod');
  t.equal(kernel(state, r, 'x/c1', 'x/far', 8081), 'steer', 'a meshed destination is steered anyway');
  t.equal(kernel(state, r, 'x/c1', 'x/near', 8080), 'allow');
});

t.test('without default deny, required still refuses what cannot be authenticated', async (t) => {
  const { r, state } = run([cnp('e', toServers({}, { enableDefaultDeny: { egress: false } }), 'x')]);
  t.equal(kernel(state, r, 'x/c1', 'x/other', 8080), 'steer', 'other peers pass (into the tunnel, being meshed elsewhere)');
  t.equal(kernel(state, r, 'x/c0', 'x/other', 9999), 'allow', 'and in plaintext from a pod outside the mesh');
  t.equal(kernel(state, r, 'x/c1', 'x/far', 8080), 'steer');
  t.equal(kernel(state, r, 'x/c1', 'x/unmeshed', 8080), 'deny', 'the rule’s peer and port, outside the mesh');
  t.equal(kernel(state, r, 'x/c1', 'x/unmeshed', 8081), 'allow', 'another port is not the rule’s');
});

t.test('a peer selected by any (toEntities all) gets the mesh verdict as identity 0', async (t) => {
  const { r, state } = run([cnp('e', { endpointSelector: { matchLabels: { app: 'client' } }, egress: [{ toEntities: ['all'], authentication: { mode: 'required' } }] }, 'x')]);
  t.equal(kernel(state, r, 'x/c1', 'x/far', 443), 'steer');
  t.equal(kernel(state, r, 'x/c1', 'x/other', 53, 17), 'deny', 'UDP cannot be tunnelled');
  t.equal(kernel(state, r, 'x/c1', 'x/near', 80), 'deny');
});

const STEP: Record<string, string> = { allow: 'allow', deny: 'deny', redirect: 'redirect', steer: 'allow' };

t.test('trace agrees with the entries and the steering, flow by flow', async (t) => {
  const policies: object[][] = [
    [cnp('e', toServers(), 'x')],
    [cnp('e', toServers({}, { enableDefaultDeny: { egress: false } }), 'x')],
    [cnp('e', toServers(), 'x'), cnp('p', { endpointSelector: { matchLabels: { app: 'client' } }, egress: [{ toEndpoints: [{ matchLabels: { app: 'other' } }] }] }, 'x')],
    [cnp('e', { endpointSelector: { matchLabels: { app: 'client' } }, egress: [{ toEntities: ['cluster'], authentication: { mode: 'required' } }, { toEndpoints: [{ matchLabels: { app: 'server' } }], toPorts: [{ ports: [{ port: '8081' }] }] }] }, 'x')],
  ];
  let n = 0;
  for (const ps of policies) {
    const { r, state } = run(ps);
    for (const from of ['x/c1', 'x/c0'])
      for (const to of PODS.filter((p) => p !== from))
        for (const port of [8080, 8081])
          for (const proto of ['TCP', 'UDP'] as const) {
            const want = kernel(state, r, from, to, port, proto === 'TCP' ? 6 : 17);
            const step = trace(r, { from, to, port, proto }, state).steps.find((s) => s.direction === 'egress')!;
            if (step.verdict !== STEP[want]) t.fail(`${ps.length} ${from} → ${to} ${proto}/${port}: kernel ${want}, trace ${JSON.stringify(step)}`);
            if (step.reason === 'mesh-only') t.equal(step.steered, want === 'steer');
            n++;
          }
  }
  t.equal(n, 4 * 2 * 5 * 4, 'every flow compared');
});

t.test('trace names the rule, and says whether the flow is in the tunnel', async (t) => {
  const { r, state } = run([cnp('e', toServers(), 'x')]);
  const q = { from: 'x/c1', to: 'x/far', port: 8080 };
  const inTunnel = trace(r, q, state);
  t.match(inTunnel, { verdict: 'allow', decidedBy: { direction: 'egress', reason: 'mesh-only', steered: true, policy: 'CiliumNetworkPolicy x/e', field: 'spec.egress[0].toPorts[0].ports[0]' } });
  t.match(formatTrace({ query: q, ...inTunnel }), /inside the mesh's mTLS tunnel/);
  const near = trace(r, { ...q, to: 'x/near' }, state);
  t.match(near, { verdict: 'deny', decidedBy: { reason: 'mesh-only', steered: false } });
  t.match(formatTrace({ query: { ...q, to: 'x/near' }, ...near }), /not carried there/);
  t.match(trace(r, q), { verdict: 'deny', decidedBy: { reason: 'mesh-only', steered: false } }, 'without the mesh state nothing is steered');
});

t.test('the agent API traces with the mesh state it is given', async (t) => {
  const { r, state } = run([cnp('e', toServers(), 'x')]);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-mesh-egress-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ask = async (mesh?: () => typeof state) => {
    const handler = policyApi(() => r, mesh);
    const server = createServer((req, res) => {
      if (!handler(req, res)) res.writeHead(404).end();
    });
    const sock = join(dir, `api-${mesh ? 'mesh' : 'plain'}.sock`);
    await new Promise<void>((ok) => server.listen(sock, ok));
    try {
      return await new Promise<any>((ok, fail) =>
        get({ socketPath: sock, path: '/v1/policy/trace?from=x/c1&to=x/far&port=8080' }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => ok(JSON.parse(body)));
        }).on('error', fail),
      );
    } finally {
      await new Promise((ok) => server.close(ok));
    }
  };
  t.match(await ask(() => state), { verdict: 'allow', decidedBy: { reason: 'mesh-only', steered: true } });
  t.match(await ask(), { verdict: 'deny', decidedBy: { reason: 'mesh-only', steered: false } }, 'without it, nothing is steered');
});
