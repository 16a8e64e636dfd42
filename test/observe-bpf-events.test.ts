// Flow events from the datapath on the real kernel: the policy programs on the
// pods' veths and the socket LB on a test cgroup emit through their ring
// buffers; the addon's reader delivers them and they decode into Flows.
import t from 'tap';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StableIds } from '../src/ids/stable-ids.js';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';
import { BpfEventReader, DEFAULT_EVENT_CONFIG, type EventConfig } from '../src/observe/bpf-event-reader.js';
import type { Flow } from '../src/observe/flow.js';
import { SockLbApplier } from '../src/redirect/apply.js';
import { desiredServices, serviceOfKey } from '../src/redirect/desired.js';
import { SockLb } from '../src/redirect/datapath.js';
import { possibleCpus } from '../src/redirect/policy-object.js';
import { eventually } from './helpers/envoy.js';
import { endpointSlice, service } from './helpers/kube.js';
import { netnsWorld } from './helpers/netns.js';
import type { Pod } from './helpers/policy-pods.js';
import { entry, EP, ID, IP, policyWorld } from './helpers/policy-tc-world.js';

const TCP = 6;
const PROXY_PORT = 15001;

function reader(t: { teardown(fn: () => unknown): void }, pinDirs: string[], opts: { config?: EventConfig; serviceOf?: (id: number) => { namespace: string; name: string } | undefined } = {}) {
  const flows: Flow[] = [];
  const r = BpfEventReader.open({ pinDirs, nodeName: 'node-a', onFlows: (f) => flows.push(...f), ...opts });
  t.teardown(() => r.close());
  return { r, flows };
}

/** Sends `count` TCP SYNs from a raw socket in the pod, each from its own source port: a flood that opens no sockets. */
function synFlood(pod: Pod, dst: string, port: number, count: number): void {
  const py = `
import socket, struct, sys
src, dst, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack('!BBH', 0, 6, 20)
for i in range(n):
    sport = 10000 + i % 50000
    h = struct.pack('!HHIIBBHHH', sport, port, i, 0, 5 << 4, 0x02, 65535, 0, 0)
    h = h[:16] + struct.pack('!H', csum(pseudo + h)) + h[18:]
    s.sendto(h, (dst, 0))
`;
  const r = pod.exec('python3', ['-c', py, pod.ip, dst, String(port), String(count)]);
  if (r.code !== 0) throw new Error(`SYN flood failed: ${r.stderr}`);
}

const l34 = (f: Flow) => `${f.verdict} ${f.trafficDirection}${f.isReply ? ' reply' : ''} ${f.source?.identity}->${f.destination?.identity} ${f.ip?.source}->${f.ip?.destination}:${f.l4?.destinationPort}`;

