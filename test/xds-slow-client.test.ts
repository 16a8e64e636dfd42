// A client that stops reading must not grow the xDS server: at most one response
// per type is in flight per stream, and a stream that catches up gets the latest
// state. The server runs in a process of its own (dist/, so `npm run build` first)
// so its resident memory is measured without the client's.
import t from 'tap';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unpackAny } from '../src/proto/any.js';
import { TypeUrl } from '../src/resources/types.js';
import { adsClient, delta, deltaRequest, request, sotw } from './helpers/ads-client.js';
import { eventually } from './helpers/envoy.js';

const CLUSTERS = 100;
const SNAPSHOTS = 10_000;
const BATCH = 1_000;
// How long the client stays paused at least, beyond the time the publishing takes.
const PAUSE_MS = 5_000;
// Generous: today a few MiB of garbage the GC has not returned is fine, a queue of responses is not.
const MAX_GROWTH = 24 * 2 ** 20;
const helper = new URL('./helpers/xds-load-server.mjs', import.meta.url).pathname;
const names = Array.from({ length: CLUSTERS }, (_, i) => `svc-${i}`);
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

interface Report {
  ready?: boolean;
  version: number;
  rss: number;
}

t.test('a stalled client while 10,000 snapshots are published: flat server memory, then the latest state', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-slow-'));
  const socketPath = join(dir, 'xds.sock');
  const child: ChildProcess = fork(helper, [socketPath, String(CLUSTERS)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  let exited: Error | undefined;
  child.once('exit', (code) => (exited = new Error(`the xDS server process exited with ${code}`)));
  const next = () =>
    new Promise<Report>((resolve, reject) => {
      if (exited) reject(exited);
      child.once('message', (m) => resolve(m as Report));
    });
  const ask = (m: object) => {
    const reply = next();
    child.send(m);
    return reply;
  };
  const ready = await next();
  t.ok(ready.ready, 'the server process is up');

  const client = adsClient(t, socketPath);
  const s = sotw(t, client);
  const d = delta(t, client);
  let acking = true;
  s.each((r) => {
    if (acking) s.send(request({ typeUrl: r.typeUrl, versionInfo: r.versionInfo, responseNonce: r.nonce, resourceNames: r.typeUrl === TypeUrl.ClusterLoadAssignment ? names : [] }));
  });
  d.each((r) => {
    if (acking) d.send(deltaRequest({ typeUrl: r.typeUrl, responseNonce: r.nonce }));
  });
  s.send(request({ node: { id: 'slow-sotw' } as any, typeUrl: TypeUrl.Cluster }));
  s.send(request({ node: { id: 'slow-sotw' } as any, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: names }));
  d.send(deltaRequest({ node: { id: 'slow-delta' } as any, typeUrl: TypeUrl.Cluster }));
  d.send(deltaRequest({ node: { id: 'slow-delta' } as any, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: names }));
  const has = (version: number) => () =>
    [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment].every(
      (type) =>
        s.received.some((r) => r.typeUrl === type && r.versionInfo === String(version)) &&
        d.received.some((r) => r.typeUrl === type && r.systemVersionInfo === String(version)),
    );
  await eventually(has(ready.version), 10_000, 'both clients to get the first snapshot');

  acking = false;
  s.pause();
  d.pause();
  const paused = Date.now();
  const before = (await ask({ rss: true })).rss;
  let last = { version: ready.version, rss: before };
  for (let n = 0; n < SNAPSHOTS; n += BATCH) {
    last = await ask({ publish: BATCH });
    // Stop early once the bound is broken: an unbounded server would otherwise take the machine's memory.
    if (last.rss - before > MAX_GROWTH) break;
  }
  const published = last.version - ready.version;
  t.comment(`server RSS ${mib(before)} before, ${mib(last.rss)} after ${published} snapshots (growth ${mib(last.rss - before)})`);
  t.equal(published, SNAPSHOTS, `all ${SNAPSHOTS} snapshots were published`);
  t.ok(last.rss - before < MAX_GROWTH, `the server's RSS grew ${mib(last.rss - before)} while the client was stalled (bound ${mib(MAX_GROWTH)})`);
  const wait = PAUSE_MS - (Date.now() - paused);
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  t.ok((await ask({ rss: true })).rss - before < MAX_GROWTH, 'and stays within it while the client stays stalled');

  acking = true;
  const seen = { sotw: s.received.length, delta: d.received.length };
  s.resume();
  d.resume();
  await eventually(has(last.version), 20_000, 'both clients to get the latest snapshot');
  t.pass(`after resuming, both clients got version ${last.version}`);
  const got = { sotw: s.received.length - seen.sotw, delta: d.received.length - seen.delta };
  t.ok(got.sotw < 20 && got.delta < 20, `the backlog was coalesced: ${got.sotw} SotW and ${got.delta} delta responses after resuming`);

  // The newest snapshot changed svc-k's connect timeout; the client must hold that one.
  const k = (last.version - 1) % CLUSTERS;
  const final = [...s.received].reverse().find((r) => r.typeUrl === TypeUrl.Cluster)!;
  const svc = final.resources.map((a) => unpackAny<any>(a).message).find((c) => c.name === `svc-${k}`);
  t.equal(Number(svc?.connectTimeout?.seconds), 1 + (last.version % 1000), 'the SotW client holds the newest content');
  child.send({ stop: true });
});
