// Resources encoded once and spliced behind each response's own fields decode
// to exactly the response encoded whole.
import t from 'tap';
import { anyFromJson } from '../src/proto/any.js';
import { DeltaDiscoveryResponse, DiscoveryResponse, Resource } from '../src/gen/envoy/service/discovery/v3/discovery.js';
import { EncodedResources, serializeDeltaDiscoveryResponse, serializeDiscoveryResponse, withEncodedResources } from '../src/xds/encoded-resources.js';
import { edsCluster } from './helpers/resources.js';

const anys = [anyFromJson(edsCluster('a')), anyFromJson(edsCluster('b'))];
const head = (nonce: string) => DiscoveryResponse.fromPartial({ versionInfo: '7', typeUrl: anys[0].typeUrl, nonce, controlPlane: { identifier: 'sluice' } });

t.test('spliced responses decode to the whole response, and the resources are encoded once per key', async (t) => {
  const enc = new EncodedResources();
  let encodings = 0;
  const resources = () => (encodings++, anys);
  for (const nonce of ['1', '2']) {
    const wire = serializeDiscoveryResponse(withEncodedResources(head(nonce), enc.get('k', resources)));
    t.same(DiscoveryResponse.decode(wire), { ...head(nonce), resources: anys }, `stream with nonce ${nonce}`);
    t.equal(wire.length, DiscoveryResponse.encode({ ...head(nonce), resources: anys }).finish().length, 'as long as a whole encoding: only the field order differs');
  }
  t.equal(encodings, 1, 'the second stream reuses the bytes');
  t.same(DiscoveryResponse.decode(serializeDiscoveryResponse(head('3'))).resources, [], 'a plain response still serializes');
});

t.test('the cache is bounded in bytes and drops the least recently used key', async (t) => {
  const size = new EncodedResources().get('probe', () => anys).length;
  const enc = new EncodedResources(2 * size);
  let encodings = 0;
  const resources = () => (encodings++, anys);
  enc.get('a', resources);
  enc.get('b', resources);
  enc.get('a', resources);
  enc.get('c', resources);
  t.equal(encodings, 3);
  enc.get('a', resources);
  t.equal(encodings, 3, 'a was used recently and stays');
  enc.get('b', resources);
  t.equal(encodings, 4, 'b was dropped');
  const tiny = new EncodedResources(size - 1);
  tiny.get('big', resources);
  tiny.get('big', resources);
  t.equal(encodings, 6, 'what exceeds the budget alone is encoded every time, never kept');
});

t.test('delta responses with each resource spliced in decode to the whole response', async (t) => {
  const resources = anys.map((any, i) => Resource.fromPartial({ name: `r${i}`, version: `v${i}`, resource: any }));
  const fields = resources.map((r) => DeltaDiscoveryResponse.encode(DeltaDiscoveryResponse.fromPartial({ resources: [r] })).finish());
  const head = DeltaDiscoveryResponse.fromPartial({ systemVersionInfo: '3', typeUrl: anys[0].typeUrl, nonce: '5', removedResources: ['gone'] });
  const wire = serializeDeltaDiscoveryResponse(withEncodedResources(head, fields));
  t.same(DeltaDiscoveryResponse.decode(wire), { ...head, resources });
  t.same(DeltaDiscoveryResponse.decode(serializeDeltaDiscoveryResponse(withEncodedResources(head, []))), head, 'no resources: the head alone');
});