t.test('policy verdicts: an allowed flow with its SYN and FIN, a policy drop, a redirect to a proxy', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  const state = w.state({
    enforce: { s: ['ingress'] },
    entries: [entry(EP.s, 'ingress', ID.x, TCP, 80, 'allow'), entry(EP.s, 'ingress', ID.u, TCP, 8080, 'redirect', PROXY_PORT)],
  });
  t.same(w.reconciler.apply(state).errors, []);
  const { r, flows } = reader(t, [w.node.pinDir]);

  const [[allowed], [denied], [redirected]] = await Promise.all([
    w.pods.x.clientAsync([{ op: 'http', host: IP.s, port: 80 }]),
    w.pods.y.clientAsync([{ op: 'tcp', host: IP.s, port: 80 }]),
    w.pods.u.clientAsync([{ op: 'tcp', host: IP.s, port: 8080 }]),
  ]);
  t.same([allowed[0].status, denied[0].error, redirected[0].error], [200, 'timeout', 'timeout'], 'x is allowed; y is denied; u is redirected to a port no proxy listens on');
  const between = (a: string, b: string) => (f: Flow) => [f.ip?.source, f.ip?.destination].sort().join() === [a, b].sort().join();
  await eventually(() => flows.some((f) => between(IP.x, IP.s)(f) && f.l4?.flags?.FIN), 10_000, 'the allowed flow’s end');

  const xs = flows.filter(between(IP.x, IP.s));
  const starts = xs.filter((f) => f.l4?.flags?.SYN);
  t.same(starts.map(l34).sort(), [`FORWARDED EGRESS ${ID.x}->${ID.s} ${IP.x}->${IP.s}:80`, `FORWARDED INGRESS ${ID.x}->${ID.s} ${IP.x}->${IP.s}:80`], "the flow's start, once for x's egress check and once for s's ingress check");
  t.ok(starts.every((f) => f.type === 'L3_L4' && f.l4?.protocol === 'TCP' && f.l4.flags?.SYN && !f.l4.flags.ACK && f.nodeName === 'node-a'), 'a TCP SYN');
  t.ok(starts.every((f) => f.l4!.sourcePort! > 1024 && f.interface?.index === w.pods.x.ifindex()), "x's ephemeral port, seen on x's veth");
  const ends = xs.filter((f) => f.l4?.flags?.FIN || f.l4?.flags?.RST);
  t.ok(ends.length >= 1 && ends.length <= 4, `the end is reported once per check that tracks the flow, not per packet (${ends.length})`);
  t.ok(ends.every((f) => f.verdict === 'FORWARDED' && [f.source?.identity, f.destination?.identity].sort().join() === [ID.x, ID.s].sort().join()), 'with both identities');
  t.ok(xs.length <= 6, `no event for the flow's other packets (${xs.length} in all)`);
  const ts = Date.now() * 1e6;
  t.ok(xs.every((f) => Math.abs(Number(f.timeNs) - ts) < 60e9), 'times are wall-clock nanoseconds');

  const drops = flows.filter((f) => f.verdict === 'DROPPED' && f.ip?.source === IP.y);
  t.ok(drops.length >= 1, 'the denied SYN is reported');
  t.same(
    [...new Set(drops.map((f) => `${f.dropReason} ${l34(f)} SYN=${f.l4?.flags?.SYN}`))],
    [`POLICY_DENIED DROPPED INGRESS ${ID.y}->${ID.s} ${IP.y}->${IP.s}:80 SYN=true`],
    "dropped at s's ingress: no rule allows y",
  );

  const fromU = flows.filter((f) => f.ip?.source === IP.u);
  const redirect = fromU.filter((f) => f.verdict === 'REDIRECTED');
  t.same(redirect.map(l34), [`REDIRECTED INGRESS ${ID.u}->${ID.s} ${IP.u}->${IP.s}:8080`], 'the redirect verdict, once, at the flow start');
  t.equal(redirect[0]?.proxyPort, PROXY_PORT, 'with the proxy port');
  t.ok(
    fromU.filter((f) => f.verdict === 'DROPPED').every((f) => f.dropReason === 'SOCKET_LOOKUP_FAILED' && f.source?.identity === ID.u && f.destination?.identity === ID.s),
    'no listener on the proxy port: dropped as a failed socket lookup, identities from the ipcache',
  );
  t.ok(fromU.some((f) => f.verdict === 'DROPPED'), 'and that drop is reported');
  t.same(r.loss(), { lost: 0, dropsSuppressed: 0, flowsSuppressed: 0 }, 'nothing lost or suppressed at this rate');

  r.configure({ ...DEFAULT_EVENT_CONFIG, enabled: false });
  const n = flows.length;
  w.pods.x.client([{ op: 'http', host: IP.s, port: 80, count: 3 }]);
  await new Promise((res) => setTimeout(res, 300));
  t.equal(flows.length + r.drain().length, n, 'events off: three more flows, no event');
});

