#!/usr/bin/env node
// CiliumEnvoyConfig at scale: N CECs (each a listener on its own proxy port,
// a route, an EDS cluster and a backend Service), in Kubernetes YAML read by
// the agent. Measures the initial sync to Envoy, the time from editing one
// CEC among N to Envoy's ACK, and memory; over SotW and delta.
//
//   node bench/cec-scale.mjs [--sizes 100,1000,5000] [--changes 7]
import { checkPrerequisites, flags, matrix, measureSyncAndEdits, printTables, withAgentAndEnvoy, writeYaml } from './lib.mjs';

const opts = flags({ sizes: '100,1000,5000', changes: '7' });
const sizes = opts.sizes.split(',').map(Number);
const changes = Number(opts.changes);
const PER_FILE = 50;
const T = 'type.googleapis.com/';
const TYPES = ['envoy.config.listener.v3.Listener', 'envoy.config.route.v3.RouteConfiguration', 'envoy.config.cluster.v3.Cluster', 'envoy.config.endpoint.v3.ClusterLoadAssignment'];
checkPrerequisites();

function objects(i, timeout = '2s') {
  const svc = `svc-${i}`;
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name: svc, namespace: 'bench' }, spec: { clusterIP: `10.97.${i >> 8}.${i & 255}`, ports: [{ name: 'http', port: 80 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${svc}-1`, namespace: 'bench', labels: { 'kubernetes.io/service-name': svc } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
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

const rows = await matrix(sizes, 'CECs', (ads, n) =>
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
          const target = (c * 7919) % n;
          // A route-only edit: one CEC's RouteConfiguration changes, nothing else.
          return { write: () => writeFile(h.data, Math.floor(target / PER_FILE), n, (i) => (i === target ? `${3 + c}s` : undefined)), waitFor: [TYPES[1]] };
        },
      }),
  ),
);
printTables(rows, sizes, { title: `CiliumEnvoyConfig: edit one CEC's route among N -> Envoy ACK, ${changes} edits`, what: 'CECs', edit: 'edit' });
