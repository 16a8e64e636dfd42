#!/usr/bin/env node
// CiliumEnvoyConfig at scale: N CECs (each a listener on its own proxy port,
// a route, an EDS cluster and a backend Service), in Kubernetes YAML read by
// the agent. Measures the initial sync to Envoy, the time from editing one
// CEC among N to Envoy's ACK, and memory; over SotW and delta.
//
//   node bench/cec-scale.mjs [--sizes 100,1000,5000] [--changes 7] [--ads sotw,delta]
import { checkPrerequisites, flags, matrix, measureSyncAndEdits, printTables, withAgentAndEnvoy } from './lib.mjs';
import { PER_FILE, TYPES, writeFile } from './cec-objects.mjs';

const opts = flags({ sizes: '100,1000,5000', changes: '7', ads: 'sotw,delta' });
const sizes = opts.sizes.split(',').map(Number);
const changes = Number(opts.changes);
checkPrerequisites();

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
  opts.ads.split(','),
);
printTables(rows, sizes, { title: `CiliumEnvoyConfig: edit one CEC's route among N -> Envoy ACK, ${changes} edits`, what: 'CECs', edit: 'edit' });
