#!/usr/bin/env node
// The agent's side of Envoy's access logs: how many entries per second the
// ALS receiver (gRPC over the unix socket, decode, map to flows, queue)
// takes, and its CPU per entry. A gRPC client in a child process stands in
// for Envoy, keeping its streams' write buffers full of batches of entries
// as Envoy's buffered logger sends them; a consumer drains the queue as the
// flow ring would.
//
//   node bench/als.mjs [--seconds 10] [--batch 50] [--inflight 4]
//
// Uses dist/: `npm run build` first.
import { credentials } from '@grpc/grpc-js';
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { flags, machine, root } from './lib.mjs';

const opt = flags({ seconds: '10', batch: '50', inflight: '4' });
const { AccessLogReceiver } = await import(join(root, 'dist/observe/als-server.js'));
const { XdsServer } = await import(join(root, 'dist/xds/server.js'));
const { SnapshotCache } = await import(join(root, 'dist/xds/snapshot-cache.js'));
const { accessLogName } = await import(join(root, 'dist/translate/access-log.js'));
const { AccessLogServiceClient, StreamAccessLogsMessage } = await import(join(root, 'dist/gen/envoy/service/accesslog/v3/als.js'));

const sock = (address, portValue) => ({ socketAddress: { address, portValue } });
const entry = (i) => ({
  commonProperties: {
    startTime: new Date(),
    downstreamRemoteAddress: sock('10.250.1.2', 30000 + (i % 30000)),
    downstreamLocalAddress: sock('10.250.2.2', 80),
    timeToLastDownstreamTxByte: { seconds: '0', nanos: 250000 },
    responseFlags: {},
  },
  protocolVersion: 2,
  request: { requestMethod: 1, authority: '10.250.2.2', path: `/v1/items/${i % 1000}`, requestHeadersBytes: '120' },
  response: { responseCode: 200, responseCodeDetails: 'via_upstream' },
});

if (opt.client) {
  const batch = Number(opt.batch);
  const message = StreamAccessLogsMessage.fromPartial({ httpLogs: { logEntry: Array.from({ length: batch }, (_, i) => entry(i)) } });
  const client = new AccessLogServiceClient(`unix://${opt.client}`, credentials.createInsecure());
  const streams = Array.from({ length: Number(opt.inflight) }, (_, k) => {
    const call = client.streamAccessLogs(() => {});
    call.write(StreamAccessLogsMessage.fromPartial({ identifier: { node: { id: 'bench' }, logName: accessLogName({ direction: 'ingress', proxyPort: 10000 + k, listener: `l${k}` }) } }));
    return call;
  });
  const deadline = Date.now() + Number(opt.seconds) * 1000;
  await Promise.all(
    streams.map(
      (call) =>
        new Promise((resolve) => {
          const pump = () => {
            while (Date.now() < deadline) if (!call.write(message)) return void call.once('drain', pump);
            resolve();
          };
          pump();
        }),
    ),
  );
  for (const s of streams) s.end();
  await new Promise((r) => setTimeout(r, 200));
  client.close();
  process.exit(0);
}

const log = pino({ level: 'silent' });
const dir = mkdtempSync(join(tmpdir(), 'sluice-als-bench-'));
const receiver = new AccessLogReceiver({ nodeName: 'bench', log, capacity: 1 << 16 });
let consumed = 0;
receiver.subscribe((b) => (consumed += b.length));
const server = new XdsServer({ cache: new SnapshotCache(), log, socketPath: join(dir, 'xds.sock'), services: [receiver.service()] });
await server.start();

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const child = fork(new URL(import.meta.url).pathname, ['--client', join(dir, 'xds.sock'), '--seconds', opt.seconds, '--batch', opt.batch, '--inflight', opt.inflight]);
await new Promise((r) => child.on('exit', r));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
const c = receiver.counts;
const cpuUs = cpu.user + cpu.system;
console.log(machine());
console.log(`batches of ${opt.batch} entries on ${opt.inflight} streams for ${opt.seconds} s`);
console.log(`received ${c.received} entries in ${secs.toFixed(1)} s: ${Math.round(c.received / secs)} entries/s; consumed ${consumed}, lost ${c.lost}, unmapped ${c.unmapped}`);
console.log(`agent side: CPU ${(cpuUs / 1e6).toFixed(1)} s (${Math.round((100 * cpuUs) / 1e6 / secs)}% of a core), ${(cpuUs / c.received).toFixed(1)} µs per entry; RSS ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB`);
await server.stop();
rmSync(dir, { recursive: true, force: true });
