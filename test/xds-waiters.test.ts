// What one stream's status change costs the ACK waiters: only its own node's
// waiters look at it, and only its verdict is recomputed. Pure: streams are
// plain objects whose per-type ACK state the test sets by hand.
import t from 'tap';
import { anyFromJson } from '../src/proto/any.js';
import { TypeUrl } from '../src/resources/types.js';
import { Snapshot } from '../src/xds/snapshot.js';
import { SnapshotCache, type CacheStream, type StreamStatus } from '../src/xds/snapshot-cache.js';
import type { TypeAck } from '../src/xds/ack-verdict.js';
import { edsCluster } from './helpers/resources.js';

class Stream implements CacheStream {
  readonly types = new Map<string, TypeAck>();
  statusCalls = 0;
  constructor(readonly nodeId: string) {}
  status(): StreamStatus {
    this.statusCalls++;
    return { nodeId: this.nodeId, types: this.types };
  }
  onSnapshot(): void {}
  take(version: number, nack?: string): void {
    const n = nack ? { nodeId: this.nodeId, typeUrl: TypeUrl.Cluster, version, nonce: '1', message: nack, resourceNames: ['a'] } : undefined;
    this.types.set(TypeUrl.Cluster, { currentThrough: version, ackedThrough: nack ? 0 : version, nack: n });
  }
}

function setup(perNode: number) {
  const cache = new SnapshotCache();
  const v = cache.setSnapshot('*', Snapshot.fromAnys([anyFromJson(edsCluster('a'))]));
  const mine = Array.from({ length: perNode }, () => new Stream('n'));
  const others = Array.from({ length: perNode }, () => new Stream('other'));
  for (const s of [...mine, ...others]) cache.attach(s);
  const calls = (ss: Stream[]) => ss.reduce((sum, s) => sum + s.statusCalls, 0);
  const reset = () => [...mine, ...others].forEach((s) => (s.statusCalls = 0));
  return { cache, v, mine, others, calls, reset };
}

t.test('a status change reads only the changed stream, once per waiter of its node', async (t) => {
  const N = 200;
  const { cache, v, mine, others, calls, reset } = setup(N);
  let outcome = 'pending';
  cache.waitForAck('n', v + 1, 5000).then(() => (outcome = 'accepted'), (e: Error) => (outcome = e.message));
  cache.waitForAck('other', v + 1, 5000).catch(() => undefined);
  reset();
  // Every stream of the node answers twice without settling the waiter.
  for (let round = 0; round < 2; round++) for (const s of mine) { s.take(v); cache.statusChanged(s); }
  t.equal(calls(mine), 2 * N, 'one status() per change, not one per stream of the node per change');
  t.equal(calls(others), 0, "another node's streams are not read");
  t.equal(outcome, 'pending');
  mine[N - 1].take(v + 1);
  cache.statusChanged(mine[N - 1]);
  await Promise.resolve();
  t.equal(outcome, 'accepted', 'the cached verdicts of the others plus the new one decide');
});

t.test('cached verdicts: rejected only when every stream rejects, a leaving stream no longer counts', async (t) => {
  const { cache, v, mine } = setup(3);
  const outcome = cache.waitForAck('n', v, 5000).then(() => 'accepted', (e: Error) => e.message);
  mine[0].take(v, 'bad');
  cache.statusChanged(mine[0]);
  mine[1].take(v, 'bad too');
  cache.statusChanged(mine[1]);
  let settled = false;
  void outcome.then(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  t.notOk(settled, 'one stream has not answered yet');
  cache.detach(mine[2]);
  t.match(await outcome, /rejected .*Cluster version .*bad/, 'once it is gone, every remaining stream has rejected');
});
