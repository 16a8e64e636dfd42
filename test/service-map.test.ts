// The service map: the graph model from flows, and the page as a real
// headless Chromium renders it from the agent's http server.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { startHealthServer } from '../src/agent/health-server.js';
import type { Flow, FlowEndpoint } from '../src/observe/flow.js';
import { buildServiceMap } from '../src/observe/service-map.js';
import { GRAPH_PATH, MAP_PATH, serviceMapRoute } from '../src/observe/service-map-page.js';
import { dumpDom, screenshot } from './helpers/chromium.js';

const ep = (name: string, identity: number, kind = 'Deployment', namespace = 'demo'): FlowEndpoint => ({
  identity, namespace, podName: `${name}-5c7b9-${identity}`, labels: [`k8s:app=${name}`], workloads: [{ kind, name }],
});
const frontend = ep('frontend', 1001);
const backend = ep('backend', 1002);
const db = ep('db', 1003, 'StatefulSet');
let clock = 1_700_000_000_000_000_000n;

function http(src: FlowEndpoint, dst: FlowEndpoint, code: number, latencyMs: number, verdict: Flow['verdict'] = 'FORWARDED'): Flow {
  return {
    timeNs: (clock += 1_000_000n), verdict, type: 'L7', nodeName: 'n1', source: src, destination: dst, trafficDirection: 'EGRESS',
    l7: { type: 'SAMPLE', latencyNs: BigInt(Math.round(latencyMs * 1e6)), http: { code, method: 'GET', url: 'http://x/', protocol: 'HTTP/1.1' } },
  };
}
function l4(src: FlowEndpoint, dst: FlowEndpoint, verdict: Flow['verdict'], extra: Partial<Flow> = {}): Flow {
  return {
    timeNs: (clock += 1_000_000n), verdict, type: 'L3_L4', nodeName: 'n1', source: src, destination: dst, trafficDirection: 'INGRESS',
    ip: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: 'IPv4' }, l4: { protocol: 'TCP', destinationPort: 5432, flags: { SYN: true } },
    ...(verdict === 'DROPPED' ? { dropReason: 'POLICY_DENIED' } : {}), ...extra,
  };
}

/** The demo's traffic: frontend → backend served, frontend → db denied. */
function demoFlows(): Flow[] {
  return [http(frontend, backend, 200, 4), http(frontend, backend, 200, 6), http(frontend, backend, 200, 100), l4(frontend, db, 'DROPPED'), l4(frontend, db, 'DROPPED')];
}

t.test('graph: workload nodes, edges by verdict with colour, last status and median latency', async (t) => {
  const lone = { identity: 1010, namespace: 'other', podName: 'debug' } satisfies FlowEndpoint;
  const world: FlowEndpoint = { identity: 2 };
  const flows = [
    ...demoFlows(),
    http(backend, db, 500, 2), l4(backend, db, 'DROPPED'), http(backend, db, 201, 8),
    // A reply runs db → backend on the wire and is drawn on backend → db.
    l4(db, backend, 'FORWARDED', { isReply: true }),
    l4(lone, backend, 'FORWARDED'),
    { ...l4(world, frontend, 'FORWARDED'), ip: { source: '203.0.113.9', destination: '10.0.0.3', ipVersion: 'IPv4' } },
    // An L7 response runs server → client and belongs to the request's edge.
    { ...http(backend, frontend, 204, 10), l7: { type: 'RESPONSE', latencyNs: 10_000_000n, http: { code: 204, method: 'GET', url: '/' } } },
  ] satisfies Flow[];
  const g = buildServiceMap(flows);
  t.same(g.nodes.map((n) => [n.id, n.kind, n.label]), [
    ['demo/backend', 'workload', 'backend'],
    ['demo/db', 'workload', 'db'],
    ['demo/frontend', 'workload', 'frontend'],
    ['other/debug', 'pod', 'debug'],
    ['reserved:world', 'reserved', 'world'],
  ]);
  const edges = Object.fromEntries(g.edges.map((e) => [e.id, e]));
  t.same(Object.keys(edges), ['demo/backend -> demo/db', 'demo/frontend -> demo/backend', 'demo/frontend -> demo/db', 'other/debug -> demo/backend', 'reserved:world -> demo/frontend']);
  const fb = edges['demo/frontend -> demo/backend'];
  t.same(fb.verdicts, { FORWARDED: 4 }, 'three samples and the response');
  t.equal(fb.colour, 'forwarded');
  t.equal(fb.lastHttpStatus, 204, 'the newest status');
  t.equal(fb.latencyP50Ms, 8, 'median of 4, 6, 100, 10 ms');
  const fd = edges['demo/frontend -> demo/db'];
  t.same(fd.verdicts, { DROPPED: 2 });
  t.equal(fd.colour, 'dropped');
  t.equal(fd.lastHttpStatus, undefined);
  t.equal(fd.latencyP50Ms, undefined);
  const bd = edges['demo/backend -> demo/db'];
  t.same(bd.verdicts, { FORWARDED: 3, DROPPED: 1 });
  t.equal(bd.colour, 'mixed');
  t.equal(bd.lastHttpStatus, 201);
  t.equal(bd.latencyP50Ms, 5);
  t.equal(bd.lastSeenMs, Number(flows[8].timeNs / 1_000_000n));
});

