// The rules deciding whether a node holds a snapshot version, alone.
import t from 'tap';
import { nodeVerdict, streamVerdict, VerdictTally, type TypeAck, type Verdict } from '../src/xds/ack-verdict.js';
import { TypeUrl } from '../src/resources/types.js';

const nack = { nodeId: 'n', typeUrl: TypeUrl.Cluster, version: 5, nonce: '9', message: 'bad', resourceNames: ['c'] };
const ack = (currentThrough: number, ackedThrough: number, rejected = false): TypeAck => ({ currentThrough, ackedThrough, nack: rejected ? nack : undefined });
const types = (entries: [string, TypeAck][]) => new Map(entries);

t.test('a stream accepts a version once every subscribed type has ACKed it', async (t) => {
  t.same(streamVerdict(types([[TypeUrl.Cluster, ack(5, 5)], [TypeUrl.Listener, ack(5, 5)]]), 5, []), { kind: 'accepted' });
  t.same(streamVerdict(types([[TypeUrl.Cluster, ack(5, 5)], [TypeUrl.Listener, ack(5, 4)]]), 5, []), { kind: 'pending' }, 'one type behind');
  t.same(streamVerdict(types([[TypeUrl.Cluster, ack(9, 7)]]), 6, []), { kind: 'accepted' }, 'a newer response in flight does not undo an ACK that covers the version');
});

t.test('a type the stream never subscribed to is not accepted for it', async (t) => {
  t.same(streamVerdict(types([[TypeUrl.Cluster, ack(5, 5)]]), 5, [TypeUrl.Cluster, TypeUrl.Listener]), { kind: 'pending' });
  t.same(streamVerdict(types([]), 5, []), { kind: 'accepted' }, 'with nothing required, a stream with no subscriptions has nothing to refuse');
});

t.test('a NACK rejects the versions its response carried, not older ones it already ACKed', async (t) => {
  t.same(streamVerdict(types([[TypeUrl.Cluster, ack(5, 3, true)]]), 5, []), { kind: 'rejected', nack });
  t.same(streamVerdict(types([[TypeUrl.Cluster, ack(5, 3, true)]]), 3, []), { kind: 'accepted' });
  t.same(streamVerdict(types([[TypeUrl.Cluster, ack(4, 3, true)]]), 5, []), { kind: 'pending' }, 'a version not sent yet is not rejected by an older NACK');
});

t.test('a node accepts when any stream does and rejects only when all do', async (t) => {
  const a = { kind: 'accepted' } as const;
  const r = { kind: 'rejected', nack } as const;
  const p = { kind: 'pending' } as const;
  t.same(nodeVerdict([r, a]), a);
  t.same(nodeVerdict([r, p]), p, 'a stream still answering may yet accept');
  t.same(nodeVerdict([r, r]), r);
  t.same(nodeVerdict([]), p, 'no stream, no verdict');
});

t.test('a tally kept per stream agrees with the node verdict over its streams at every step', async (t) => {
  const kinds: Verdict[] = [{ kind: 'accepted' }, { kind: 'rejected', nack }, { kind: 'pending' }];
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const tally = new VerdictTally<number>();
  const streams = new Map<number, Verdict>();
  let disagreements = 0;
  for (let step = 0; step < 5000; step++) {
    const s = rand(4);
    const op = rand(10);
    if (op === 0) (tally.clear(), streams.clear());
    else if (op < 3) (tally.delete(s), streams.delete(s));
    else {
      const v = kinds[rand(3)];
      tally.set(s, v);
      streams.set(s, v);
    }
    if (tally.verdict().kind !== nodeVerdict([...streams.values()]).kind) disagreements++;
  }
  t.equal(disagreements, 0);
  tally.clear();
  tally.set(1, kinds[1]);
  tally.set(1, kinds[0]);
  t.same(tally.verdict(), kinds[0], "a stream's new verdict replaces its old one");
  tally.set(2, kinds[1]);
  tally.delete(1);
  t.same(tally.verdict(), kinds[1], 'the last stream standing rejected it');
});
