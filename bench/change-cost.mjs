#!/usr/bin/env node
// What one CEC edit costs inside the agent at N = 100, 1,000, 10,000 CECs
// (each with its Service and EndpointSlice, 50 CECs a file): the watcher's
// changed file goes through the YAML source, the model, translation, assembly
// and the snapshot publish, in process and without an Envoy, so the phases
// can be told apart and the scaling curve read off. The cost must stay flat
// as N grows: the last column is the total against the smallest N.
//
//   node bench/change-cost.mjs [--sizes 100,1000,10000] [--edits 30]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flags, machine } from './lib.mjs';
import { PER_FILE, writeFile, writeFiles } from './cec-objects.mjs';
import { Agent } from '../dist/agent/agent.js';
import { KubeYamlDir } from '../dist/sources/kube-yaml-dir.js';
import { silentLogger } from '../dist/log.js';

const opts = flags({ sizes: '100,1000,10000', edits: '30' });
const sizes = opts.sizes.split(',').map(Number);
const edits = Number(opts.edits);

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const p99 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))];
const PHASES = ['readMs', 'modelMs', 'translateMs', 'assembleMs', 'publishMs', 'totalMs'];

const rows = [];
for (const n of sizes) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-change-cost-'));
  const data = join(dir, 'data');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(data);
  let agent;
  try {
    writeFiles(data, n);
    const yaml = new KubeYamlDir([data]);
    let push;
    const source = { start: async (cb) => ((push = cb), cb(yaml.read())), stop: async () => {} };
    agent = new Agent({ nodeName: 'bench', source, socketPath: join(dir, 'xds.sock'), stateDir: join(dir, 'state'), proxyPortRange: [15000, 29999], log: silentLogger, watch: false });
    const s0 = performance.now();
    await agent.start();
    const startMs = performance.now() - s0;
    const totals = [];
    const phases = Object.fromEntries(PHASES.map((p) => [p, []]));
    for (let e = 0; e < edits; e++) {
      const target = (e * 7919) % n;
      const f = Math.floor(target / PER_FILE);
      writeFile(data, target, n, (i) => (i === target ? `${3 + e}s` : undefined));
      // What the watcher hands over for a write-aside-then-rename.
      const changed = new Set([join(data, `.f${f}.yaml.tmp`), join(data, `f${f}.yaml`)]);
      const before = agent.currentVersion;
      const t0 = performance.now();
      push(yaml.read(changed));
      totals.push(performance.now() - t0);
      if (agent.currentVersion === before) throw new Error(`edit ${e} published nothing`);
      for (const p of PHASES) phases[p].push(agent.lastPhases?.[p] ?? 0);
    }
    rows.push({ n, startMs, total: median(totals), p99: p99(totals), ...Object.fromEntries(PHASES.map((p) => [p, median(phases[p])])) });
  } finally {
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`change-cost: one CEC edit among N, source read -> published snapshot, in process, median of ${edits} (ms; total: the agent's publish; edit: read + publish as the caller sees it); ${machine()}`);
console.log(`| CECs | ${PHASES.map((p) => p.replace('Ms', '')).join(' | ')} | edit p50 | edit p99 | p50 / p50 at ${sizes[0]} | first publish |`);
console.log(`|---:|${PHASES.map(() => '---:|').join('')}---:|---:|---:|---:|`);
for (const r of rows) console.log(`| ${r.n} | ${PHASES.map((p) => r[p].toFixed(2)).join(' | ')} | ${r.total.toFixed(2)} | ${r.p99.toFixed(2)} | ${(r.total / rows[0].total).toFixed(2)} | ${r.startMs.toFixed(0)} |`);
