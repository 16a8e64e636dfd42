// L7 policy on a real Envoy 1.40, as on a node: the agent serves the policy
// listener; Envoy runs in a "node" netns; the Star Wars pods are netns joined
// to it by veth. The BPF steering (bpf_sk_assign) is another room's, so here an
// nftables TPROXY rule, a fwmark and a local route table stand in for it: the
// same transparent listener takes the same kind of socket.
import { spawn } from 'node:child_process';
import t from 'tap';
import { DEFAULT_PROXY_ADDRESSES as PROXY, addProxyAddresses } from '../src/redirect/proxy-address.js';
import { DENIED_BODY, originalDstClusterName } from '../src/translate/policy-l7.js';
import { PROXY_UPSTREAM_MARK } from '../src/translate/proxy-mark.js';
import { startAgent } from './helpers/agent.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { nftTproxy } from './helpers/steer.js';
import { netnsWorld, stopChild, type NetnsWorld, type PeerNetns } from './helpers/netns.js';
import { cnp, pod } from './helpers/policy-world.js';

const NODE = 'node-a';
const here = new URL('./helpers/', import.meta.url).pathname;

// Peers k = 1, 2, 3 of the world get 10.250.k.2.
const TIEFIGHTER = '10.250.1.2';
const XWING = '10.250.2.2';
const DEATHSTAR = '10.250.3.2';

const pods = [
  pod('tiefighter', TIEFIGHTER, { org: 'empire', class: 'tiefighter' }),
  pod('xwing', XWING, { org: 'alliance', class: 'xwing' }),
  pod('deathstar', DEATHSTAR, { org: 'empire', class: 'deathstar' }),
];

const http = [
  { method: 'POST', path: '/v1/request-landing' },
  { method: 'GET', path: '/v1/secret', headers: ['X-Token: abc'] },
  { method: 'GET', path: '/v1/mode', headerMatches: [{ name: 'X-Mode', value: 'safe', mismatch: 'REPLACE' }] },
  { method: 'GET', path: '/v1/add', headerMatches: [{ name: 'X-Added', value: 'yes', mismatch: 'ADD' }] },
  { method: 'GET', path: '/v1/delete', headerMatches: [{ name: 'X-Secret', value: 'ok', mismatch: 'DELETE' }] },
  { method: 'GET', path: '/v1/log', headerMatches: [{ name: 'X-Log', value: 'ok', mismatch: 'LOG' }] },
  { method: 'GET', path: '/v1/strict', headerMatches: [{ name: 'X-Strict', value: 'yes' }] },
  { method: 'GET', path: '/v1/items/[0-9]+', host: 'deathstar(\\.default)?' },
];

const rule1 = cnp('rule1', {
  endpointSelector: { matchLabels: { org: 'empire', class: 'deathstar' } },
  ingress: [{ fromEndpoints: [{ matchLabels: { org: 'empire' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http } }] }],
});

