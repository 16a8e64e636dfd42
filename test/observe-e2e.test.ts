// Hubble users' tools against sluice, end to end: `sluice agent --datapath`
// and the node's Envoy in a node netns, the Star Wars pods in pod netns. The
// L7 rule sends the tiefighter through Envoy (200 for the landing, 403 for the
// exhaust port); the xwing is dropped in the kernel. The real hubble CLI then
// lists each through the agent's Observer socket, filtered by Hubble's own
// flags; /metrics counts them under Hubble's names; the service map page,
// rendered by a real headless Chromium, shows the workloads.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './helpers/envoy.js';
import { endpointSlice, service } from './helpers/kube.js';
import { dumpDom, screenshot } from './helpers/chromium.js';
import { hubbleBinary } from './helpers/hubble.js';
import { agentPolicyWorld } from './helpers/policy-agent-world.js';
import { rule1L7 } from './helpers/policy-world.js';

const VIP = '10.96.0.50';
const DEATHSTAR = '10.0.1.12';
const METRICS_PORT = 19962;
const landing = { method: 'POST', path: '/v1/request-landing' };
const exhaust = { method: 'PUT', path: '/v1/exhaust-port' };

function getUnix(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}

/** The sum of a metric's samples whose labels include all of `labels`. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

t.test('hubble observe, Hubble metrics and the service map against a node running sluice', async (t) => {
  const hubble = hubbleBinary();
  const w = await agentPolicyWorld(
    t,
    [
      { name: 'xwing', ip: '10.0.1.10', labels: { org: 'alliance', class: 'xwing' } },
      { name: 'tiefighter', ip: '10.0.1.11', labels: { org: 'empire', class: 'tiefighter' } },
      { name: 'deathstar', ip: DEATHSTAR, labels: { org: 'empire', class: 'deathstar' }, http: [80] },
    ],
    { proxyPorts: [20620, 20629], extraArgs: ['--metrics-port', String(METRICS_PORT)] },
  );
  const observer = join(w.dir, 'hubble.sock');
  const api = join(w.dir, 'api.sock');
  w.write('service.yaml', [service('deathstar', [{ port: 80, name: 'http' }], { clusterIP: VIP }), endpointSlice('deathstar', 'http', 80, [{ ip: DEATHSTAR }])]);
  w.write('policy.yaml', [rule1L7]);
  await eventually(() => w.http('tiefighter', VIP, 80, exhaust) === '403', 45_000, 'the L7 rule');
  await eventually(() => w.http('xwing', VIP, 80, landing) === 'timeout', 30_000, 'the xwing dropped');

  const before = await getUnix(api, '/metrics');
  const N = { landing: 3, exhaust: 2 };
  for (let i = 0; i < N.landing; i++) t.equal(w.http('tiefighter', VIP, 80, landing), '200', 'the tiefighter lands');
  for (let i = 0; i < N.exhaust; i++) t.equal(w.http('tiefighter', VIP, 80, exhaust), '403', 'the exhaust port: 403');
  t.equal(w.http('xwing', VIP, 80, landing), 'timeout', 'the xwing is dropped');

  const observe = (...args: string[]) =>
    execFileSync(hubble, ['observe', '--server', `unix://${observer}`, '--last', '1000', '-o', 'json', ...args], { encoding: 'utf8', timeout: 30_000 })
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l).flow);

  await t.test('hubble observe --verdict DROPPED: the kernel’s drop with POLICY_DENIED, and Envoy’s 403', async (t) => {
    const dropped = await eventually(() => {
      const f = observe('--verdict', 'DROPPED');
      return f.some((x) => x.l7) && f.some((x) => !x.l7 && x.source?.pod_name === 'xwing') && f;
    }, 15_000, 'both drops in the ring');
    const l3 = dropped.find((f: any) => !f.l7 && f.source?.pod_name === 'xwing');
    t.equal(l3.drop_reason_desc, 'POLICY_DENIED', 'the L3/L4 drop says why');
    t.equal(l3.destination.pod_name, 'deathstar', 'to the deathstar');
    t.equal(l3.source.namespace, 'default');
    t.ok(dropped.every((f: any) => f.verdict === 'DROPPED'), 'nothing but drops');
  });

  await t.test('hubble observe --protocol http --http-status 403: the L7 denial with method and path', async (t) => {
    const f = observe('--protocol', 'http', '--http-status', '403');
    t.ok(f.length >= N.exhaust, `${f.length} denials`);
    t.ok(f.every((x: any) => x.l7?.http?.code === 403), 'all 403s');
    t.ok(f.some((x: any) => x.l7.http.method === 'PUT' && x.l7.http.url.endsWith('/v1/exhaust-port')), 'PUT /v1/exhaust-port');
    t.ok(f.some((x: any) => x.source?.pod_name === 'tiefighter'), 'from the tiefighter');
  });

  await t.test('hubble observe --protocol http --http-status 200: the allowed request with its status and latency', async (t) => {
    const f = observe('--protocol', 'http', '--http-status', '200');
    const ok = f.find((x: any) => x.l7?.http?.method === 'POST' && x.l7.http.url.endsWith('/v1/request-landing'));
    t.ok(ok, 'POST /v1/request-landing');
    t.equal(ok.verdict, 'FORWARDED');
    t.ok(Number(ok.l7.latency_ns) > 0, `latency ${ok.l7.latency_ns} ns`);
  });

  await t.test('--namespace and --pod filter', async (t) => {
    t.same(observe('--namespace', 'other'), [], 'no flow in another namespace');
    const xwing = observe('--pod', 'default/xwing');
    t.ok(xwing.length > 0, `${xwing.length} flows of the xwing`);
    t.ok(xwing.every((f: any) => f.source?.pod_name === 'xwing' || f.destination?.pod_name === 'xwing'), 'each from or to the xwing');
  });

  await t.test('/metrics counts them under Hubble’s names', async (t) => {
    const after = await eventually(async () => {
      const m = await getUnix(api, '/metrics');
      return metric(m, 'hubble_http_requests_total', { status: '403' }) - metric(before, 'hubble_http_requests_total', { status: '403' }) >= N.exhaust && m;
    }, 15_000, 'the counters');
    const delta = (name: string, labels: Record<string, string>) => metric(after, name, labels) - metric(before, name, labels);
    t.equal(delta('hubble_http_requests_total', { method: 'POST', status: '200' }), N.landing, 'one 200 per landing sent');
    t.equal(delta('hubble_http_requests_total', { method: 'PUT', status: '403' }), N.exhaust, 'one 403 per exhaust-port request sent');
    t.ok(delta('hubble_drop_total', { reason: 'POLICY_DENIED' }) >= 1 + N.exhaust, 'the xwing’s drop and the L7 denials among POLICY_DENIED drops');
    t.ok(metric(after, 'hubble_flows_processed_total') > 0, 'flows processed');
    t.match(after, /# TYPE sluice_flow_events_suppressed_total counter/, "what the kernel's rate limits hold back is counted");
    t.match(after, /# TYPE hubble_lost_events_total counter/, 'and what a full ring loses');
  });

  await t.test('the service map page, in a real headless Chromium, shows the workloads and their edges', async (t) => {
    const out = mkdtempSync(join(tmpdir(), 'sluice-map-'));
    t.teardown(() => rmSync(out, { recursive: true, force: true }));
    const url = `http://127.0.0.1:${METRICS_PORT}/flows/map`;
    const dom = await dumpDom(url, 5000, w.node.ns);
    for (const name of ['tiefighter', 'deathstar', 'xwing']) t.match(dom, name, `${name} on the map`);
    const png = join(out, 'service-map.png');
    await screenshot(url, png, 5000, w.node.ns);
    t.ok(existsSync(png) && statSync(png).size > 10_000, `a screenshot (${statSync(png).size} bytes)`);
  });
});
