// gRPC's own xDS client (grpc-js-xds) as a second, independent consumer of the
// server: LDS -> RDS -> CDS -> EDS, then a real gRPC call to a loopback backend.
import t from 'tap';
import * as grpc from '@grpc/grpc-js';
import { startAgent } from './helpers/agent.js';
import { edsCluster, endpoints } from './helpers/resources.js';
import { assertSplit } from './helpers/stats.js';

const T = 'type.googleapis.com/';
const METHOD = '/sluice.test.Echo/Say';
const identity = (b: Buffer) => b;

function apiListener(name: string, routeName: string): object {
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name,
    api_listener: {
      api_listener: {
        '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
        rds: { route_config_name: routeName, config_source: { ads: {}, resource_api_version: 'V3' } },
        http_filters: [{ name: 'router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } }],
      },
    },
  };
}

function grpcRoute(name: string, domain: string, clusters: Record<string, number>): object {
  return {
    '@type': `${T}envoy.config.route.v3.RouteConfiguration`,
    name,
    virtual_hosts: [
      {
        name: 'echo',
        domains: [domain],
        routes: [
          {
            match: { prefix: '' },
            route: { weighted_clusters: { clusters: Object.entries(clusters).map(([n, weight]) => ({ name: n, weight })) } },
          },
        ],
      },
    ],
  };
}

async function startGrpcBackend(t: Tap.Test, name: string): Promise<number> {
  const server = new grpc.Server();
  server.addService(
    { Say: { path: METHOD, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    { Say: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(`${name}:${call.request}`)) },
  );
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  t.teardown(() => server.forceShutdown());
  return port;
}

t.test('grpc-js-xds resolves xds:/// through sluice and completes calls', async (t) => {
  const one = await startGrpcBackend(t, 'one');
  const two = await startGrpcBackend(t, 'two');
  const agent = await startAgent(
    t,
    {
      'grpc.yaml': [
        apiListener('echo.test', 'echo-route'),
        grpcRoute('echo-route', 'echo.test', { 'echo-one': 75, 'echo-two': 25 }),
        { ...(edsCluster('echo-one') as object), lb_policy: 'ROUND_ROBIN' },
        endpoints('echo-one', [one]),
        { ...(edsCluster('echo-two') as object), lb_policy: 'ROUND_ROBIN' },
        endpoints('echo-two', [two]),
      ],
    },
    { tcp: true },
  );
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: `127.0.0.1:${agent.tcpPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'grpc-client', locality: {} },
  });
  const xds = await import('@grpc/grpc-js-xds');
  xds.register();

  const Client = grpc.makeGenericClientConstructor(
    { Say: { path: METHOD, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    'Echo',
  );
  const client = new Client('xds:///echo.test', grpc.credentials.createInsecure()) as any;
  t.teardown(() => client.close());
  const call = (msg: string) =>
    new Promise<string>((res, rej) =>
      client.Say(Buffer.from(msg), { deadline: Date.now() + 10_000 }, (e: Error | null, r: Buffer) => (e ? rej(e) : res(String(r)))),
    );

  const first = await call('hi');
  t.match(first, /^(one|two):hi$/, 'a gRPC call completed through xDS-resolved routing');
  const counts: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const who = (await call(String(i))).split(':')[0];
    counts[who] = (counts[who] ?? 0) + 1;
  }
  assertSplit(t, counts, { one: 75, two: 25 }, 'weighted clusters applied by gRPC, 75/25');

  const acked = agent.logs.filter((l) => l.msg === 'ACK' && l.node === 'grpc-client').map((l) => l.type.split('.').pop());
  for (const type of ['Listener', 'RouteConfiguration', 'Cluster', 'ClusterLoadAssignment'])
    t.ok(acked.includes(type), `grpc-js-xds ACKed ${type}`);
});
