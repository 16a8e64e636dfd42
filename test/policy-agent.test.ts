// Policy through the agent, without Envoy: identities and proxy ports kept
// across a restart, a bad policy costing only itself, and nothing handed to
// the datapath as a redirect before an ACK.
import t from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { Agent } from '../src/agent/agent.js';
import { recordingLogger } from './helpers/agent.js';
import { cnp, demoPods, pod, rule1L7 } from './helpers/policy-world.js';

async function run(t: { teardown(fn: () => unknown): void }, stateDir: string, docs: object[]): Promise<Agent> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-policy-agent-'));
  writeFileSync(join(dir, 'world.yaml'), docs.map((d) => stringify(d)).join('---\n'));
  const agent = new Agent({ nodeName: 'node-a', kubeDirs: [dir], stateDir, proxyPortRange: [21000, 21099], socketPath: join(dir, 'xds.sock'), log: recordingLogger().log, watch: false });
  await agent.start();
  t.teardown(async () => {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return agent;
}

t.test('a restarted agent keeps identities and proxy ports, whatever the order pods come in', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'sluice-policy-state-'));
  mkdirSync(state, { recursive: true });
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const first = await run(t, state, [...demoPods, rule1L7]);
  const before = first.policyView;
  await first.stop();
  // A new label set that sorts first would take the first number from a fresh allocator.
  const second = await run(t, state, [pod('aaa', '10.0.1.9', { aaa: 'first' }), ...[...demoPods].reverse(), rule1L7]);
  const after = second.policyView;
  const ids = (v: typeof before) => Object.fromEntries(v.desired.endpoints.map((e) => [e.pod, [e.identity, e.endpoint]]));
  t.match(ids(after), ids(before), 'the same identities and endpoint numbers');
  const redirect = (v: typeof before) => v.desired.entries.filter((e) => e.verdict === 'redirect').map((e) => [e.listener, e.proxyPort]);
  t.ok(redirect(before).length > 0);
  t.same(redirect(after), redirect(before), 'the same listener on the same proxy port');
  t.notOk(after.acked.entries.some((e) => e.verdict === 'redirect'), 'no Envoy has ACKed it: nothing is steered into it');
  t.equal(after.ackSeen, false, '...and the view says no ACK has come since the start, so a reconciler keeps what it adopted');
  t.same(after.result?.l7.map((l) => l.listener), redirect(before).slice(0, 1).map(([l]) => l));
});

t.test('a bad policy is reported on itself and enforced not at all; the others keep working', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'sluice-policy-state-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const bad = cnp('bad', {
    endpointSelector: { matchLabels: { class: 'xwing' } },
    ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ path: '/(?=x)' }] } }] }],
  });
  const agent = await run(t, state, [...demoPods, rule1L7, bad]);
  t.match(agent.issues(), [/CiliumNetworkPolicy default\/bad: spec\.ingress\[0\]\.toPorts\[0\]\.rules\.http\[0\]\.path: .*lookahead/]);
  t.equal(agent.issues().length, 1);
  t.same(agent.policyView.result?.l7.map((l) => l.rules.map((r) => r.policy)), [['CiliumNetworkPolicy default/rule1']], 'rule1 still has its listener');
  const xwing = agent.policyView.desired.endpoints.find((e) => e.pod === 'default/xwing')!;
  t.notOk(xwing.ingressEnforced, 'the bad policy enforces nothing on the xwing');
});
