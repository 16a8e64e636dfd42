// L3/L4 policy in the kernel (bpf/policy.c on TCX), driven by a hand-built
// PolicyDatapathState through the reconciler, with pods wired as by a routing
// CNI and the attacher finding their veths by itself in the node netns.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hooksFor } from '../src/redirect/tc-attach.js';
import { eventually } from './helpers/envoy.js';
import { podMaker } from './helpers/policy-pods.js';
import { entry, EP, ID, IP, IP6, outcomes, policyWorld } from './helpers/policy-tc-world.js';

const TCP = 6;
const http = (host: string, count = 1) => ({ op: 'http', host, port: 80, count });

t.test('ingress policy: the allowed identity connects, others and other ports time out, unselected pods stay open', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  t.same(w.reconciler.apply(w.state({ enforce: { s: ['ingress'] }, entries: [entry(EP.s, 'ingress', ID.x, TCP, 80, 'allow')] })).errors, []);
  const before = w.reconciler.dropCounters()['no-allow'];
  const [fromX, xOther, xOpen] = w.pods.x.client([http(IP.s, 2), { op: 'tcp', host: IP.s, port: 8080 }, http(IP.u)]);
  const [fromY, yOpen] = w.pods.y.client([http(IP.s), http(IP.u)]);
  t.same(outcomes(fromX), ['200 deathstar', '200 deathstar'], 'x (allowed identity) reaches s:80');
  t.same(outcomes(xOther), ['timeout'], 'x to s:8080: default deny once s is enforced');
  t.same(outcomes(fromY), ['timeout'], 'y (other identity) times out');
  t.same([outcomes(xOpen), outcomes(yOpen)], [['200 open'], ['200 open']], 'u, which no policy selects, stays open');
  t.ok(w.reconciler.dropCounters()['no-allow'] > before, 'the drops are counted');
  const [x6] = w.pods.x.client([http(IP6.s)]);
  const [y6] = w.pods.y.client([http(IP6.s)]);
  t.same([outcomes(x6), outcomes(y6)], [['200 deathstar6'], ['timeout']], 'IPv6 alike: the same trie and maps serve both families');
});

t.test('egress deny to a world CIDR blocks it; cluster traffic and other pods pass', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  t.same(w.reconciler.apply(w.state({ entries: [entry(EP.x, 'egress', ID.worldNet, 0, 0, 'deny')] })).errors, []);
  const before = w.reconciler.dropCounters()['deny-rule'];
  const [toWorld, toS, toU] = w.pods.x.client([http(IP.w), http(IP.s), http(IP.u)]);
  const [yToWorld] = w.pods.y.client([http(IP.w)]);
  t.same(outcomes(toWorld), ['timeout'], 'x to the world CIDR times out');
  t.same([outcomes(toS), outcomes(toU)], [['200 deathstar'], ['200 open']], 'x to pods passes');
  t.same(outcomes(yToWorld), ['200 world'], 'y, whose egress no rule denies, reaches the world address');
  t.ok(w.reconciler.dropCounters()['deny-rule'] > before, 'the deny is counted');
});

t.test('replies of allowed connections pass both ways while both ends enforce both directions', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  const state = w.state({
    enforce: { x: ['ingress', 'egress'], s: ['ingress', 'egress'] },
    entries: [entry(EP.x, 'egress', ID.s, TCP, 80, 'allow'), entry(EP.s, 'ingress', ID.x, TCP, 80, 'allow')],
  });
  t.same(w.reconciler.apply(state).errors, []);
  const [xToS, xToU] = w.pods.x.client([http(IP.s, 3), http(IP.u)]);
  t.same(outcomes(xToS), Array(3).fill('200 deathstar'), "x reaches s:80; the replies pass s's egress and x's ingress");
  t.same(outcomes(xToU), ['timeout'], "x's egress allows nothing else");
  const [sToX] = w.pods.s.client([http(IP.x)]);
  const [uToX] = w.pods.u.client([http(IP.x)]);
  t.same([outcomes(sToX), outcomes(uToX)], [['timeout'], ['timeout']], "new connections to x are not replies: x's ingress drops them");
});

t.test('the attacher hooks veths as they come and unpins them as they go; other interfaces get ingress only', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  const tc = join(w.node.pinDir, 'tc');
  const ifindex = (name: string) => JSON.parse(w.node.sh('ip', ['-j', 'link', 'show', name]))[0].ifindex as number;
  // An overlay device stands in for the uplink (the test kernel has no dummy driver).
  w.node.sh('ip', ['link', 'add', 'up0', 'type', 'vxlan', 'id', '5', 'dstport', '4789']);
  w.node.sh('ip', ['link', 'set', 'up0', 'up']);
  const up = ifindex('up0');
  await eventually(() => readdirSync(tc).includes(`${up}-ingress`), 10_000, 'the uplink hooked');
  t.notOk(readdirSync(tc).includes(`${up}-egress`), 'an uplink gets no egress hook');

  // A pod that starts after the agent: its traffic is judged at its own veth.
  const z = podMaker(t, w.node)(6, '10.244.0.16', 'fd00:244::16');
  await eventually(() => ['ingress', 'egress'].every((d) => readdirSync(tc).includes(`${z.ifindex()}-${d}`)), 10_000, "the new pod's veth hooked");
  const state = w.state({ enforce: { s: ['ingress'] }, entries: [entry(EP.s, 'ingress', ID.x, TCP, 80, 'allow')] });
  state.ipcache.push({ prefix: '10.244.0.16/32', identity: 260 });
  t.same(w.reconciler.apply(state).errors, []);
  const [fromZ] = z.client([http(IP.s)]);
  t.same(outcomes(fromZ), ['timeout'], "z's identity is not allowed: dropped");
  const zIndex = z.ifindex();
  execFileSync('ip', ['netns', 'delete', z.ns]);
  await eventually(() => !readdirSync(tc).some((p) => p.startsWith(`${zIndex}-`)), 10_000, "the gone veth's pins removed");
  const [stillX] = w.pods.x.client([http(IP.s)]);
  t.same(outcomes(stillX), ['200 deathstar'], 'the others keep working');
});

t.test('which hooks an interface gets', async (t) => {
  t.same(hooksFor({ ifindex: 1, ifname: 'lo', link_type: 'loopback' }), []);
  t.same(hooksFor({ ifindex: 2, ifname: 'eth0', link_type: 'ether' }), ['ingress']);
  t.same(hooksFor({ ifindex: 3, ifname: 'lxc1', link_type: 'ether', linkinfo: { info_kind: 'veth' } }), ['ingress', 'egress']);
  t.same(hooksFor({ ifindex: 4, ifname: 'wg0', link_type: 'none', linkinfo: { info_kind: 'wireguard' } }), [], 'no Ethernet header: not parsed, not hooked');
});
