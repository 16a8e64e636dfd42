// The observe room's pure parts: Hubble's FlowFilter semantics over our
// flows, hubble's flags as filters, GetFlows' history window, the ring, the
// enrichment from model and policy, and a slow follower's bounded queue.
import t from 'tap';
import { EventEmitter } from 'node:events';
import { FlowFilter } from '../src/gen/hubble/flow/flow.js';
import { GetFlowsRequest, type GetFlowsResponse } from '../src/gen/hubble/observer/observer.js';
import { enrichContext, enrichFlow } from '../src/observe/enrich.js';
import type { Flow } from '../src/observe/flow.js';
import { compileFieldMask } from '../src/observe/field-mask.js';
import { compileFilter, compileFilters } from '../src/observe/flow-filter.js';
import { toProtoFlow } from '../src/observe/flow-proto.js';
import { FlowRing } from '../src/observe/flow-ring.js';
import { observeFilters, observeRequest, parseTime } from '../src/observe/hubble-request.js';
import { observerService, selectHistory } from '../src/observe/observer-server.js';
import { compute, model, namespace, pod } from './helpers/policy-world.js';

const base = (over: Partial<Flow>): Flow => ({ timeNs: 1_000n, verdict: 'FORWARDED', type: 'L3_L4', nodeName: 'node-1', trafficDirection: 'INGRESS', ...over });
const httpFlow = (code: number, method: string, url: string, verdict: Flow['verdict'] = 'FORWARDED') =>
  base({ type: 'L7', verdict, l4: { protocol: 'TCP', sourcePort: 40000, destinationPort: 80 }, l7: { type: 'RESPONSE', latencyNs: 5_000_000n, http: { code, method, url } } });
const ff = (o: Partial<FlowFilter>) => FlowFilter.fromPartial(o);
const matches = (f: Flow, o: Partial<FlowFilter>) => compileFilter(ff(o))(f);
/** How a refused filter fails: GetFlows answers INVALID_ARGUMENT for it. */
const filterError = { name: 'FilterError' };

const web = base({
  ip: { source: '10.0.0.5', destination: '10.0.1.6', ipVersion: 'IPv4' },
  l4: { protocol: 'TCP', sourcePort: 40000, destinationPort: 8080, flags: { SYN: true } },
  source: { identity: 300, namespace: 'shop', podName: 'client-abc', labels: ['k8s:app=client', 'k8s:tier=front'] },
  destination: { identity: 301, namespace: 'shop', podName: 'web-xyz', labels: ['k8s:app=web'], workloads: [{ kind: 'Deployment', name: 'web' }] },
  destinationService: { namespace: 'shop', name: 'web' },
});

t.test('a filter ANDs its fields; a field ORs its values', async (t) => {
  t.ok(matches(web, { sourcePod: ['shop/client'], destinationPort: ['8080'] }));
  t.notOk(matches(web, { sourcePod: ['shop/client'], destinationPort: ['9090'] }), 'one field failing fails the filter');
  t.ok(matches(web, { destinationPort: ['9090', '8080'] }), 'any value of a field');
  t.ok(matches(web, {}), 'an empty filter matches everything');
});

