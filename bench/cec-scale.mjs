#!/usr/bin/env node
// CiliumEnvoyConfig at scale: N CECs (each a listener on its own proxy port,
// a route, an EDS cluster and a backend Service), in Kubernetes YAML read by
// the agent. Measures the initial sync to Envoy, the time from editing one
// CEC among N to Envoy's ACK, and memory; over SotW and delta. Twice: from a
// YAML directory (file write -> ACK) and in cluster mode from a real
// kube-apiserver (kubectl apply -> ACK, and from kubectl's return -> ACK, which
// leaves kubectl's own start-up out).
//
//   node bench/cec-scale.mjs [--sizes 100,1000,5000] [--changes 7] [--modes file,kube]
import { startKubeCluster } from '../test/helpers/kube-cluster.mjs';
import { objects, TYPES, writeFile, writeFiles } from './cec-objects.mjs';
import { createObjects, kubectl, prepareCluster, toYaml } from './kube.mjs';
import { checkPrerequisites, col, flags, machine, matrix, measureSyncAndEdits, withAgentAndEnvoy } from './lib.mjs';

const opts = flags({ sizes: '100,1000,5000', changes: '7', modes: 'file,kube' });
const sizes = opts.sizes.split(',').map(Number);
const changes = Number(opts.changes);
const modes = opts.modes.split(',');
/** The agent's settle window for both sources (watch-dir.ts, kube-api.ts). */
const DEBOUNCE_MS = 50;
checkPrerequisites();

const edited = (c, n) => (c * 7919) % n;
const rows = [];
if (modes.includes('file'))
  for (const r of await matrix(sizes, 'CECs', (ads, n) =>
    withAgentAndEnvoy(
      {
        ads,
        // Below the kernel's ephemeral range, where client sockets cannot take them.
        agentArgs: (data) => ['--source', `dir:${data}`, '--proxy-ports', '15000-19999'],
        setup: (data) => {
          writeFiles(data, n);
        },
      },
      (h) =>
        measureSyncAndEdits(h, {
          types: TYPES,
          changes,
          label: `${n} CECs`,
          edit: (c) => {
            const target = edited(c, n);
            // A route-only edit: one CEC's RouteConfiguration changes, nothing else.
            return { write: () => writeFile(h.data, target, n, (i) => (i === target ? `${3 + c}s` : undefined)), waitFor: [TYPES[1]] };
          },
        }),
    ),
  ))
    rows.push({ mode: 'file', ...r });


if (modes.includes('kube')) {
  const teardowns = [];
  try {
    const cluster = await startKubeCluster({ teardown: (fn) => teardowns.push(fn) }, { baseDir: '/dev/shm' });
    const kc = cluster.kubeconfig;
    await prepareCluster(cluster, 'bench');
    let created = 0;
    const ensure = async (n) => {
      if (n <= created) return;
      const t0 = performance.now();
      const docs = [];
      for (let i = created; i < n; i++) docs.push(...objects(i, undefined, true));
      await createObjects(cluster, docs);
      process.stderr.write(`bench: created ${n - created} Services, EndpointSlices and CECs in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      created = n;
    };
    for (const r of await matrix(sizes, 'CECs in cluster mode', async (ads, n) => {
      await ensure(n);
      return withAgentAndEnvoy(
        { ads, agentArgs: () => ['--source', 'kube', '--kubeconfig', kc, '--proxy-ports', '15000-19999'], setup: () => {} },
        (h) =>
          measureSyncAndEdits(h, {
            types: TYPES,
            changes,
            label: `${n} CECs in cluster mode`,
            edit: (c) => {
              const target = edited(c, n);
              const cec = objects(target, `${3 + c + (ads === 'delta' ? 100 : 0)}s`, true)[2];
              return {
                write: async () => {
                  await kubectl(kc, ['apply', '--server-side', '--force-conflicts', '-f', '-'], toYaml([cec]));
                  return { written: performance.now() };
                },
                waitFor: [TYPES[1]],
              };
            },
          }),
      );
    }))
      rows.push({ mode: 'kube', ...r });
  } finally {
    for (const fn of teardowns.reverse()) await fn();
  }
}

console.log(`\nCiliumEnvoyConfig: edit one CEC's route among N -> Envoy ACK, ${changes} edits (${machine()})`);
console.log('file: file write -> ACK; kube: kubectl apply starts -> ACK ("after-write": from kubectl\'s return, i.e. the API server\'s write, -> ACK)');
console.log(`debounce: the agent's ${DEBOUNCE_MS} ms settle window, as a share of edit-p50`);
console.log('mode ads         N  initial-ms  edit-p50  edit-p99  publish-p50  debounce  after-write-p50  after-write-p99  kubectl-p50  agent-rss  agent-peak  envoy-rss');
for (const r of rows)
  console.log(
    `${r.mode.padEnd(4)} ${r.ads.padEnd(5)} ${col(r.n, 5)} ${col(r.initial, 11)} ${col(r.p50, 9, 1)} ${col(r.p99, 9, 1)} ${col(r.publishP50, 12, 1)} ${col(`${((100 * DEBOUNCE_MS) / r.p50).toFixed(0)}%`, 9)} ${col(r.mode === 'kube' ? r.fromWrittenP50 : '-', 16, 1)} ${col(r.mode === 'kube' ? r.fromWrittenP99 : '-', 16, 1)} ${col(r.mode === 'kube' ? r.writeP50 : '-', 12, 1)} ${col(r.agentRss, 10, 1)} ${col(r.agentPeak, 11, 1)} ${col(r.envoyRss, 10, 1)}`,
  );
const at = (mode, ads, n) => rows.find((r) => r.mode === mode && r.ads === ads && r.n === n);
if (modes.length > 1) {
  console.log('\nratios: kube / file (edit-p50, and after-write-p50 against the file write)');
  console.log('ads         N  edit-p50  after-write-p50');
  for (const n of sizes)
    for (const ads of ['sotw', 'delta']) {
      const k = at('kube', ads, n);
      const f = at('file', ads, n);
      if (k && f) console.log(`${ads.padEnd(5)} ${col(n, 5)} ${col(k.p50 / f.p50, 9, 2)} ${col(k.fromWrittenP50 / f.p50, 16, 2)}`);
    }
}
