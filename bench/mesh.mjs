#!/usr/bin/env node
// The mesh's costs on two nodes, on the real kernel with real agents and
// Envoys in test network namespaces (root). Nodes n1 and n2 are netns joined
// by a veth wire; on each, a plain pod (namespace "plain") and a meshed pod
// (namespace "shop", labelled for the mesh), each a netns with its own
// cgroup; per node `sluice agent --datapath` with one shared --ca-dir and the
// node's Envoy (--concurrency 1). Cross-node, in one run, interleaved:
//  1. Request latency p50/p99, plain → plain (direct, routed over the wire)
//     against meshed → meshed (n1's Envoy, an HTTP/2 CONNECT tunnel in mTLS,
//     n2's Envoy), keep-alive and a new connection per request.
//  2. Connection rates: new connections (each carrying one request) per
//     second, plain and meshed; and full mTLS handshakes per second from n1's
//     netns to n2's Envoy tunnel port with a valid SVID, against a Node `tls`
//     server in n2's netns with an SVID of the same CA and key type, and
//     against plain TCP connects.
//
//   sudo node bench/mesh.mjs [--requests 2000] [--seconds 5] [--concurrency 4]
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeIndex, NODES, podCidr, twoNodeObjects, WIRE } from '../test/helpers/two-node-objects.mjs';
import {
  cgroup2Root, checkPrerequisites, cleanupOnSignals, col, envoyBin, flags, inNetns, machine, nodeInNetns, percentile, removeCgroupDir, root, sh, stop, writeYaml,
} from './lib.mjs';

const opts = flags({ requests: '2000', seconds: '5', concurrency: '4', batch: '100' });
const REQUESTS = Number(opts.requests);
const SECONDS = Number(opts.seconds);
const CONCURRENCY = Number(opts.concurrency);
const BATCH = Number(opts.batch);
if (process.getuid() !== 0) throw new Error('bench/mesh.mjs needs root (network namespaces, cgroups, BPF)');
checkPrerequisites();
for (const f of ['build/bpf/policy.o', 'dist/identity/ca.js']) if (!existsSync(join(root, f))) throw new Error(`${f} is missing: run scripts/setup.sh`);
const { SpiffeCa } = await import(join(root, 'dist/identity/ca.js'));
const { meshSni } = await import(join(root, 'dist/translate/mesh-envoy.js'));
const { MESH_LABEL, MESH_INBOUND_PORT } = await import(join(root, 'dist/mesh/membership.js'));

const TD = 'cluster.local';
const PORT = 8080;
const other = (n) => (n === 'n1' ? 'n2' : 'n1');
// The baselines for the handshake rows listen beside n2's Envoy, on n2's wire address.
const NODE_TLS_PORT = 15100;
const NODE_TCP_PORT = 15101;

const id = `${process.pid}`;
const cg2 = cgroup2Root();
const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-mesh-'));
const src = join(dir, 'src');
const caDir = join(dir, 'ca');
const children = [];
const made = { netns: [], cgroups: [], mounts: [] };
const node = Object.fromEntries(NODES.map((n) => [n, { ns: `sluice-bm-${id}-${n}`, cg: join(cg2, `sluice-bench-mesh-${id}-${n}`), bpffs: join(dir, `${n}-bpffs`), dir: join(dir, n) }]));

const cleanup = cleanupOnSignals(async () => {
  await Promise.all(children.map((c) => stop(c, 500)));
  for (const m of made.mounts) {
    rmSync(join(m, 'sluice'), { recursive: true, force: true });
    try {
      sh('umount', [m]);
    } catch {
      /* not mounted */
    }
  }
  for (const ns of made.netns.reverse())
    try {
      sh('ip', ['netns', 'delete', ns]);
    } catch {
      /* gone */
    }
  for (const cg of made.cgroups.reverse()) await removeCgroupDir(cg);
  rmSync(dir, { recursive: true, force: true });
});

function spawnChild(argv, out) {
  const fd = out ? openSync(out, 'a') : 'ignore';
  const c = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd] });
  children.push(c);
  return c;
}

