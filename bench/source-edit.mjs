#!/usr/bin/env node
// One edit among N files: the CPU the watch callback spends re-reading the
// sources, for Kubernetes YAML (KubeYamlDir, one Service per file) and raw
// Envoy resources in .json (EnvoyResourceDir, one Cluster per file). The
// baseline is the full rescan every edit used to cost (read() without the
// watcher's changed paths), measured in the same run. Also the first read of
// N .json files with JSON.parse against the YAML parser that used to read them.
//
//   node bench/source-edit.mjs [--sizes 2000,5000] [--edits 7]
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flags, machine, writeYaml } from './lib.mjs';
import { KubeYamlDir } from '../dist/sources/kube-yaml-dir.js';
import { EnvoyResourceDir } from '../dist/sources/envoy-resource-dir.js';
import { parseYamlText, parseFileText } from '../dist/sources/yaml-files.js';

const opts = flags({ sizes: '2000,5000', edits: '7' });
const sizes = opts.sizes.split(',').map(Number);
const edits = Number(opts.edits);

const cpuMs = (f) => {
  const a = process.cpuUsage();
  f();
  const d = process.cpuUsage(a);
  return (d.user + d.system) / 1000;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const name = (i) => `f-${String(i).padStart(5, '0')}`;

function service(i, port = 80) {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: 'bench' }, spec: { clusterIP: `10.97.${i >> 8}.${i & 255}`, ports: [{ name: 'http', port }] } };
}
function cluster(i, timeout = '2s') {
  return { '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: `c-${i}`, connect_timeout: timeout, type: 'STATIC', load_assignment: { cluster_name: `c-${i}`, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 8000 + (i % 1000) } } } }] }] } };
}
function writeJson(dir, file, obj) {
  const tmp = join(dir, `.${file}.tmp`);
  writeFileSync(tmp, JSON.stringify(obj, null, 1));
  renameSync(tmp, join(dir, file));
}

/** Median CPU of one edit: full rescan (old) and the watcher's changed paths (new). */
function measure(dir, n, edit, file, readAll, readChanged) {
  readAll();
  const full = [];
  const incr = [];
  for (let e = 0; e < edits; e++) {
    const i = (e * 7919) % n;
    edit(i, e);
    full.push(cpuMs(readAll));
    edit(i, e + 1000);
    // What watchDir reports for a write-aside-then-rename.
    const changed = new Set([join(dir, `.${file(i)}.tmp`), join(dir, file(i))]);
    incr.push(cpuMs(() => readChanged(changed)));
  }
  return { full: median(full), incr: median(incr) };
}

const rows = [];
for (const n of sizes) {
  const kube = mkdtempSync(join(tmpdir(), 'sluice-bench-kube-'));
  const raw = mkdtempSync(join(tmpdir(), 'sluice-bench-raw-'));
  try {
    for (let i = 0; i < n; i++) writeYaml(kube, `${name(i)}.yaml`, [service(i)]);
    for (let i = 0; i < n; i++) writeJson(raw, `${name(i)}.json`, cluster(i));
    const k = new KubeYamlDir([kube]);
    const kr = measure(kube, n, (i, e) => writeYaml(kube, `${name(i)}.yaml`, [service(i, 1000 + e)]), (i) => `${name(i)}.yaml`, () => k.read(), (c) => k.read(c));
    rows.push({ source: 'KubeYamlDir (.yaml)', files: n, ...kr });
    const r = new EnvoyResourceDir(raw);
    const rr = measure(raw, n, (i, e) => writeJson(raw, `${name(i)}.json`, cluster(i, `${e + 2}s`)), (i) => `${name(i)}.json`, () => r.load(), (c) => r.load(c));
    rows.push({ source: 'EnvoyResourceDir (.json)', files: n, ...rr });
    // First read's parse of every .json file: the YAML parser (before) against JSON.parse (now).
    const texts = Array.from({ length: n }, (_, i) => readFileSync(join(raw, `${name(i)}.json`), 'utf8'));
    const yamlMs = cpuMs(() => texts.forEach((t, i) => parseYamlText(`${i}.json`, t)));
    const jsonMs = cpuMs(() => texts.forEach((t, i) => parseFileText(`${i}.json`, t)));
    rows.push({ source: 'parse N .json files', files: n, full: yamlMs, incr: jsonMs });
  } finally {
    rmSync(kube, { recursive: true, force: true });
    rmSync(raw, { recursive: true, force: true });
  }
}

console.log(`source-edit: CPU ms of one edit's re-read (median of ${edits}); ${machine()}`);
console.log('| source | files | before: full rescan ms | now: changed files ms | ratio |');
console.log('|---|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.source} | ${r.files} | ${r.full.toFixed(1)} | ${r.incr.toFixed(2)} | ${(r.full / r.incr).toFixed(0)}x |`);
console.log('(last rows: "before" is the YAML parser over every .json file, "now" JSON.parse)');