// Egress from the tiefighter: by the peer's identity, and by a CIDR whose except (and the pods' own identities) carve addresses out.
const rule2 = cnp('rule2', {
  endpointSelector: { matchLabels: { class: 'tiefighter' } },
  egress: [
    { toEndpoints: [{ matchLabels: { class: 'deathstar' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/ok', headerMatches: [{ name: 'X-Egress', value: '1', mismatch: 'ADD' }] }] } }] },
    { toCIDRSet: [{ cidr: '10.250.0.0/16', except: ['10.250.2.0/24'] }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/cidr' }] } }] },
  ],
});

/** Starts the echo server of netns-server.mjs in a pod netns; stopped by PID at teardown. */
function echoServer(t: { teardown(fn: () => unknown): void }, peer: PeerNetns, ip: string, ports: number[], name: string): Promise<void> {
  const httpEcho = ports.map((port) => ({ ip, port, name }));
  const c = spawn('nsenter', [`--net=/var/run/netns/${peer.ns}`, process.execPath, `${here}netns-server.mjs`, JSON.stringify({ httpEcho })], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => stopChild(c));
  return new Promise((resolve, reject) => {
    c.stdout!.on('data', (d) => String(d).includes('ready') && resolve());
    c.on('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
  });
}

/**
 * The stand-in for the BPF steering, in the node netns only: TCP to the
 * deathstar's port 80 goes to the proxy port, keeping its destination; and
 * counters of the Envoy's upstream packets to it, with and without the mark.
 */
function tproxy(node: NetnsWorld, proxyPort: number, egressPort: number): () => { marked: number; unmarked: number } {
  nftTproxy(node, `table ip sluice_l7_test {
  chain pre {
    type filter hook prerouting priority mangle; policy accept;
    ip daddr ${DEATHSTAR} tcp dport 80 tproxy to ${PROXY.v4}:${proxyPort} meta mark set 0x1 accept
    ip saddr ${TIEFIGHTER} tcp dport 8080 tproxy to ${PROXY.v4}:${egressPort} meta mark set 0x1 accept
  }
  chain out {
    type filter hook output priority mangle; policy accept;
    ip daddr ${DEATHSTAR} tcp dport 80 meta mark ${PROXY_UPSTREAM_MARK} counter name marked
    ip daddr ${DEATHSTAR} tcp dport 80 meta mark != ${PROXY_UPSTREAM_MARK} counter name unmarked
  }
  counter marked {}
  counter unmarked {}
}`);
  return () => {
    const j = JSON.parse(node.sh('nft', ['-j', 'list', 'counters', 'table', 'ip', 'sluice_l7_test']));
    const packets = (name: string) => j.nftables.find((x: any) => x.counter?.name === name)?.counter.packets ?? -1;
    return { marked: packets('marked'), unmarked: packets('unmarked') };
  };
}

t.test('L7 policy on stock Envoy: RBAC, 403 with the policy body, header rules and actions, the mark on upstream sockets', async (t) => {
  const node = await netnsWorld(t, []);
  const tiefighter = node.peer();
  const xwing = node.peer();
  const deathstar = node.peer();
  t.same([tiefighter.ip4, xwing.ip4, deathstar.ip4], [TIEFIGHTER, XWING, DEATHSTAR]);
  t.same(addProxyAddresses(PROXY, (args) => void node.sh('ip', args)), []);
  await echoServer(t, deathstar, DEATHSTAR, [80, 8080], 'deathstar');

  const agent = await startAgent(t, { 'world.yaml': [...pods, rule1, rule2] }, { kube: true, nodeName: NODE, proxyAddresses: PROXY });
  t.same(agent.agent.issues(), [], 'the policy translates without issues');
  const all = agent.agent.policyView.desired.entries.filter((e) => e.verdict === 'redirect');
  const redirects = all.filter((e) => e.direction === 'ingress');
  const egressPort = all.find((e) => e.direction === 'egress')?.proxyPort;
  t.ok(egressPort && egressPort !== redirects[0]?.proxyPort, 'the egress rules have a listener of their own');
  t.ok(redirects.length > 0, 'traffic from the empire to port 80 is redirected');
  const proxyPort = redirects[0].proxyPort!;
  t.ok(redirects.every((e) => e.proxyPort === proxyPort && e.listener === redirects[0].listener), `every redirect goes to listener ${redirects[0].listener} on proxy port ${proxyPort}`);
  const gated = agent.agent.policyView.acked.entries;
  t.notOk(gated.some((e) => e.verdict === 'redirect'), 'before Envoy has ACKed the listener, no redirect is handed to the datapath...');
  t.ok(gated.some((e) => e.verdict === 'deny' && e.port === 80), '...those flows drop meanwhile, never bypassing the L7 rules');

  const envoy = await startEnvoy(t, agent.bootstrap(NODE, 'sotw'), [], node.ns);
  await agent.agent.cache.waitForAck(NODE, agent.agent.currentVersion, 20_000);
  await eventually(() => agent.agent.policyView.acked.entries.some((e) => e.verdict === 'redirect' && e.proxyPort === proxyPort), 5000, 'the ACK-gated state');
  t.same(
    agent.agent.policyView.acked.entries.filter((e) => e.verdict === 'redirect'),
    all,
    'once Envoy ACKed the listener, the gated state carries the redirects',
  );
  t.ok(agent.agent.policyView.ackSeen);
  const dump = await envoy.configDump();
  const listener = dump.listeners[redirects[0].listener!];
  t.ok(listener?.transparent, 'Envoy holds the transparent listener');
  t.same(listener.address.socket_address, { address: PROXY.v4, port_value: proxyPort });
  const cluster = dump.clusters[originalDstClusterName(redirects[0].listener!)];
  t.equal(cluster?.type, 'ORIGINAL_DST');
  t.equal(cluster?.upstream_bind_config?.socket_options?.[0]?.int_value, String(PROXY_UPSTREAM_MARK), 'upstream sockets carry the mark');

  const counters = tproxy(node, proxyPort, egressPort!);
  const req = (path: string, method = 'GET', headers: Record<string, string> = {}) => ({ op: 'http', host: DEATHSTAR, port: 80, path, method, headers });
  const [landing, exhaust, secretOk, secretNo, mode, modeOk, add, addMissing, del, delOk, log, strictOk, strictNo, item, itemHost] = tiefighter.client([
    req('/v1/request-landing', 'POST'),
    req('/v1/exhaust-port', 'PUT'),
    req('/v1/secret', 'GET', { 'X-Token': 'abc' }),
    req('/v1/secret', 'GET', { 'X-Token': 'xyz' }),
    req('/v1/mode', 'GET', { 'X-Mode': 'reckless' }),
    req('/v1/mode', 'GET', { 'X-Mode': 'safe' }),
    req('/v1/add', 'GET', { 'X-Added': 'no' }),
    req('/v1/add'),
    req('/v1/delete', 'GET', { 'X-Secret': 'leak' }),
    req('/v1/delete', 'GET', { 'X-Secret': 'ok' }),
    req('/v1/log', 'GET', { 'X-Log': 'bad' }),
    req('/v1/strict', 'GET', { 'X-Strict': 'yes' }),
    req('/v1/strict', 'GET', { 'X-Strict': 'no' }),
    req('/v1/items/42', 'GET', { Host: 'deathstar.default' }),
    req('/v1/items/42', 'GET', { Host: 'deathstar.example' }),
  ]).map((r: any[]) => r[0]);
  const seen = (r: any) => JSON.parse(r.backend);

  t.equal(landing.status, 200, 'tiefighter POST /v1/request-landing: 200');
  t.equal(landing.via, 'envoy', '...through Envoy');
  t.same(landing.peer, { address: DEATHSTAR, port: 80 }, '...the client is connected to the deathstar itself (transparent listener)');
  t.equal(seen(landing).local, `${DEATHSTAR}:80`, "...and Envoy's upstream went to the original destination");
  t.equal(seen(landing).remote, '10.250.3.1', '...from the node (the proxy), not from the client');
  t.same([exhaust.status, exhaust.backend], [403, DENIED_BODY], 'tiefighter PUT /v1/exhaust-port: 403, access denied by policy');
  t.same([secretOk.status, secretNo.status], [200, 403], 'headers: X-Token abc passes, another value is refused');
  t.same([mode.status, seen(mode).headers['x-mode']], [200, 'safe'], 'headerMatches REPLACE: a mismatched value passes, replaced');
  t.same([modeOk.status, seen(modeOk).headers['x-mode']], [200, 'safe'], '...a matching one passes as it is');
  t.same([add.status, seen(add).headers['x-added']], [200, 'no, yes'], 'headerMatches ADD: the value is added beside the mismatched one');
  t.same([addMissing.status, seen(addMissing).headers['x-added']], [200, 'yes'], '...and added when the header is missing');
  t.same([del.status, seen(del).headers['x-secret']], [200, undefined], 'headerMatches DELETE: a mismatched header is removed');
  t.same([delOk.status, seen(delOk).headers['x-secret']], [200, 'ok'], '...a matching one is kept');
  t.same([log.status, seen(log).headers['x-log']], [200, 'bad'], 'headerMatches LOG: passes unchanged...');
  await eventually(() => envoy.logs().includes('header "X-Log" mismatch'), 5000, 'the LOG line');
  t.match(envoy.logs(), /sluice policy: CiliumNetworkPolicy default\/rule1 spec\.ingress\[0\]\.toPorts\[0\]\.rules\.http\[5\]\.headerMatches\[0\]: header "X-Log" mismatch, request allowed: GET \/v1\/log/, '...and Envoy logs it, naming the rule');
  t.same([strictOk.status, strictNo.status], [200, 403], 'headerMatches without an action: a mismatch is refused');
  t.same([item.status, itemHost.status], [200, 403], 'path and host are whole-value regexes');

  const [xw] = xwing.client([req('/v1/request-landing', 'POST')]);
  t.same([xw[0].status, xw[0].backend], [403, DENIED_BODY], 'xwing, a peer no rule names, gets 403 for the same request');

  const egress = (path: string, method = 'GET') => ({ op: 'http', host: DEATHSTAR, port: 8080, path, method });
  const [ok, post, cidr] = tiefighter.client([egress('/ok'), egress('/ok', 'POST'), egress('/cidr')]).map((r: any[]) => r[0]);
  t.same([ok.status, seen(ok).headers['x-egress'], seen(ok).local], [200, '1', `${DEATHSTAR}:8080`], 'egress: GET /ok to the deathstar passes, the missing header added');
  t.same([post.status, post.backend], [403, DENIED_BODY], 'egress: POST /ok is refused');
  t.equal(cidr.status, 403, "egress: the CIDR rule does not cover the deathstar, a pod with an identity of its own");

  const { marked, unmarked } = counters();
  t.ok(marked > 0, `Envoy's upstream packets to the deathstar carry mark ${PROXY_UPSTREAM_MARK.toString(16)} (${marked} seen)`);
  t.equal(unmarked, 0, 'and none leave the node for it without the mark');

  // A regex JavaScript takes and Envoy's RE2 refuses: the NACK lands on that policy; the others keep serving.
  const nackme = cnp('nackme', {
    endpointSelector: { matchLabels: { class: 'xwing' } },
    ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ path: '/x\\Z' }] } }] }],
  });
  agent.write('world.yaml', [...pods, rule1, rule2, nackme]);
  await eventually(() => agent.agent.issues().some((i) => i.startsWith('CiliumNetworkPolicy default/nackme: resources: Envoy rejected')), 20_000, 'the NACK on nackme');
  t.same(agent.agent.issues().filter((i) => !i.includes('default/nackme')), [], 'the NACK is reported on that policy alone');
  const nackListener = agent.agent.policyView.result!.l7.find((l) => l.rules[0].policy.endsWith('/nackme'))!.listener;
  t.notOk(agent.agent.policyView.acked.entries.some((e) => e.listener === nackListener), 'nothing is steered into the rejected listener');
  const [still] = tiefighter.client([req('/v1/request-landing', 'POST')]);
  t.equal(still[0].status, 200, 'the other policies keep being served');

  // Deleting the policy takes the listener away and the redirects with it.
  agent.write('world.yaml', pods);
  await eventually(() => agent.agent.policyView.desired.entries.length === 0 && agent.agent.policyView.acked.entries.length === 0, 10_000, 'the policy to go');
  await agent.agent.cache.waitForAck(NODE, agent.agent.currentVersion, 20_000);
  await eventually(async () => !(await envoy.configDump()).listeners[redirects[0].listener!], 10_000, 'the listener to go');

  // Back again, and then Envoy goes: after the grace the datapath gets no redirect into it.
  agent.write('world.yaml', [...pods, rule1, rule2]);
  await eventually(() => agent.agent.policyView.acked.entries.filter((e) => e.verdict === 'redirect').length === all.length, 20_000, 'the redirects to come back once ACKed');
  await envoy.stop();
  await eventually(() => !agent.agent.policyView.acked.entries.some((e) => e.verdict === 'redirect'), 10_000, 'the redirects to go with Envoy');
  t.equal(agent.agent.policyView.desired.entries.filter((e) => e.verdict === 'redirect').length, all.length, 'they stay desired, for the next Envoy to ACK');
});
