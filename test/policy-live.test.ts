// Policy changes and agent restarts under traffic: a flow every state allows
// and an unrelated pod's flow see zero errors while entries, enforcement and
// identities change; a killed attacher and a dropped reconciler leave
// enforcement in place, and their successors adopt it without rewriting.
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { PolicyDatapathState } from '../src/policy/datapath-state.js';
import { addon } from '../src/redirect/bpf.js';
import { PolicyReconciler } from '../src/redirect/policy-datapath.js';
import { addrString, keySet } from '../src/redirect/policy-maps.js';
import { eventually } from './helpers/envoy.js';
import { stopChild } from './helpers/netns.js';
import { entry, EP, ID, IP, outcomes, policyWorld, type PolicyWorld } from './helpers/policy-tc-world.js';

const TCP = 6;

function states(w: PolicyWorld): PolicyDatapathState[] {
  const allowX = entry(EP.s, 'ingress', ID.x, TCP, 80, 'allow');
  const s1 = w.state({ enforce: { s: ['ingress'] }, entries: [allowX] });
  const s2 = w.state({ enforce: { s: ['ingress'] }, entries: [allowX, entry(EP.s, 'ingress', ID.y, TCP, 8080, 'allow'), entry(EP.s, 'ingress', ID.u, 0, 0, 'deny')] });
  const s3 = w.state({ entries: [entry(EP.s, 'ingress', ID.y, TCP, 8080, 'deny')] });
  const s4 = w.state({ enforce: { s: ['ingress', 'egress'] }, entries: [entry(EP.s, 'ingress', 0, TCP, 80, 'allow'), entry(EP.s, 'ingress', ID.y, TCP, 80, 'deny')] });
  s4.ipcache.push({ prefix: '10.244.9.0/24', identity: 300 });
  const s5 = w.state({ enforce: { s: ['ingress'], x: ['egress'] }, entries: [allowX, entry(EP.x, 'egress', ID.s, TCP, 80, 'allow')] });
  return [s1, s2, s3, s4, s5];
}

t.test('live changes: flows every state allows, and unrelated pods, see zero errors; verdicts flip', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  const stop = join(tmpdir(), `sluice-policy-live-${process.pid}`);
  rmSync(stop, { force: true });
  t.teardown(() => rmSync(stop, { force: true }));
  const all = states(w);
  t.same(w.reconciler.apply(all[0]).errors, []);
  const allowed = w.pods.x.clientAsync([{ op: 'http', host: IP.s, port: 80, until: stop }]);
  const unrelated = w.pods.y.clientAsync([{ op: 'http', host: IP.u, port: 80, until: stop }]);
  // Both loops are running once conntrack holds their flows.
  const running = (ip: string) => w.reconciler.maps.ct.entries().some(([k]) => addrString(k.subarray(0, 16)) === ip);
  await eventually(() => running(IP.x) && running(IP.y), 20_000, 'the client loops to start');
  const errors: string[] = [];
  for (let round = 0; round < 4; round++)
    for (const s of all) {
      errors.push(...w.reconciler.apply(s).errors);
      await new Promise((r) => setTimeout(r, 60));
    }
  errors.push(...w.reconciler.apply(w.state({})).errors);
  await new Promise((r) => setTimeout(r, 60));
  writeFileSync(stop, '');
  const [[a], [u]] = await Promise.all([allowed, unrelated]);
  t.same(errors, [], 'every apply succeeded');
  t.ok(a.length > 0 && u.length > 0, `the loops ran (${a.length} and ${u.length} requests)`);
  t.same(outcomes(a).filter((o) => o !== '200 deathstar'), [], 'x to s:80, allowed by every state: no errors');
  t.same(outcomes(u).filter((o) => o !== '200 open'), [], 'y to u:80, no policy involved: no errors');
  t.equal(w.reconciler.sizes.policy, 0, 'no entries are left once no policy is desired');
  t.equal(w.reconciler.maps.policy.entries().filter(([k]) => keySet.policy(k) === w.reconciler.liveSet).length, 0, 'the kernel agrees');

  // The verdicts do flip.
  w.reconciler.apply(all[1]);
  const [open8080] = w.pods.y.client([{ op: 'tcp', host: IP.s, port: 8080 }]);
  w.reconciler.apply(all[0]);
  const [closed8080] = w.pods.y.client([{ op: 'tcp', host: IP.s, port: 8080 }]);
  t.same([outcomes(open8080), outcomes(closed8080)], [['deathstar-8080'], ['timeout']], 'y to s:8080: allowed, then dropped');
  t.equal(w.reconciler.sizes.policy, 1, 'the live set holds the last state');
});

