import t from 'tap';
import { anyFromJson, anyToJson, unpackAny, packAny } from '../src/proto/any.js';
import { ProtoJsonError } from '../src/proto/json.js';

const listenerSnake = {
  '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener',
  name: 'l1',
  address: { socket_address: { address: '127.0.0.1', port_value: 10000 } },
  filter_chains: [
    {
      filters: [
        {
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
            stat_prefix: 'in',
            stream_idle_timeout: '1.5s',
            rds: { route_config_name: 'r1', config_source: { ads: {}, resource_api_version: 'V3' } },
            http_filters: [{ name: 'router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
          },
        },
      ],
    },
  ],
  per_connection_buffer_limit_bytes: 32768,
};

t.test('snake_case and camelCase JSON give the same bytes', async (t) => {
  const a = anyFromJson(listenerSnake);
  t.equal(a.typeUrl, 'type.googleapis.com/envoy.config.listener.v3.Listener');
  const camel = anyToJson(a);
  t.equal((camel as any).filterChains[0].filters[0].typedConfig.streamIdleTimeout, '1.500s');
  t.equal((camel as any).perConnectionBufferLimitBytes, 32768);
  const b = anyFromJson(camel);
  t.same(Buffer.from(b.value), Buffer.from(a.value), 'binary identical after JSON round trip');
});

t.test('binary Any round trip keeps nested typed_config', async (t) => {
  const a = anyFromJson(listenerSnake);
  const { typeName, message } = unpackAny<any>(a);
  t.equal(typeName, 'envoy.config.listener.v3.Listener');
  const hcmAny = message.filterChains[0].filters[0].typedConfig;
  t.equal(hcmAny.typeUrl, 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
  const hcm = unpackAny<any>(hcmAny).message;
  t.equal(hcm.rds.routeConfigName, 'r1');
  t.same(hcm.streamIdleTimeout, { seconds: '1', nanos: 500000000 });
  const again = packAny(typeName, message);
  t.same(Buffer.from(again.value), Buffer.from(a.value));
});

t.test('unknown fields are errors that name the field path', async (t) => {
  const bad = structuredClone(listenerSnake) as any;
  bad.filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.bogus_field = 1;
  let err: unknown;
  try {
    anyFromJson(bad, 'l1');
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ProtoJsonError, 'a ProtoJsonError');
  t.match(String(err), /filter_chains\[0\]\.filters\[0\]\.typed_config\.http_filters\[0\]\.typed_config\.bogus_field/);
  t.match(String(err), /unknown field "bogus_field" in envoy\.extensions\.filters\.http\.router\.v3\.Router/);
});

t.test('bad values and unknown @type are errors', async (t) => {
  t.throws(() => anyFromJson({ '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: 'c', connect_timeout: 5 }), /connect_timeout: want a duration/);
  t.throws(() => anyFromJson({ '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: 'c', type: 'NOPE' }), /unknown envoy\.config\.cluster\.v3\.Cluster\.DiscoveryType value "NOPE"/);
  t.throws(() => anyFromJson({ '@type': 'type.googleapis.com/envoy.config.nope.v3.Thing', name: 'x' }), /unknown @type/);
  t.throws(() => anyFromJson({ '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: 'c', per_connection_buffer_limit_bytes: -1 }), /non-negative/);
  t.throws(() => anyFromJson({ '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: 'c', connectTimeout: '1s', connect_timeout: '2s' }), /set twice/);
});
