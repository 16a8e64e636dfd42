// The access-log-to-flow mapping and the receiver's bounds, without Envoy
// (observe-als.test.ts and mesh-envoy.test.ts drive a real one).
import { credentials } from '@grpc/grpc-js';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import t from 'tap';
import { RequestMethod } from '../src/gen/envoy/config/core/v3/base.js';
import { HTTPAccessLogEntry, HTTPAccessLogEntry_HTTPVersion, TCPAccessLogEntry } from '../src/gen/envoy/data/accesslog/v3/accesslog.js';
import { AccessLogServiceClient, StreamAccessLogsMessage } from '../src/gen/envoy/service/accesslog/v3/als.js';
import { authoritySocket, httpEntryToFlow, tcpEntryToFlow } from '../src/observe/als-flow.js';
import { AccessLogReceiver } from '../src/observe/als-server.js';
import type { Flow } from '../src/observe/flow.js';
import { accessLogName, parseAccessLogName } from '../src/translate/access-log.js';
import { SnapshotCache } from '../src/xds/snapshot-cache.js';
import { XdsServer } from '../src/xds/server.js';
import { eventually } from './helpers/envoy.js';

const log = pino({ level: 'silent' });
const sock = (address: string, portValue: number) => ({ socketAddress: { address, portValue } });
const A_ID = 'spiffe://td.test/ns/default/sa/a';

/** An entry as the mesh inbound listener logs a tunnel: CONNECT over mTLS, the destination in the authority. */
const tunnelEntry = (code: number, details: string) =>
  HTTPAccessLogEntry.fromPartial({
    protocolVersion: HTTPAccessLogEntry_HTTPVersion.HTTP2,
    commonProperties: {
      startTime: new Date('2026-11-30T01:00:00Z'),
      downstreamRemoteAddress: sock('fd00:77::1', 40000),
      downstreamLocalAddress: sock('fd00:77::2', 15008),
      timeToLastDownstreamTxByte: { seconds: '1', nanos: 500 },
      tlsProperties: { peerCertificateProperties: { subjectAltName: [{ dns: 'a.example' }, { uri: A_ID }] } },
    },
    request: { requestMethod: RequestMethod.CONNECT, authority: '[fd00:250:2::2]:8080' },
    response: { responseCode: code, responseCodeDetails: details },
  });

t.test('a tunnel entry: the peer SPIFFE ID, the CONNECT authority as the destination, RBAC DENY as POLICY_DENIED', async (t) => {
  const origin = parseAccessLogName(accessLogName({ direction: 'ingress', proxyPort: 15008, listener: 'sluice-mesh-inbound' }));
  const ok = httpEntryToFlow(tunnelEntry(200, 'via_upstream'), origin, 'n2')!;
  t.match(ok, {
    verdict: 'FORWARDED',
    trafficDirection: 'INGRESS',
    proxyPort: 15008,
    sourceSpiffeId: A_ID,
    ip: { source: 'fd00:77::1', destination: 'fd00:250:2::2', ipVersion: 'IPv6' },
    l4: { protocol: 'TCP', sourcePort: 40000, destinationPort: 8080 },
    l7: { type: 'RESPONSE', latencyNs: 1_000_000_500n, http: { code: 200, method: 'CONNECT', protocol: 'HTTP/2' } },
  });
  t.equal(ok.timeNs, BigInt(Date.parse('2026-11-30T01:00:00Z')) * 1_000_000n + 1_000_000_500n, 'the time is when the response ended');
  t.notOk(ok.dropReason);
  const denied = httpEntryToFlow(tunnelEntry(403, 'rbac_access_denied_matched_policy[deny-0]'), origin, 'n2')!;
  t.match(denied, { verdict: 'DROPPED', dropReason: 'POLICY_DENIED', sourceSpiffeId: A_ID });
  // A 403 the upstream sent is the upstream's answer, not a policy drop.
  t.match(httpEntryToFlow(tunnelEntry(403, 'via_upstream'), origin, 'n2'), { verdict: 'FORWARDED', l7: { http: { code: 403 } } });
});

t.test('entries sluice did not configure, and ones without a response', async (t) => {
  const bare = HTTPAccessLogEntry.fromPartial({
    commonProperties: { downstreamRemoteAddress: sock('10.0.0.1', 1234), downstreamLocalAddress: sock('10.0.0.2', 80), duration: { seconds: '0', nanos: 42 } },
    request: { requestMethod: RequestMethod.GET, authority: 'web', path: '/x' },
  });
  const f = httpEntryToFlow(bare, parseAccessLogName('someone-elses-log'), 'n')!;
  t.match(f, { verdict: 'ERROR', trafficDirection: 'TRAFFIC_DIRECTION_UNKNOWN', l7: { latencyNs: 42n, http: { code: 0, method: 'GET', url: 'http://web/x' } } }, 'no response code: ERROR; a foreign log name: direction unknown');
  t.notOk(f.proxyPort);
  t.notOk(f.sourceSpiffeId, 'no TLS, no SPIFFE ID');
  t.equal(httpEntryToFlow(HTTPAccessLogEntry.fromPartial({}), undefined, 'n'), undefined, 'an entry without request properties makes no flow');
});