t.test('graph JSON and page over http; the 404 names them', async (t) => {
  const flows = demoFlows();
  const server = await startHealthServer({ ready: true, metrics: { registry: new Registry() } }, 0, '127.0.0.1', serviceMapRoute({ flows: () => flows }));
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${server.port}`;
  const g = await (await fetch(base + GRAPH_PATH)).json();
  t.same(g, JSON.parse(JSON.stringify(buildServiceMap(flows))), 'the JSON is the model');
  t.same(g.edges.map((e: { id: string; colour: string }) => [e.id, e.colour]), [['demo/frontend -> demo/backend', 'forwarded'], ['demo/frontend -> demo/db', 'dropped']]);
  const page = await fetch(base + MAP_PATH);
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(await page.text(), /<svg id="map"/);
  t.equal((await fetch(base + GRAPH_PATH, { method: 'POST' })).status, 405);
  const miss = await fetch(base + '/nope');
  t.equal(miss.status, 404);
  t.match(await miss.text(), /\/flows\/map/);
  t.equal((await fetch(base + '/metrics')).status, 200, 'metrics still served beside it');
});

t.test('headless Chromium renders the demo map: screenshot and DOM', async (t) => {
  const flows = demoFlows();
  // Once armed, the graph grows after its first fetch: only a page that refreshes shows the new edge.
  let later: Flow[] = [];
  let fetches = 0;
  const route = serviceMapRoute({ flows: () => (++fetches > 1 ? [...flows, ...later] : flows) });
  const server = createServer((req, res) => {
    if (route(req, res)) return;
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${MAP_PATH}`;

  const out = mkdtempSync(join(tmpdir(), 'sluice-service-map-'));
  // SLUICE_KEEP_SCREENSHOT=1 keeps the PNG for a look; by default a run leaves nothing behind.
  if (!process.env.SLUICE_KEEP_SCREENSHOT) t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const png = join(out, 'service-map.png');
  await screenshot(url, png);
  const size = statSync(png).size;
  t.comment(`screenshot: ${png} (${size} bytes)`);
  t.same([...readFileSync(png).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
  t.ok(size > 10_000, `non-trivial: ${size} bytes`);

  // A tenant's workload name must stay text on the page; it arrives on the second fetch.
  const hostile: FlowEndpoint = ep('<img src=x onerror="document.title=\'pwned\'">', 1020);
  later = [http(hostile, backend, 200, 1)];
  fetches = 0;
  const dom = await dumpDom(url);
  t.ok(fetches >= 2, `the page refreshed the graph (${fetches} fetches in 5 s of virtual time)`);
  for (const name of ['frontend', 'backend', 'db']) t.match(dom, new RegExp(`<text[^>]*class="node-name"[^>]*>${name}</text>`), `node ${name} drawn`);
  t.match(dom, /<g class="edge edge-forwarded" data-source="demo\/frontend" data-target="demo\/backend">/, 'frontend → backend edge, green');
  t.match(dom, /<g class="edge edge-dropped" data-source="demo\/frontend" data-target="demo\/db">/, 'frontend → db edge, red');
  t.match(dom, /stroke="#1e8e3e"/, 'forwarded colour used');
  t.match(dom, /stroke="#d93025"/, 'dropped colour used');
  t.match(dom, /<title>demo\/frontend → demo\/backend\nFORWARDED: 3\nHTTP status: 200\nlatency p50: 6 ms<\/title>/, 'hover shows status and latency');
  t.match(dom, /4 workloads, 3 edges/, 'the refreshed graph is drawn');
  t.notMatch(dom, /<img src=x/, 'a hostile workload name stays text');
  t.match(dom, /&lt;img src=x/, 'and is shown escaped');
  t.notMatch(dom, /<title>pwned<\/title>/, 'its handler never ran');
});
