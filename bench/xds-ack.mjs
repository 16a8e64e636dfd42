#!/usr/bin/env node
// Time from a change in the agent's Envoy resource directory to the node's
// Envoy ACKing it, for N EDS clusters (each with its ClusterLoadAssignment),
// over SotW and delta ADS; plus the agent's and Envoy's resident memory.
//
//   node bench/xds-ack.mjs [--sizes 10,1000,10000] [--changes 7]
//
// Everything runs on loopback and a unix socket; endpoints carry no traffic.
import { checkPrerequisites, flags, matrix, measureSyncAndEdits, printTables, withAgentAndEnvoy, writeYaml } from './lib.mjs';

const opts = flags({ sizes: '10,1000,10000', changes: '7' });
const sizes = opts.sizes.split(',').map(Number);
const changes = Number(opts.changes);
const PER_FILE = 100;
const T = 'type.googleapis.com/';
const TYPES = ['envoy.config.cluster.v3.Cluster', 'envoy.config.endpoint.v3.ClusterLoadAssignment'];
checkPrerequisites();

const cluster = (i, timeout = '1s') => ({
  '@type': `${T}envoy.config.cluster.v3.Cluster`,
  name: `svc-${i}`,
  type: 'EDS',
  connect_timeout: timeout,
  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
});
const cla = (i, port = 10000 + (i % 50000)) => ({
  '@type': `${T}envoy.config.endpoint.v3.ClusterLoadAssignment`,
  cluster_name: `svc-${i}`,
  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
});

function writeFile(dir, f, n, tweak) {
  const docs = [];
  for (let i = f * PER_FILE; i < Math.min(n, (f + 1) * PER_FILE); i++) {
    const t = tweak?.(i);
    docs.push(cluster(i, t?.timeout), cla(i, t?.port));
  }
  writeYaml(dir, `f${f}.yaml`, docs);
}

const rows = await matrix(sizes, 'clusters', (ads, n) =>
  withAgentAndEnvoy(
    {
      ads,
      agentArgs: (data) => ['--resources', data],
      setup: (data) => {
        for (let f = 0; f < Math.ceil(n / PER_FILE); f++) writeFile(data, f, n);
      },
    },
    (h) =>
      measureSyncAndEdits(h, {
        types: TYPES,
        changes,
        label: `${n} clusters`,
        edit: (c) => {
          const target = (c * 7919) % n;
          const tweak = (i) => (i === target ? { timeout: `${2 + c}s`, port: 9000 + c } : undefined);
          return { write: () => writeFile(h.data, Math.floor(target / PER_FILE), n, tweak), waitFor: TYPES };
        },
      }),
  ),
);
printTables(rows, sizes, { title: `xDS: edit one cluster + its endpoints among N -> Envoy ACK, ${changes} edits`, what: 'clusters', edit: 'edit' });
