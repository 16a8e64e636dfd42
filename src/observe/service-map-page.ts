// The service map on the agent's http server: GET /flows/graph is the graph
// of recent flows as JSON, GET /flows/map a static page drawing it as SVG.
// The page builds every element through the DOM (textContent, never
// innerHTML): pod and workload names come from tenants and must not script it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FlowSource } from './flow-metrics.js';
import { buildServiceMap } from './service-map.js';

export const GRAPH_PATH = '/flows/graph';
export const MAP_PATH = '/flows/map';

const PAGE_SCRIPT = String.raw`
const SVG = 'http://www.w3.org/2000/svg';
const COLOURS = { forwarded: '#1e8e3e', dropped: '#d93025', mixed: '#f29900' };
const NODE_W = 170, NODE_H = 46, COL = 340, ROW = 90, PAD = 40, MAX_LABEL = 20;

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

// Layers by longest path from the nodes nobody calls; bounded passes so cycles end.
function layout(graph) {
  const layer = new Map(graph.nodes.map((n) => [n.id, 0]));
  for (let pass = 0; pass < graph.nodes.length; pass++) {
    let moved = false;
    for (const e of graph.edges) {
      if (e.source === e.target) continue;
      const want = layer.get(e.source) + 1;
      if (want > layer.get(e.target) && want < graph.nodes.length) { layer.set(e.target, want); moved = true; }
    }
    if (!moved) break;
  }
  const columns = new Map();
  for (const n of graph.nodes) {
    const l = layer.get(n.id);
    if (!columns.has(l)) columns.set(l, []);
    columns.get(l).push(n);
  }
  const pos = new Map();
  for (const [l, ns] of columns) ns.forEach((n, i) => pos.set(n.id, { x: PAD + l * COL, y: PAD + 40 + i * ROW }));
  return pos;
}

function short(s) {
  return s.length > MAX_LABEL ? s.slice(0, MAX_LABEL - 1) + '\u2026' : s;
}

function edgeTitle(e) {
  const lines = [e.source + ' \u2192 ' + e.target];
  for (const [v, n] of Object.entries(e.verdicts)) lines.push(v + ': ' + n);
  if (e.lastHttpStatus !== undefined) lines.push('HTTP status: ' + e.lastHttpStatus);
  if (e.latencyP50Ms !== undefined) lines.push('latency p50: ' + e.latencyP50Ms + ' ms');
  return lines.join('\n');
}

function render(graph) {
  const svg = document.getElementById('map');
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const defs = el('defs', {}, svg);
  for (const [name, colour] of Object.entries(COLOURS)) {
    const m = el('marker', { id: 'arrow-' + name, viewBox: '0 0 10 10', refX: 10, refY: 5, markerUnits: 'userSpaceOnUse', markerWidth: 12, markerHeight: 12, orient: 'auto-start-reverse' }, defs);
    el('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: colour }, m);
  }
  const pos = layout(graph);
  let w = 400, h = 200;
  for (const p of pos.values()) { w = Math.max(w, p.x + NODE_W + PAD); h = Math.max(h, p.y + NODE_H + PAD); }
  svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
  for (const e of graph.edges) {
    const a = pos.get(e.source), b = pos.get(e.target);
    if (!a || !b) continue;
    const g = el('g', { class: 'edge edge-' + e.colour, 'data-source': e.source, 'data-target': e.target }, svg);
    el('title', {}, g).textContent = edgeTitle(e);
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
    const back = x2 <= x1;
    const d = back
      ? 'M ' + (a.x + NODE_W / 2) + ' ' + (a.y + NODE_H) + ' C ' + (a.x + NODE_W / 2) + ' ' + (h - 10) + ', ' + (b.x + NODE_W / 2) + ' ' + (h - 10) + ', ' + (b.x + NODE_W / 2) + ' ' + (b.y + NODE_H)
      : 'M ' + x1 + ' ' + y1 + ' C ' + (x1 + 60) + ' ' + y1 + ', ' + (x2 - 60) + ' ' + y2 + ', ' + x2 + ' ' + y2;
    el('path', { d, fill: 'none', stroke: COLOURS[e.colour], 'stroke-width': 3, 'marker-end': 'url(#arrow-' + e.colour + ')' }, g);
    // A wide invisible stroke so the hover title is easy to hit.
    el('path', { d, fill: 'none', stroke: 'transparent', 'stroke-width': 14 }, g);
    const parts = [];
    if (e.lastHttpStatus !== undefined) parts.push('HTTP ' + e.lastHttpStatus);
    if (e.latencyP50Ms !== undefined) parts.push(e.latencyP50Ms + ' ms');
    if (!parts.length) parts.push(Object.entries(e.verdicts).map(([v, n]) => v.toLowerCase() + ' ' + n).join(', '));
    const t = el('text', { x: back ? (a.x + b.x + NODE_W) / 2 : (x1 + x2) / 2, y: back ? h - 14 : (y1 + y2) / 2 - 8, 'text-anchor': 'middle', class: 'edge-label', fill: COLOURS[e.colour] }, g);
    t.textContent = parts.join(' \u00b7 ');
  }
  for (const n of graph.nodes) {
    const p = pos.get(n.id);
    const g = el('g', { class: 'node node-' + n.kind, 'data-id': n.id, transform: 'translate(' + p.x + ',' + p.y + ')' }, svg);
    el('title', {}, g).textContent = n.id + ' (' + n.kind + ')';
    el('rect', { width: NODE_W, height: NODE_H, rx: 8, fill: '#ffffff', stroke: '#5f6368', 'stroke-width': 1.5 }, g);
    el('text', { x: NODE_W / 2, y: 20, 'text-anchor': 'middle', class: 'node-name' }, g).textContent = short(n.label);
    el('text', { x: NODE_W / 2, y: 37, 'text-anchor': 'middle', class: 'node-ns' }, g).textContent = short(n.namespace ?? n.kind);
  }
  document.getElementById('status').textContent =
    graph.nodes.length + ' workloads, ' + graph.edges.length + ' edges \u00b7 updated ' + new Date().toLocaleTimeString();
}

async function refresh() {
  try {
    const r = await fetch('graph', { cache: 'no-store' });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    render(await r.json());
  } catch (e) {
    document.getElementById('status').textContent = 'cannot load the graph: ' + e.message;
  }
}
refresh();
setInterval(refresh, 3000);
`;

