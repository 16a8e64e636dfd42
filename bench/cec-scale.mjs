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
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { KUBE_BIN, startKubeCluster } from '../test/helpers/kube-cluster.mjs';
import { checkPrerequisites, col, flags, machine, matrix, measureSyncAndEdits, root, withAgentAndEnvoy, writeYaml } from './lib.mjs';

const opts = flags({ sizes: '100,1000,5000', changes: '7', modes: 'file,kube' });
const sizes = opts.sizes.split(',').map(Number);
const changes = Number(opts.changes);
const modes = opts.modes.split(',');
/** The agent's settle window for both sources (watch-dir.ts, kube-api.ts). */
const DEBOUNCE_MS = 50;
const PER_FILE = 50;
const T = 'type.googleapis.com/';
const TYPES = ['envoy.config.listener.v3.Listener', 'envoy.config.route.v3.RouteConfiguration', 'envoy.config.cluster.v3.Cluster', 'envoy.config.endpoint.v3.ClusterLoadAssignment'];
checkPrerequisites();

/** In cluster mode the API server allocates ClusterIPs and refuses loopback endpoints (nothing dials them here). */
function objects(i, timeout = '2s', cluster = false) {
  const svc = `svc-${i}`;
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: svc, namespace: 'bench' }, spec: { ...(cluster ? {} : { clusterIP: `10.97.${i >> 8}.${i & 255}` }), ports: [{ name: 'http', port: 80 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${svc}-1`, namespace: 'bench', labels: { 'kubernetes.io/service-name': svc } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: [cluster ? `10.244.${i >> 8}.${i & 255}` : '127.0.0.1'], conditions: { ready: true } }],
    },
    {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumEnvoyConfig',
      metadata: { name: `cec-${i}`, namespace: 'bench' },
      spec: {
        services: [{ name: svc }],
        backendServices: [{ name: svc }],
        resources: [
          {
            '@type': `${T}envoy.config.listener.v3.Listener`,
            name: 'l',
            filter_chains: [
              {
                filters: [
                  {
                    name: 'hcm',
                    typed_config: {
                      '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
                      stat_prefix: `cec-${i}`,
                      rds: { route_config_name: 'r' },
                      http_filters: [{ name: 'router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } }],
                    },
                  },
                ],
              },
            ],
          },
          {
            '@type': `${T}envoy.config.route.v3.RouteConfiguration`,
            name: 'r',
            virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: `bench/${svc}:80`, timeout: timeout } }] }],
          },
          { '@type': `${T}envoy.config.cluster.v3.Cluster`, name: `bench/${svc}:80`, type: 'EDS', connect_timeout: '1s' },
        ],
      },
    },
  ];
}

function writeFile(dir, f, n, tweak) {
  const docs = [];
  for (let i = f * PER_FILE; i < Math.min(n, (f + 1) * PER_FILE); i++) docs.push(...objects(i, tweak?.(i)));
  writeYaml(dir, `f${f}.yaml`, docs);
}

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
          for (let f = 0; f < Math.ceil(n / PER_FILE); f++) writeFile(data, f, n);
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
            return { write: () => writeFile(h.data, Math.floor(target / PER_FILE), n, (i) => (i === target ? `${3 + c}s` : undefined)), waitFor: [TYPES[1]] };
          },
        }),
    ),
  ))
    rows.push({ mode: 'file', ...r });

/** kubectl as a child process (not spawnSync: the agent's log is the clock and must keep being read). */
function kubectl(kubeconfig, args, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(join(KUBE_BIN, 'kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`kubectl ${args.join(' ')}: ${err}`))));
    p.stdin.end(input ?? '');
  });
}
const toYaml = (docs) => docs.map((d) => stringify(d)).join('---\n');

if (modes.includes('kube')) {
  const teardowns = [];
  try {
    const cluster = await startKubeCluster({ teardown: (fn) => teardowns.push(fn) });
    const kc = cluster.kubeconfig;
    await kubectl(kc, ['apply', '--server-side', '-f', join(root, 'crds')]);
    await kubectl(kc, ['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
    await kubectl(kc, ['create', 'namespace', 'bench']);
    let created = 0;
    /** Creates objects up to `n` in multi-document batches, two kubectl at a time (not timed). */
    const ensure = async (n) => {
      const t0 = performance.now();
      const batches = [];
      for (let i = created; i < n; i += 500) {
        const docs = [];
        for (let j = i; j < Math.min(n, i + 500); j++) docs.push(...objects(j, undefined, true));
        batches.push(docs);
      }
      while (batches.length) await Promise.all(batches.splice(0, 2).map((docs) => kubectl(kc, ['create', '-f', '-'], toYaml(docs))));
      if (n > created) process.stderr.write(`bench: created ${n - created} Services, EndpointSlices and CECs in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
      created = Math.max(created, n);
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