t.test('a TCP proxy entry: an L4 flow, ERROR when no upstream took it', async (t) => {
  const origin = { direction: 'egress' as const, proxyPort: 15001, listener: 'sluice-mesh-outbound' };
  const tcp = (flags: object) =>
    TCPAccessLogEntry.fromPartial({ commonProperties: { downstreamRemoteAddress: sock('10.250.1.2', 5555), downstreamLocalAddress: sock('10.250.2.2', 80), responseFlags: flags } });
  t.match(tcpEntryToFlow(tcp({}), origin, 'n1'), { type: 'L3_L4', verdict: 'FORWARDED', trafficDirection: 'EGRESS', proxyPort: 15001, ip: { source: '10.250.1.2', destination: '10.250.2.2' }, l4: { sourcePort: 5555, destinationPort: 80 } });
  t.match(tcpEntryToFlow(tcp({ upstreamConnectionFailure: true }), origin, 'n1'), { verdict: 'ERROR' });
  t.equal(tcpEntryToFlow(TCPAccessLogEntry.fromPartial({ commonProperties: {} }), origin, 'n1'), undefined, 'no addresses, no flow');
});

t.test('log names round-trip, listener names with separators included; authorities that are host names are no address', async (t) => {
  const o = { direction: 'egress' as const, proxyPort: 12345, listener: 'policy/egress/300|x/tcp/80' };
  t.same(parseAccessLogName(accessLogName(o)), o);
  t.equal(parseAccessLogName('sluice-als|sideways|1|x'), undefined);
  t.same(authoritySocket('10.1.2.3:80'), { ip: '10.1.2.3', port: 80 });
  t.same(authoritySocket('[fd00::1]:443'), { ip: 'fd00::1', port: 443 });
  t.equal(authoritySocket('web.default:80'), undefined);
  t.equal(authoritySocket('10.1.2.3'), undefined);
});

t.test('the receiver over gRPC: a stream names its listener once; beyond the queue, flows are dropped and counted', async (t) => {
  const receiver = new AccessLogReceiver({ nodeName: 'node-x', log, capacity: 3 });
  const server = new XdsServer({ cache: new SnapshotCache(), log, tcpAddress: '127.0.0.1:0', services: [receiver.service()] });
  const { tcpPort } = await server.start();
  t.teardown(() => server.stop());
  const client = new AccessLogServiceClient(`127.0.0.1:${tcpPort}`, credentials.createInsecure());
  t.teardown(() => client.close());
  const entry = (path: string) =>
    HTTPAccessLogEntry.fromPartial({
      commonProperties: { downstreamRemoteAddress: sock('10.0.0.1', 1), downstreamLocalAddress: sock('10.0.0.2', 80) },
      request: { requestMethod: RequestMethod.POST, path },
      response: { responseCode: 201 },
    });
  const done = new Promise<void>((resolve, reject) => {
    const call = client.streamAccessLogs((err) => (err ? reject(err) : resolve()));
    call.write(StreamAccessLogsMessage.fromPartial({ identifier: { node: { id: 'envoy-node' }, logName: accessLogName({ direction: 'ingress', proxyPort: 4242, listener: 'l' }) }, httpLogs: { logEntry: [entry('/1'), entry('/2')] } }));
    call.write(StreamAccessLogsMessage.fromPartial({ httpLogs: { logEntry: [entry('/3'), entry('/4'), entry('/5')] } }));
    call.end();
  });
  await done;
  t.same(receiver.counts, { received: 5, lost: 2, unmapped: 0 }, 'five entries, a queue of three: two lost, counted');
  const registry = new Registry();
  receiver.registerMetrics(registry);
  const text = await registry.metrics();
  t.match(text, /^sluice_observe_access_log_entries_total 5$/m, 'the entries on /metrics');
  t.match(text, /^sluice_observe_access_log_lost_total 2$/m, '...and the loss, never silent');
  const flows: Flow[] = [];
  const lostEvents: { source: string; count: number }[] = [];
  receiver.subscribe((b) => flows.push(...b));
  receiver.subscribeEvents((e) => 'lost' in e && lostEvents.push(e.lost));
  await eventually(() => flows.length === 3, 5000, 'the queued flows');
  t.same(lostEvents, [{ source: 'OBSERVER_EVENTS_QUEUE', count: 2 }], 'event consumers hear of the loss, under Hubble\'s source name');
  t.same(flows.map((f) => f.l7?.http?.url), ['http://10.0.0.2:80/1', 'http://10.0.0.2:80/2', 'http://10.0.0.2:80/3'], 'the first three, in order');
  t.ok(flows.every((f) => f.nodeName === 'node-x' && f.proxyPort === 4242 && f.trafficDirection === 'INGRESS'), 'each carries what the stream named once');
  receiver.push(flows[0]);
  await eventually(() => flows.length === 4, 5000, 'a flow pushed once drained');
  t.equal(receiver.counts.lost, 2, 'room again once drained');
  t.equal(lostEvents.length, 1, 'and no loss reported twice');
});
