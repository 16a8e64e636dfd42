// Which objects a NACK is pinned on, alone.
import t from 'tap';
import { anyFromJson } from '../src/proto/any.js';
import type { ObjectTranslation } from '../src/translate/output.js';
import { TypeUrl } from '../src/resources/types.js';
import { changedSince, namedCulprits } from '../src/agent/nack-blame.js';
import { edsCluster, listener } from './helpers/resources.js';

const unit = (object: string, ...docs: object[]): ObjectTranslation => ({ object, resources: docs.map((d) => anyFromJson(d)), redirects: [], issues: [] });
const nack = (typeUrl: string, message: string, resourceNames: string[]) => ({ nodeId: 'n', typeUrl, version: 2, nonce: '3', message, resourceNames });

t.test('a culprit is an object whose sent resource the message names as a whole word', async (t) => {
  const a = unit('A', edsCluster('a'));
  const ab = unit('AB', edsCluster('a-b'));
  const l = unit('L', listener('listener', 10080, 'r'));
  const all = [a, ab, l];
  const cds = (msg: string) => namedCulprits(all, nack(TypeUrl.Cluster, msg, ['a', 'a-b'])).map((u) => u.object);
  t.same(cds("cluster provided LB specified but cluster 'a-b' has no lb config"), ['AB'], "'a' inside 'a-b' is not 'a'");
  t.same(cds('Error adding/updating cluster(s) a: bad'), ['A'], "a name before Envoy's colon");
  t.same(cds('missing ): (unclosed'), [], 'a message naming nothing names no one');
  t.same(namedCulprits(all, nack(TypeUrl.Listener, 'Error adding/updating listener(s) listener: port taken', ['listener'])).map((u) => u.object), ['L']);
  t.same(namedCulprits(all, nack(TypeUrl.Listener, "route to cluster 'a' has no cluster", ['listener'])).map((u) => u.object), [], 'only resources of the rejected type');
  t.same(namedCulprits(all, nack(TypeUrl.Cluster, "cluster 'a' is bad", ['a-b'])).map((u) => u.object), [], 'only resources that went out in the rejected response');
});

t.test('changed since the last ACK: new resources or different ones; a new object without resources has not changed', async (t) => {
  const accepted = new Map([['A', unit('A', edsCluster('a'))]]);
  const now = [unit('A', edsCluster('a')), unit('B', edsCluster('b')), unit('Svc'), { ...unit('A2', edsCluster('a2')) }];
  t.same(changedSince(accepted, now).map((u) => u.object), ['B', 'A2']);
  t.same(changedSince(accepted, [unit('A', { ...(edsCluster('a') as object), connect_timeout: '9s' })]).map((u) => u.object), ['A']);
});