t.test('a SYN flood to a denied port: the rate limit holds events far below packets; ring loss is counted exactly', async (t) => {
  const w = await policyWorld(t);
  await w.startAttacher();
  t.same(w.reconciler.apply(w.state({ enforce: { s: ['ingress'] } })).errors, []);
  const config = { ...DEFAULT_EVENT_CONFIG, dropRate: 1000, dropBurst: 1000 };
  const { r, flows } = reader(t, [w.node.pinDir], { config });
  // From w, outside the pod range: no source endpoint whose egress check would report each SYN as a new flow.
  const N = 20_000;
  const drops0 = w.reconciler.dropCounters()['no-allow'];
  const loss0 = r.loss();
  const started = process.hrtime.bigint();
  synFlood(w.pods.w, IP.s, 80, N);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await new Promise((res) => setTimeout(res, 200));
  flows.push(...r.drain());
  const dropped = w.reconciler.dropCounters()['no-allow'] - drops0;
  const loss = r.loss();
  const events = flows.filter((f) => f.verdict === 'DROPPED' && f.ip?.source === IP.w).length;
  t.equal(dropped, N, 'every SYN was dropped by policy');
  const bound = possibleCpus() * (config.dropBurst + config.dropRate * seconds);
  t.ok(events >= 1 && events <= bound, `${events} drop events for ${N} packets in ${seconds.toFixed(2)} s, within the bucket's ${Math.floor(bound)}`);
  t.ok(events < N / 2, 'far fewer events than packets');
  t.equal(events + (loss.dropsSuppressed - loss0.dropsSuppressed) + (loss.lost - loss0.lost), dropped, 'each drop was reported, suppressed by the rate limit, or counted lost');
  t.ok(loss.dropsSuppressed - loss0.dropsSuppressed > 0, 'the suppressed ones are counted');

  // No limit and nobody reading: the ring fills, and what it could not hold is counted, record for record.
  r.configure({ ...config, dropRate: 0 });
  r.close();
  const drops1 = w.reconciler.dropCounters()['no-allow'];
  const loss1 = r.loss();
  synFlood(w.pods.w, IP.s, 80, N);
  const { r: again, flows: later } = reader(t, [w.node.pinDir], { config: { ...config, dropRate: 0 } });
  later.push(...again.drain());
  const dropped2 = w.reconciler.dropCounters()['no-allow'] - drops1;
  const lost = again.loss().lost - loss1.lost;
  t.equal(dropped2, N, 'the second flood, dropped');
  t.ok(lost > 0, `the full ring lost ${lost} records`);
  t.equal(later.length + lost, N, `${later.length} read and ${lost} lost: every drop accounted for`);
  t.equal(again.loss().dropsSuppressed, loss1.dropsSuppressed, 'nothing suppressed with the limit off');
});

t.test('socket LB: a VIP connect reports the frontend, the chosen backend, the Service, the socket and the cgroup', async (t) => {
  const BACKENDS = ['10.244.1.1', '10.244.1.2'];
  const w = await netnsWorld(t, BACKENDS);
  await w.servers({ tcp: BACKENDS.map((ip, i) => ({ ip, port: 8080, name: `b${i + 1}` })) });
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ids-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ids = { services: new StableIds(join(dir, 'svc.json'), [1, 65535]), backends: new StableIds(join(dir, 'be.json'), [1, 1 << 30]) };
  t.teardown(() => SockLb.remove(w.pinDir));
  const lb = SockLb.open({ pinDir: w.pinDir, cgroupDir: w.cgroupDir });
  t.teardown(() => lb.close());
  const objects = [service('web', [{ port: 80, name: 'p' }], { clusterIP: '10.96.0.10', namespace: 'shop' }), endpointSlice('web', 'p', 8080, BACKENDS.map((ip) => ({ ip })), { namespace: 'shop' })];
  const model = Model.from(objects.map((object) => ({ object: object as ModelObject })));
  new SockLbApplier(lb.maps, ids).apply(desiredServices(model, [], { nodeIPs: [] }));
  const byId = (id: number) => {
    for (const k of ids.services.keys())
      if (ids.services.peek(k) === id) {
        const [namespace, name] = serviceOfKey(k).service.split('/');
        return { namespace, name };
      }
    return undefined;
  };
  const { flows } = reader(t, [w.pinDir], { serviceOf: byId });

  const [res] = w.client([{ op: 'tcp', host: '10.96.0.10', port: 80, count: 4 }]);
  t.ok(res.every((x: any) => /^b[12]$/.test(x.backend)), 'the connects reach backends');
  await eventually(() => flows.length >= 4, 10_000, 'four translation events');
  t.equal(flows.length, 4, 'one event per connect');
  const cgroupId = BigInt(statSync(w.cgroupDir).ino);
  flows.forEach((f, i) => {
    const backend = { b1: BACKENDS[0], b2: BACKENDS[1] }[res[i].backend as 'b1' | 'b2'];
    t.match(f, { type: 'SOCK', verdict: 'TRANSLATED', sockXlatePoint: 'SOCK_XLATE_POINT_POST_DIRECTION_FWD', translatedFrom: { ip: '10.96.0.10', port: 80 }, ip: { destination: backend, ipVersion: 'IPv4' }, l4: { protocol: 'TCP', destinationPort: 8080 }, destinationService: { namespace: 'shop', name: 'web' } }, `connect ${i + 1}: VIP -> ${backend}`);
    t.equal(f.cgroupId, cgroupId, 'the cgroup the client ran in');
    t.ok(f.socketCookie && f.socketCookie > 0n, 'a socket cookie');
  });
  t.equal(new Set(flows.map((f) => f.socketCookie)).size, 4, 'each connect its own socket');
});