t.test('whitelist is an OR of filters, blacklist takes away', async (t) => {
  const drop = base({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED', source: { identity: 2 } });
  const pass = compileFilters([ff({ verdict: [2] }), ff({ sourcePod: ['shop/'] })], [ff({ sourceIdentity: [2] })]);
  t.ok(pass(web), 'matches the second whitelist filter');
  t.notOk(pass(drop), 'matches the first whitelist filter but the blacklist too');
  t.ok(compileFilters([], [])(drop), 'no filters: everything');
  t.notOk(compileFilters([], [ff({ verdict: [1] })])(web), 'a blacklist alone');
});

t.test('pods and services by [namespace/]name prefix, "default" without one', async (t) => {
  t.ok(matches(web, { sourcePod: ['shop/'] }), '"ns/" is the whole namespace');
  t.ok(matches(web, { destinationPod: ['shop/web'] }));
  t.notOk(matches(web, { destinationPod: ['web'] }), 'no namespace means default');
  t.ok(matches(base({ source: { identity: 1, namespace: 'default', podName: 'probe' } }), { sourcePod: ['pro'] }));
  t.notOk(matches(web, { sourcePod: ['other/'] }));
  t.ok(matches(web, { destinationService: ['shop/web'] }));
  t.notOk(matches(web, { sourceService: ['shop/web'] }), 'no source service is known');
  t.throws(() => compileFilter(ff({ sourcePod: [''] })), filterError);
});

t.test('labels: Kubernetes selectors over Cilium labels', async (t) => {
  t.ok(matches(web, { sourceLabel: ['app=client'] }), 'no source: any source');
  t.ok(matches(web, { sourceLabel: ['k8s:app=client'] }));
  t.notOk(matches(web, { sourceLabel: ['reserved:app=client'] }), 'another source');
  t.ok(matches(web, { sourceLabel: ['app in (client, web),tier'] }), 'set and existence, ANDed');
  t.notOk(matches(web, { sourceLabel: ['app=client,!tier'] }));
  t.ok(matches(web, { sourceLabel: ['app notin (web)'] }));
  t.ok(matches(web, { sourceLabel: ['app!=web'] }));
  t.ok(matches(web, { sourceLabel: ['app=nope', 'tier=front'] }), 'selectors are alternatives');
  t.ok(matches(base({ source: { identity: 2, labels: ['reserved:world'] } }), { sourceLabel: ['reserved:world'] }), 'a label without a value');
  t.throws(() => compileFilter(ff({ sourceLabel: ['app=(x'] })), filterError);
});

t.test('HTTP: status codes and prefixes, method, path and URL regexes', async (t) => {
  const ok = httpFlow(200, 'GET', 'http://web/api/items?x=1');
  const denied = httpFlow(403, 'POST', 'http://web/admin', 'DROPPED');
  const err = httpFlow(503, 'GET', '/healthz');
  t.ok(matches(denied, { httpStatusCode: ['403'] }));
  t.notOk(matches(ok, { httpStatusCode: ['403'] }));
  t.ok(matches(err, { httpStatusCode: ['5+'] }));
  t.ok(matches(err, { httpStatusCode: ['50+'] }));
  t.notOk(matches(err, { httpStatusCode: ['4+'] }));
  t.notOk(matches(web, { httpStatusCode: ['2+'] }), 'an L3/L4 flow has no status');
  for (const bad of ['6+', '20', 'abc', '5++']) t.throws(() => compileFilter(ff({ httpStatusCode: [bad] })), filterError, bad);
  t.ok(matches(ok, { httpMethod: ['get'] }), 'methods ignore case');
  t.ok(matches(ok, { httpPath: ['^/api/\\w+$'] }), 'the path alone, without the query');
  t.notOk(matches(denied, { httpPath: ['^/api/'] }));
  t.ok(matches(err, { httpPath: ['^/healthz$'] }), 'a relative URL');
  t.ok(matches(ok, { httpUrl: ['x=1'] }));
  t.throws(() => compileFilter(ff({ httpPath: ['(unclosed'] })), filterError);
  t.throws(() => compileFilter(ff({ httpStatusCode: ['200'], eventType: [{ type: 4, matchSubType: false, subType: 0 }] })), /l7/, 'http fields need l7 events');
  t.ok(matches(ok, { httpStatusCode: ['200'], eventType: [{ type: 129, matchSubType: false, subType: 0 }] }));
});

t.test('protocol, ports, IPs, identities, verdicts, drop reasons', async (t) => {
  const icmp = base({ l4: { protocol: 'ICMPv4' } });
  t.ok(matches(web, { protocol: ['TCP'] }));
  t.ok(matches(icmp, { protocol: ['icmp'] }));
  t.notOk(matches(web, { protocol: ['udp', 'http'] }));
  t.ok(matches(httpFlow(200, 'GET', '/'), { protocol: ['http'] }));
  t.throws(() => compileFilter(ff({ protocol: ['quic'] })), filterError);
  t.ok(matches(web, { sourcePort: ['40000'] }));
  t.notOk(matches(icmp, { destinationPort: ['0'] }), 'ICMP has no ports');
  t.throws(() => compileFilter(ff({ sourcePort: ['70000'] })), filterError);
  t.ok(matches(web, { destinationIp: ['10.0.1.0/24'] }));
  t.ok(matches(web, { sourceIp: ['10.0.0.5'] }));
  t.notOk(matches(web, { sourceIp: ['10.0.1.0/24'] }));
  t.throws(() => compileFilter(ff({ sourceIp: ['10.0.0.300'] })), filterError);
  t.ok(matches(web, { sourceIdentity: [300], destinationIdentity: [301] }));
  t.notOk(matches(web, { sourceIdentity: [301] }));
  const drop = base({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED' });
  t.ok(matches(drop, { verdict: [2] }));
  t.ok(matches(drop, { dropReasonDesc: [133] }));
  t.notOk(matches(web, { dropReasonDesc: [133] }));
  t.ok(matches(web, { ipVersion: [1] }));
  t.ok(matches(web, { trafficDirection: [1] }));
  t.ok(matches(web, { destinationWorkload: [{ kind: 'Deployment', name: '' }] }));
  t.notOk(matches(web, { destinationWorkload: [{ kind: 'StatefulSet', name: 'web' }] }));
  t.ok(matches(web, { tcpFlags: [{ SYN: true, ACK: false, FIN: false, RST: false, PSH: false, URG: false, ECE: false, CWR: false, NS: false }] }));
  t.notOk(matches(web, { tcpFlags: [{ SYN: true, ACK: true, FIN: false, RST: false, PSH: false, URG: false, ECE: false, CWR: false, NS: false }] }));
  t.ok(matches(web, { reply: [false] }), 'a SYN opens the connection');
  t.ok(matches(web, { nodeName: ['node-*'] }));
  t.ok(matches(web, { nodeName: ['default/node-1'] }));
  t.notOk(matches(web, { nodeName: ['other/node-1'] }));
  t.notOk(matches(web, { uuid: ['x'] }), 'data sluice never has matches nothing');
  t.throws(() => compileFilter(ff({ experimental: { celExpression: ['true'] } })), /CEL/);
});

t.test('event types: drops by reason, traces by observation point, L7, sock', async (t) => {
  const drop = base({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED' });
  const ev = (type: number, subType?: number) => ({ eventType: [{ type, matchSubType: subType !== undefined, subType: subType ?? 0 }] });
  t.ok(matches(drop, ev(1)));
  t.ok(matches(drop, ev(1, 133)));
  t.notOk(matches(web, ev(1)));
  t.ok(matches(web, ev(4, 0)), 'ingress FORWARDED is to-endpoint');
  t.ok(matches(base({ trafficDirection: 'EGRESS' }), ev(4, 3)), 'egress is to-stack');
  t.ok(matches(base({ verdict: 'REDIRECTED' }), ev(4, 1)), 'to-proxy');
  t.ok(matches(httpFlow(200, 'GET', '/'), ev(129)));
  t.ok(matches(base({ type: 'SOCK', verdict: 'TRANSLATED' }), ev(7)));
});

t.test("hubble's flags as filters", async (t) => {
  t.same(observeFilters({}), []);
  const [l, r] = observeFilters({ namespace: ['shop'] });
  t.same([l.sourcePod, l.destinationPod, r.sourcePod, r.destinationPod], [['shop/'], [], [], ['shop/']], '--namespace: from it, or to it');
  const [pl, pr] = observeFilters({ pod: ['web'], namespace: ['shop'], verdict: ['DROPPED'] });
  t.same([pl.sourcePod, pr.destinationPod, pl.verdict, pr.verdict], [['shop/web'], ['shop/web'], [2], [2]]);
  const one = observeFilters({ fromPod: ['a/b'], toPort: ['80'], protocol: ['http'], httpStatus: ['403'] });
  t.equal(one.length, 1, 'one-sided flags make one filter');
  t.same([one[0].sourcePod, one[0].destinationPort, one[0].httpStatusCode], [['a/b'], ['80'], ['403']]);
  t.same(observeFilters({ identity: ['world'] }).map((f) => [f.sourceIdentity, f.destinationIdentity]), [
    [[2], []],
    [[], [2]],
  ]);
  t.same(observeFilters({ type: ['trace:to-stack', 'drop'] })[0].eventType, [
    { type: 4, matchSubType: true, subType: 3 },
    { type: 1, matchSubType: false, subType: 0 },
  ]);
  t.throws(() => observeFilters({ verdict: ['MAYBE'] }), /verdict/);
  t.throws(() => observeFilters({ identity: ['nobody'] }), /identity/);
  const not = observeRequest({ verdict: ['DROPPED', 'FORWARDED'], pod: ['a/b'] }, [['verdict', 'DROPPED']]);
  t.same([not.whitelist[0].verdict, not.blacklist.map((f) => f.verdict)], [[1], [[2]]], '--not moves its flag to the blacklist');
  t.equal(observeRequest({}).number, '20', 'the last 20 by default');
  t.equal(observeRequest({ follow: true }).number, '0', 'follow alone: only new flows');
  t.equal(observeRequest({ all: true }).number, '18446744073709551615');
  t.equal(observeRequest({ since: '5m' }).number, '0', 'a window instead of a count');
  t.throws(() => observeRequest({ first: '3', follow: true }));
  t.same(parseTime('1h30m', 10_000_000), { seconds: String((10_000_000 - 5_400_000) / 1000), nanos: 0 });
  t.same(parseTime('2026-01-02T03:04:05.5Z'), { seconds: String(Date.UTC(2026, 0, 2, 3, 4, 5) / 1000), nanos: 500_000_000 });
  t.throws(() => parseTime('yesterday'));
});

t.test('history: last or first N of what passes, within since/until', async (t) => {
  const flows = [1, 2, 3, 4, 5].map((s) => base({ timeNs: BigInt(s) * 1_000_000_000n, verdict: s % 2 ? 'FORWARDED' : 'DROPPED' }));
  const req = (o: object) => GetFlowsRequest.fromPartial(o);
  const secs = (fs: Flow[]) => fs.map((f) => Number(f.timeNs / 1_000_000_000n));
  const all = () => true;
  const now = 100_000_000_000n;
  t.same(secs(selectHistory(flows, req({ number: '2' }), all, now)), [4, 5]);
  t.same(secs(selectHistory(flows, req({ number: '2', first: true }), all, now)), [1, 2]);
  t.same(secs(selectHistory(flows, req({ number: '2' }), (f) => f.verdict === 'DROPPED', now)), [2, 4], 'N of the matching ones');
  t.same(secs(selectHistory(flows, req({ since: { seconds: '3', nanos: 0 } }), all, now)), [3, 4, 5]);
  t.same(secs(selectHistory(flows, req({ since: { seconds: '2', nanos: 0 }, until: { seconds: '3', nanos: 0 } }), all, now)), [2, 3]);
  t.same(secs(selectHistory(flows, req({ since: { seconds: '2', nanos: 0 } }), all, 2_500_000_000n)), [2], 'since without until ends now');
  t.same(secs(selectHistory(flows, req({ follow: true }), all, now)), [], 'follow alone: no history');
  t.same(secs(selectHistory(flows, req({ number: '18446744073709551615' }), all, now)), [1, 2, 3, 4, 5]);
});

t.test('the ring keeps the newest, counts what it saw and what was lost', async (t) => {
  const ring = new FlowRing(3);
  const heard: string[] = [];
  const off = ring.subscribe((e) => heard.push('flow' in e ? String(e.flow.timeNs) : `lost ${e.lost.count}`));
  for (let i = 1n; i <= 5n; i++) ring.push(base({ timeNs: i }));
  ring.reportLost('PERF_EVENT_RING_BUFFER', 7);
  off();
  ring.push(base({ timeNs: 6n }));
  t.same(
    ring.flows().map((f) => f.timeNs),
    [4n, 5n, 6n],
  );
  t.same(heard, ['1', '2', '3', '4', '5', 'lost 7']);
  t.same(ring.stats(), { numFlows: 3, maxFlows: 3, seenFlows: 6, lost: { PERF_EVENT_RING_BUFFER: 7, OBSERVER_EVENTS_QUEUE: 0, HUBBLE_RING_BUFFER: 0 } });
  t.throws(() => new FlowRing(0));
});

t.test('a follower that does not read holds a bounded queue and hears what it lost', async (t) => {
  const ring = new FlowRing(10);
  const svc = observerService({ ring, nodeName: 'n', maxPendingPerClient: 5 });
  const written: GetFlowsResponse[] = [];
  let accept = 0;
  const call = Object.assign(new EventEmitter(), {
    request: GetFlowsRequest.fromPartial({ follow: true }),
    write: (r: GetFlowsResponse) => {
      written.push(r);
      return accept-- > 0;
    },
    end: () => {},
  });
  svc.getFlows(call as never);
  for (let i = 0; i < 100; i++) ring.push(base({ timeNs: BigInt(i) }));
  t.equal(written.length, 1, 'one write, then it waits for drain');
  accept = 1000;
  call.emit('drain');
  const flows = written.filter((r) => r.flow).length;
  const lost = written.filter((r) => r.lostEvents).map((r) => r.lostEvents!);
  t.equal(flows, 6, 'the one written, then the five queued');
  t.ok(written[6].lostEvents, 'the loss where it happened: after the queued flows');
  t.same(
    lost.map((l) => [l.numEventsLost, l.source]),
    [['94', 3]],
    'the rest reported lost (HUBBLE_RING_BUFFER)',
  );
  call.emit('cancelled');
  ring.push(base({}));
  t.equal(written.length, 7, 'nothing after cancel');
});

t.test('a field mask keeps the fields it names, by proto name', async (t) => {
  const mask = compileFieldMask(['source.pod_name', 'drop_reason_desc', 'IP', 'l7.latency_ns'])!;
  const pb = mask(toProtoFlow({ ...web, verdict: 'DROPPED', dropReason: 'POLICY_DENIED', l7: { type: 'RESPONSE', latencyNs: 7n } }));
  t.equal(pb.source?.podName, 'client-abc');
  t.equal(pb.source?.namespace, '', 'a sibling not named is left out');
  t.equal(pb.dropReasonDesc, 133);
  t.equal(pb.IP?.destination, '10.0.1.6');
  t.equal(pb.l7?.latencyNs, '7');
  t.equal(pb.verdict, 0, 'the verdict was not asked for');
  t.equal(pb.destination, undefined);
  t.equal(compileFieldMask([]), undefined, 'no mask, the whole flow');
  t.throws(() => compileFieldMask(['nonsense.x']), filterError);
});

t.test("a malformed flow ends a follower's stream, not the producer's push or the server", async (t) => {
  const ring = new FlowRing(10);
  const svc = observerService({ ring, nodeName: 'n' });
  const errors: { code: number }[] = [];
  const call = Object.assign(new EventEmitter(), { request: GetFlowsRequest.fromPartial({ follow: true }), write: () => true, end: () => {} });
  call.on('error', (e) => errors.push(e));
  svc.getFlows(call as never);
  t.doesNotThrow(() => ring.push({ verdict: 'FORWARDED' } as Flow), 'the push goes through');
  t.same(errors.map((e) => e.code), [13], 'the follower gets INTERNAL');
  const bad = Object.assign(new EventEmitter(), { request: GetFlowsRequest.fromPartial({ whitelist: [{ httpPath: ['('] }] }), write: () => true, end: () => {} });
  const refused: { code: number }[] = [];
  bad.on('error', (e) => refused.push(e));
  svc.getFlows(bad as never);
  t.same(refused.map((e) => e.code), [3], 'a bad filter is INVALID_ARGUMENT');
});

t.test('enrichment: pods, identities and labels from the model and policy; Services from VIP or key', async (t) => {
  const objects = [
    namespace('shop'),
    pod('web-1', '10.0.1.6', { app: 'web' }, { namespace: 'shop' }),
    pod('client-1', '10.0.0.5', { app: 'client' }, { namespace: 'shop' }),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } },
  ];
  const m = model(objects);
  const policy = compute(objects);
  const ctx = enrichContext(m, policy);
  const ids = policy.compiled.identities.pods;
  const bare = base({ ip: { source: '10.0.0.5', destination: '10.0.1.6', ipVersion: 'IPv4' } });
  const f = enrichFlow(bare, ctx, { originalDestination: { ip: '10.96.0.10', port: 80 } });
  t.equal(f.source?.namespace, 'shop');
  t.equal(f.source?.podName, 'client-1');
  t.equal(f.source?.identity, ids.get('shop/client-1')!.identity);
  t.equal(f.destination?.podName, 'web-1');
  t.ok(f.destination?.labels?.includes('k8s:app=web'), 'labels in Cilium form');
  t.ok(f.destination?.labels?.includes('k8s:io.kubernetes.pod.namespace=shop'));
  t.same(f.destinationService, { namespace: 'shop', name: 'web' });
  t.equal(bare.source, undefined, 'the input is not changed');
  const out = enrichFlow(base({ ip: { source: '192.0.2.1', destination: '10.0.1.6', ipVersion: 'IPv4' } }), ctx, { service: 'shop/web:80/TCP/v4' });
  t.same(out.source, { identity: 2, labels: ['reserved:world'] }, 'an outside address is the world');
  t.same(out.destinationService, { namespace: 'shop', name: 'web' }, 'from a socket-LB service key');
  const given = enrichFlow(base({ ip: bare.ip, source: { identity: 4242, podName: 'as-reported' } }), ctx);
  t.equal(given.source?.identity, 4242, "the datapath's identity wins");
  t.equal(given.source?.podName, 'as-reported');
  t.equal(given.source?.namespace, 'shop', 'what it left out is filled');
  t.equal(enrichFlow(base({}), ctx).source, undefined, 'no address, nothing to fill');
});