/** A pod as a routing CNI wires it: eth0 with its /32 (and /128), default route via a link-local gateway on the node's veth. */
function makePod(n, k, spec) {
  const nn = node[n];
  const ns = `${nn.ns}-q${k}`;
  const ip = `10.77.${nodeIndex(n)}.${10 + k}`;
  const ip6 = `fd00:77:${nodeIndex(n)}::${(10 + k).toString(16)}`;
  const uid = randomUUID();
  const cg = join(nn.cg, `pod${uid}`);
  sh('ip', ['netns', 'add', ns]);
  made.netns.push(ns);
  mkdirSync(cg);
  made.cgroups.push(cg);
  const nsh = (...a) => inNetns(nn.ns, 'ip', a);
  const psh = (...a) => inNetns(ns, 'ip', a);
  nsh('link', 'add', `lxc${k}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
  nsh('addr', 'add', '169.254.1.1/32', 'dev', `lxc${k}`);
  nsh('addr', 'add', 'fd00:244::1/128', 'dev', `lxc${k}`, 'nodad');
  nsh('link', 'set', `lxc${k}`, 'up');
  nsh('route', 'add', `${ip}/32`, 'dev', `lxc${k}`);
  nsh('-6', 'route', 'add', `${ip6}/128`, 'dev', `lxc${k}`);
  psh('link', 'set', 'lo', 'up');
  psh('addr', 'add', `${ip}/32`, 'dev', 'eth0');
  psh('addr', 'add', `${ip6}/128`, 'dev', 'eth0', 'nodad');
  psh('link', 'set', 'eth0', 'up');
  psh('route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
  psh('route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  psh('-6', 'route', 'add', 'fd00:244::1', 'dev', 'eth0');
  psh('-6', 'route', 'add', 'default', 'via', 'fd00:244::1', 'dev', 'eth0');
  return { ...spec, node: n, ns, ip, ip4: ip, ip6, uid, cg };
}

/** A long-lived mesh-client.mjs in `ns` (and `cg`): send() a command, get its answer. */
function driver(ns, cg) {
  const [cmd, ...argv] = nodeInNetns(ns, cg, join(root, 'bench/mesh-client.mjs'));
  const c = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  children.push(c);
  const waiting = [];
  createInterface({ input: c.stdout }).on('line', (l) => waiting.shift()?.(JSON.parse(l)));
  let exited;
  c.on('exit', (code) => ((exited = `client in ${ns} exited ${code}`), waiting.splice(0).forEach((w) => w({ error: exited }))));
  return (cmd) =>
    new Promise((resolve, reject) => {
      if (exited) return reject(new Error(exited));
      waiting.push((r) => (r.error ? reject(new Error(r.error)) : resolve(r.ok)));
      c.stdin.write(JSON.stringify(cmd) + '\n');
    });
}

const lines = (f) => (existsSync(f) ? readFileSync(f, 'utf8').split('\n') : []);
const tunnelsLogged = (peer) => lines(join(node.n2.dir, 'envoy.log')).filter((l) => l.includes(`peer=${peer}`) && l.includes('status=200')).length;

/** n2's Envoy's TLS counters on its tunnel listener, summed over its addresses. */
function tunnelTlsStats() {
  const text = sh('curl', ['-sfG', '--unix-socket', join(node.n2.dir, 'admin.sock'), 'http://admin/stats',
    '--data-urlencode', `filter=^listener\\..*[:_]${MESH_INBOUND_PORT}\\.ssl\\.(handshake|session_reused|connection_error)$`]);
  const sum = (k) => text.split('\n').filter((l) => l.includes(`.ssl.${k}:`)).reduce((a, l) => a + Number(l.split(': ')[1]), 0);
  return { handshakes: sum('handshake'), reused: sum('session_reused'), errors: sum('connection_error') };
}

async function eventually(pred, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await pred()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

try {
  // The nodes and the wire.
  for (const n of NODES) {
    const nn = node[n];
    sh('ip', ['netns', 'add', nn.ns]);
    made.netns.push(nn.ns);
    mkdirSync(nn.cg);
    made.cgroups.push(nn.cg);
    mkdirSync(nn.dir);
    mkdirSync(nn.bpffs);
    sh('mount', ['-t', 'bpf', 'bpf', nn.bpffs]);
    made.mounts.push(nn.bpffs);
    mkdirSync(join(nn.bpffs, 'sluice'));
    inNetns(nn.ns, 'ip', ['link', 'set', 'lo', 'up']);
    inNetns(nn.ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    inNetns(nn.ns, 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
  }
  inNetns(node.n1.ns, 'ip', ['link', 'add', 'wire', 'type', 'veth', 'peer', 'name', 'wire', 'netns', node.n2.ns]);
  for (const n of NODES) {
    const ip = (...a) => inNetns(node[n].ns, 'ip', a);
    ip('addr', 'add', `${WIRE[n].ip4}/24`, 'dev', 'wire');
    ip('addr', 'add', `${WIRE[n].ip6}/64`, 'dev', 'wire', 'nodad');
    ip('link', 'set', 'wire', 'up');
    ip('route', 'add', podCidr(other(n)).ip4, 'via', WIRE[other(n)].ip4);
    ip('-6', 'route', 'add', podCidr(other(n)).ip6, 'via', WIRE[other(n)].ip6);
  }
  const pods = {
    pc: makePod('n1', 1, { name: 'pc', namespace: 'plain', serviceAccount: 'client' }),
    mc: makePod('n1', 2, { name: 'mc', namespace: 'shop', serviceAccount: 'client' }),
    ps: makePod('n2', 1, { name: 'ps', namespace: 'plain', serviceAccount: 'server' }),
    ms: makePod('n2', 2, { name: 'ms', namespace: 'shop', serviceAccount: 'server' }),
  };
  mkdirSync(src);
  writeYaml(src, 'world.yaml', twoNodeObjects({ plain: false, shop: true }, Object.values(pods), MESH_LABEL));

  // The echo servers, in the n2 pods' netns and cgroups.
  const echo = join(dir, 'echo.cjs');
  writeFileSync(echo, `require('http').createServer((q, s) => s.end('ok')).listen(${PORT}, process.argv[2]);`);
  for (const p of [pods.ps, pods.ms]) spawnChild(nodeInNetns(p.ns, p.cg, echo, [p.ip]));

  // The agents with one CA directory, and their Envoys.
  mkdirSync(caDir);
  for (const n of NODES) {
    const nn = node[n];
    const xds = join(nn.dir, 'xds.sock');
    spawnChild(
      ['nsenter', `--net=/var/run/netns/${nn.ns}`, process.execPath, join(root, 'dist/cli.js'), 'agent', '--source', `dir:${src}`, '--node', n, '--socket', xds,
        '--api-socket', join(nn.dir, 'api.sock'), '--state-dir', join(nn.dir, 'state'), '--datapath', '--bpf-dir', join(nn.bpffs, 'sluice'), '--cgroup-dir', nn.cg,
        '--envoy-grace', '1000', '--ca-dir', caDir, '--trust-domain', TD],
      join(nn.dir, 'agent.log'),
    );
    await eventually(() => existsSync(xds), 30_000, `${n}'s agent`);
    const boot = join(nn.dir, 'bootstrap.json');
    // Each Envoy's admin socket in its node's dir: the default path is one for the whole machine.
    const bootstrap = { ...JSON.parse(sh(process.execPath, [join(root, 'bin/sluice.js'), 'bootstrap', '-o', 'json', '--node', n, '--socket', xds, '--health-port', '0'])), admin: { address: { pipe: { path: join(nn.dir, 'admin.sock') } } } };
    writeFileSync(boot, JSON.stringify(bootstrap));
    spawnChild(['nsenter', `--net=/var/run/netns/${nn.ns}`, envoyBin, '-c', boot, '--use-dynamic-base-id', '--concurrency', '1', '--log-level', 'error',
      '--file-flush-interval-msec', '100'], join(nn.dir, 'envoy.log'));
  }

  // SVIDs of the same CA for the handshake rows: the client's, and the Node baseline server's.
  await eventually(() => existsSync(join(caDir, 'ca.key')), 30_000, 'the shared CA');
  const ca = await SpiffeCa.loadOrCreate({ trustDomain: TD, dir: caDir });
  const CLIENT_ID = `spiffe://${TD}/ns/shop/sa/client`;
  const SERVER_ID = `spiffe://${TD}/ns/shop/sa/server`;
  const pem = async (name, spiffeId) => {
    const s = await ca.issueX509Svid(spiffeId, 3600);
    writeFileSync(join(dir, `${name}.crt`), s.certChainPem.join(''));
    writeFileSync(join(dir, `${name}.key`), s.keyPem, { mode: 0o600 });
  };
  await pem('client', CLIENT_ID);
  await pem('server', `spiffe://${TD}/ns/bench/sa/node-tls`);
  writeFileSync(join(dir, 'bundle.crt'), ca.bundle().x509AuthoritiesPem.join(''));
  const baseline = join(dir, 'baseline.cjs');
  writeFileSync(
    baseline,
    `const fs = require('fs'), d = ${JSON.stringify(dir)};
    require('tls').createServer({ cert: fs.readFileSync(d + '/server.crt'), key: fs.readFileSync(d + '/server.key'), ca: fs.readFileSync(d + '/bundle.crt'),
      requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] }, (s) => s.on('error', () => {}).end('x')).on('tlsClientError', () => {}).listen(${NODE_TLS_PORT}, '${WIRE.n2.ip4}');
    require('net').createServer((s) => s.on('error', () => {}).end('x')).listen(${NODE_TCP_PORT}, '${WIRE.n2.ip4}');`,
  );
  spawnChild(nodeInNetns(node.n2.ns, undefined, baseline));

  const plain = driver(pods.pc.ns, pods.pc.cg);
  const meshed = driver(pods.mc.ns, pods.mc.cg);
  const nodeClient = driver(node.n1.ns, undefined);
  const probe = (d, p) => d({ op: 'latency', host: p.ip, port: PORT, n: 1, keepAlive: false });
  await eventually(() => probe(plain, pods.ps), 30_000, 'plain → plain');
  // Meshed only once n2's Envoy logs the tunnel with the client's SPIFFE ID: the flow went through both Envoys.
  await eventually(async () => (await probe(meshed, pods.ms), tunnelsLogged(CLIENT_ID) > 0), 60_000, 'meshed → meshed through the tunnel');

  console.log(`# bench/mesh.mjs on ${machine()}; Envoy --concurrency 1 per node`);
  console.log(`\n## Request latency cross-node, µs (${REQUESTS} requests per path, batches of ${BATCH} interleaved, one client, sequential)\n`);
  console.log('| connection | path                              |    p50 |    p99 | p50 ratio | p99 ratio |');
  console.log('|------------|-----------------------------------|--------|--------|-----------|-----------|');
  const tunnelsBefore = tunnelsLogged(CLIENT_ID);
  for (const keepAlive of [true, false]) {
    const r = { plain: [], meshed: [] };
    for (let done = 0; done < REQUESTS; done += BATCH) {
      const n = Math.min(BATCH, REQUESTS - done);
      r.plain.push(...(await plain({ op: 'latency', host: pods.ps.ip, port: PORT, n, keepAlive })));
      r.meshed.push(...(await meshed({ op: 'latency', host: pods.ms.ip, port: PORT, n, keepAlive })));
    }
    const [d50, d99, m50, m99] = [percentile(r.plain, 50), percentile(r.plain, 99), percentile(r.meshed, 50), percentile(r.meshed, 99)];
    const conn = keepAlive ? 'keep-alive' : 'new each';
    console.log(`| ${conn.padEnd(10)} | plain → plain (direct)            | ${col(d50, 6)} | ${col(d99, 6)} | ${col(1, 9, 2)} | ${col(1, 9, 2)} |`);
    console.log(`| ${conn.padEnd(10)} | meshed → meshed (2 Envoys, mTLS)  | ${col(m50, 6)} | ${col(m99, 6)} | ${col(m50 / d50, 9, 2)} | ${col(m99 / d99, 9, 2)} |`);
  }
  await sleep(300);
  const tunnels = tunnelsLogged(CLIENT_ID) - tunnelsBefore;

  // Rates, in half-second slices taken in turn, so every row sees the same machine (and the same neighbours).
  const slices = Math.max(1, Math.round(SECONDS * 2));
  const sliceMs = (SECONDS * 1000) / slices;
  const tlsTo = (servername) => ({ cert: join(dir, 'client.crt'), key: join(dir, 'client.key'), ca: join(dir, 'bundle.crt'), servername });
  const rows = [
    { key: 'plainNew', label: 'plain → plain pod, new conn + 1 request', d: plain, cmd: { kind: 'http-new', host: pods.ps.ip, port: PORT } },
    { key: 'meshNew', label: 'meshed → meshed pod, new conn + 1 request (a tunnel each, over n1’s pooled TLS conn)', d: meshed, cmd: { kind: 'http-new', host: pods.ms.ip, port: PORT } },
    { key: 'tcp', label: 'n1 → n2 TCP connect to the first byte, Node server', d: nodeClient, cmd: { kind: 'tcp', host: WIRE.n2.ip4, port: NODE_TCP_PORT } },
    { key: 'nodeTls', label: 'n1 → n2 full mTLS handshake, Node tls server, P-256 SVIDs', d: nodeClient, cmd: { kind: 'tls', host: WIRE.n2.ip4, port: NODE_TLS_PORT, tls: tlsTo('node-tls.bench') } },
    { key: 'envoyTls', label: `n1 → n2 full mTLS handshake, n2’s Envoy :${MESH_INBOUND_PORT}, P-256 SVIDs`, d: nodeClient, cmd: { kind: 'tls', host: WIRE.n2.ip4, port: MESH_INBOUND_PORT, tls: tlsTo(meshSni(SERVER_ID)) } },
  ];
  const tlsBefore = tunnelTlsStats();
  const sum = Object.fromEntries(rows.map((r) => [r.key, { count: 0, errors: 0, ms: 0 }]));
  for (let s = 0; s < slices; s++)
    for (const r of rows) {
      const out = await r.d({ op: 'rate', ...r.cmd, ms: sliceMs, concurrency: CONCURRENCY }).catch((e) => ({ count: 0, errors: 1, firstError: e.message, ms: 0 }));
      Object.assign(sum[r.key], { count: sum[r.key].count + out.count, errors: sum[r.key].errors + out.errors, ms: sum[r.key].ms + out.ms, firstError: sum[r.key].firstError ?? out.firstError });
    }
  const tlsAfter = tunnelTlsStats();
  const perS = (k) => (sum[k].count * 1000) / sum[k].ms;
  console.log(`\n## Connections per second cross-node (${SECONDS} s per row in ${slices} interleaved slices, ${CONCURRENCY} in flight, one client process)\n`);
  console.log('| what                                                                                   |    per s | errors | ratio | against         |');
  console.log('|----------------------------------------------------------------------------------------|----------|--------|-------|-----------------|');
  const against = { plainNew: ['plainNew', 'itself'], meshNew: ['plainNew', 'plain new conn'], tcp: ['tcp', 'itself'], nodeTls: ['tcp', 'TCP connect'], envoyTls: ['nodeTls', 'Node tls server'] };
  for (const r of rows) {
    const [base, name] = against[r.key];
    console.log(`| ${r.label.padEnd(86)} | ${col(perS(r.key), 8)} | ${col(sum[r.key].errors, 6)} | ${col(perS(r.key) / perS(base), 5, 2)} | ${name.padEnd(15)} |`);
  }
  console.log(`\nEnvoy mTLS handshake / TCP connect: ${(perS('envoyTls') / perS('tcp')).toFixed(2)}; tunnels n2’s Envoy logged for the latency runs: ${tunnels} (new-each runs alone make ${REQUESTS})`);
  console.log(`n2’s Envoy on :${MESH_INBOUND_PORT} during the rates: ${tlsAfter.handshakes - tlsBefore.handshakes} handshakes (the client counted ${sum.envoyTls.count}), ${tlsAfter.reused - tlsBefore.reused} resumed, ${tlsAfter.errors - tlsBefore.errors} connection errors`);
  const firstErrors = rows.filter((r) => sum[r.key].firstError).map((r) => `${r.key}: ${sum[r.key].firstError}`);
  if (firstErrors.length) console.log(`first errors: ${firstErrors.join('; ')}`);
} catch (e) {
  // The logs go with the temp dir: show what the agents and Envoys said first.
  for (const n of NODES) for (const f of ['agent.log', 'envoy.log']) process.stderr.write(`--- ${n} ${f}\n${lines(join(node[n].dir, f)).slice(-6).join('\n')}\n`);
  throw e;
} finally {
  await cleanup();
}
