// Flows from Envoy's access logs, end to end on a real Envoy 1.40: the agent
// serves an L7 policy listener with its gRPC access log pointed back at the
// agent's own socket; a client pod's requests go through it (an nftables
// TPROXY rule stands in for the BPF steering, as in policy-l7-envoy.test.ts)
// and the agent receives each exchange as a flow.
import { spawn } from 'node:child_process';
import t from 'tap';
import type { Flow } from '../src/observe/flow.js';
import { DEFAULT_PROXY_ADDRESSES as PROXY, addProxyAddresses } from '../src/redirect/proxy-address.js';
import { startAgent } from './helpers/agent.js';
import { eventually, startEnvoy } from './helpers/envoy.js';
import { netnsWorld, stopChild, type PeerNetns } from './helpers/netns.js';
import { nftTproxy } from './helpers/steer.js';
import { cnp, pod } from './helpers/policy-world.js';

const NODE = 'node-a';
const here = new URL('./helpers/', import.meta.url).pathname;
const CLIENT = '10.250.1.2';
const SERVER = '10.250.2.2';

const pods = [pod('client', CLIENT, { app: 'client' }), pod('server', SERVER, { app: 'server' })];
const policy = cnp('l7', {
  endpointSelector: { matchLabels: { app: 'server' } },
  ingress: [{ fromEndpoints: [{ matchLabels: { app: 'client' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/allowed' }] } }] }],
});

function echoServer(t: { teardown(fn: () => unknown): void }, peer: PeerNetns): Promise<void> {
  const c = spawn('nsenter', [`--net=/var/run/netns/${peer.ns}`, process.execPath, `${here}netns-server.mjs`, JSON.stringify({ httpEcho: [{ ip: SERVER, port: 80, name: 'server' }] })], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => stopChild(c));
  return new Promise((resolve, reject) => {
    c.stdout!.on('data', (d) => String(d).includes('ready') && resolve());
    c.on('exit', (code) => reject(new Error(`echo server exited with ${code}`)));
  });
}

t.test('Envoy streams L7 access logs to the agent over ALS: allowed and RBAC-denied requests become flows', async (t) => {
  const node = await netnsWorld(t, []);
  const client = node.peer();
  const server = node.peer();
  t.same([client.ip4, server.ip4], [CLIENT, SERVER]);
  t.same(addProxyAddresses(PROXY, (args) => void node.sh('ip', args)), []);
  await echoServer(t, server);

  const agent = await startAgent(t, { 'world.yaml': [...pods, policy] }, { kube: true, nodeName: NODE, proxyAddresses: PROXY });
  t.same(agent.agent.issues(), [], 'the policy translates without issues');
  const redirect = agent.agent.policyView.desired.entries.find((e) => e.verdict === 'redirect' && e.direction === 'ingress');
  t.ok(redirect?.proxyPort, 'the client to the server on port 80 is redirected to a proxy port');
  const proxyPort = redirect!.proxyPort!;

  const flows: Flow[] = [];
  agent.agent.accessLogs.subscribe((batch) => flows.push(...batch));
  await startEnvoy(t, agent.bootstrap(NODE, 'sotw'), [], node.ns);
  await agent.agent.cache.waitForAck(NODE, agent.agent.currentVersion, 20_000);
  nftTproxy(node, `table ip sluice_als_test {
  chain pre {
    type filter hook prerouting priority mangle; policy accept;
    ip daddr ${SERVER} tcp dport 80 tproxy to ${PROXY.v4}:${proxyPort} meta mark set 0x1 accept
  }
}`);

  const req = (path: string, method = 'GET') => ({ op: 'http', host: SERVER, port: 80, path, method });
  const [ok, denied] = client.client([req('/allowed'), req('/secret', 'PUT')]).map((r: any[]) => r[0]);
  t.same([ok.status, ok.via], [200, 'envoy'], 'GET /allowed passes through Envoy');
  t.equal(denied.status, 403, 'PUT /secret is refused by the L7 rule');

  // Envoy's gRPC access logger flushes its buffer every second.
  const find = (path: string) => flows.find((f) => f.l7?.http?.url.endsWith(path));
  await eventually(() => find('/allowed') && find('/secret'), 10_000, 'both flows at the agent');
  const allowed = find('/allowed')!;
  const refused = find('/secret')!;

  t.match(allowed, {
    type: 'L7',
    verdict: 'FORWARDED',
    nodeName: NODE,
    trafficDirection: 'INGRESS',
    proxyPort,
    ip: { source: CLIENT, destination: SERVER, ipVersion: 'IPv4' },
    l4: { protocol: 'TCP', destinationPort: 80 },
    l7: { type: 'RESPONSE', http: { code: 200, method: 'GET', url: `http://${SERVER}/allowed`, protocol: 'HTTP/1.1' } },
  }, 'the allowed GET: forwarded, 200, method, URL, addresses (the original destination), direction and proxy port');
  t.notOk(allowed.dropReason, '...with no drop reason');
  t.ok(allowed.l4!.sourcePort! > 0, `...the client's port (${allowed.l4!.sourcePort})`);
  t.ok(allowed.l7!.latencyNs! > 0n, `...and a latency (${allowed.l7!.latencyNs} ns)`);
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  t.ok(allowed.timeNs > nowNs - 60_000_000_000n && allowed.timeNs <= nowNs, '...stamped with the time Envoy saw it');

  t.match(refused, {
    type: 'L7',
    verdict: 'DROPPED',
    dropReason: 'POLICY_DENIED',
    trafficDirection: 'INGRESS',
    proxyPort,
    ip: { source: CLIENT, destination: SERVER },
    l4: { protocol: 'TCP', destinationPort: 80 },
    l7: { type: 'RESPONSE', http: { code: 403, method: 'PUT', url: `http://${SERVER}/secret` } },
  }, 'the PUT RBAC refused: dropped, POLICY_DENIED, 403 with method and URL');
  t.ok(refused.l7!.latencyNs! > 0n, `...with a latency (${refused.l7!.latencyNs} ns)`);
  t.same(agent.agent.accessLogs.counts, { received: flows.length, lost: 0, unmapped: 0 }, 'every entry became a flow, none lost');
  t.match(await agent.agent.metrics.registry.metrics(), new RegExp(`^sluice_observe_access_log_entries_total ${flows.length}$`, 'm'), "the agent's metrics count them");
});