export const SERVICE_MAP_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sluice service map</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f8f9fa; color: #202124; }
  header { padding: 12px 20px; background: #202124; color: #fff; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  #status { font-size: 13px; opacity: 0.8; }
  .legend { font-size: 13px; display: flex; gap: 14px; }
  .legend span::before { content: ''; display: inline-block; width: 18px; height: 4px; margin-right: 6px; vertical-align: middle; background: var(--c); }
  #map { width: 100%; height: calc(100vh - 52px); }
  .node-name { font-size: 14px; font-weight: 600; }
  .node-ns { font-size: 11px; fill: #5f6368; }
  .edge-label { font-size: 12px; font-weight: 600; paint-order: stroke; stroke: #f8f9fa; stroke-width: 4px; }
  .edge:hover path:first-of-type { stroke-width: 5; }
</style>
</head>
<body>
<header>
  <h1>sluice service map</h1>
  <div class="legend"><span style="--c:#1e8e3e">forwarded</span><span style="--c:#d93025">dropped</span><span style="--c:#f29900">mixed</span></div>
  <div id="status">loading…</div>
</header>
<svg id="map" xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMin meet"></svg>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;

/** A route for the agent's http server (src/agent/health-server.ts Route): true when it answered. */
export function serviceMapRoute(source: Pick<FlowSource, 'flows'>): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== GRAPH_PATH && path !== MAP_PATH) return false;
    res.setHeader('cache-control', 'no-store');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.statusCode = 405;
      res.end('GET only\n');
      return true;
    }
    if (path === MAP_PATH) {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(SERVICE_MAP_HTML);
      return true;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(buildServiceMap(source.flows())));
    return true;
  };
}