t.test('restart: enforcement outlives the agent; a new attacher and reconciler adopt it without rewriting', async (t) => {
  const w = await policyWorld(t);
  const first = await w.startAttacher();
  t.same(first.adopted, [], 'a fresh node: nothing to adopt');
  const s1 = states(w)[0];
  t.same(w.reconciler.apply(s1).errors, []);
  const tc = join(w.node.pinDir, 'tc');
  const links = () => Object.fromEntries(readdirSync(tc).map((p) => [p, addon().linkInfo(join(tc, p))?.id]));
  const before = links();
  t.equal(Object.keys(before).length, 10, 'ingress and egress on five veths');

  await stopChild(first.child); // kill -9
  w.reconciler.close();
  const check = (what: string) => {
    const [x] = w.pods.x.client([{ op: 'http', host: IP.s, port: 80 }]);
    const [y] = w.pods.y.client([{ op: 'http', host: IP.s, port: 80 }]);
    t.same([outcomes(x), outcomes(y)], [['200 deathstar'], ['timeout']], `${what}: x allowed, y dropped`);
  };
  check('with no agent');

  const second = await w.startAttacher();
  t.same(second.adopted.sort(), Object.keys(before).sort(), 'the new attacher adopted every pinned link');
  t.same(links(), before, 'the same links, never detached');
  const reconciler = PolicyReconciler.open(w.node.pinDir, { retryMs: 0 });
  t.teardown(() => reconciler.close());
  const again = reconciler.apply(s1);
  t.same(again, { written: 0, deleted: 0, errors: [] }, 'the new reconciler found everything in place');
  check('after adoption');
  const s2 = states(w)[1];
  t.same(reconciler.apply(s2).errors, []);
  const [y8080] = w.pods.y.client([{ op: 'tcp', host: IP.s, port: 8080 }]);
  t.same(outcomes(y8080), ['deathstar-8080'], 'and applies changes');
  t.ok(existsSync(join(w.node.pinDir, 'sluice_policy')), 'the maps stay pinned where the next agent looks');
});

t.test('an established flow keeps the verdict of its first packet when policy changes (as in Cilium); new flows get the new one', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  const go = join(tmpdir(), `sluice-policy-hold-${process.pid}`);
  rmSync(go, { force: true });
  t.teardown(() => rmSync(go, { force: true }));
  t.same(w.reconciler.apply(w.state({ enforce: { s: ['ingress'] }, entries: [entry(EP.s, 'ingress', ID.x, TCP, 9000, 'allow')] })).errors, []);
  const held = w.pods.x.clientAsync([{ op: 'hold', host: IP.s, port: 9000, file: go }]);
  const established = () => w.reconciler.maps.ct.entries().some(([k]) => addrString(k.subarray(0, 16)) === IP.x && k.readUInt16BE(34) === 9000);
  await eventually(established, 20_000, 'the held connection');
  t.same(w.reconciler.apply(w.state({ enforce: { s: ['ingress'] } })).errors, [], 'the allow goes');
  const [fresh] = w.pods.x.client([{ op: 'tcp', host: IP.s, port: 9000 }]);
  t.same(outcomes(fresh), ['timeout'], 'a new connection meets the new policy');
  writeFileSync(go, '');
  const [[h]] = await held;
  t.same(h, { echoes: ['one', 'two'] }, 'the connection that was allowed goes on');
});
