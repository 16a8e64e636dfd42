// Decoding the datapath's event records (struct sluice_event, bpf/events.h) into Flows.
import t from 'tap';
import { DROP_REASON_NAMES, decodeBatch, decodeEvent, EV, EVENT_RECORD_SIZE } from '../src/observe/bpf-events.js';
import { eventConfigValue } from '../src/observe/bpf-event-reader.js';
import { DROP_REASONS, addr16 } from '../src/redirect/policy-maps.js';

interface Rec {
  time?: bigint;
  type: number;
  verdict?: number;
  reason?: number;
  direction?: number;
  proto?: number;
  flags?: number;
  tcpFlags?: number;
  sport?: number;
  dport?: number;
  proxyPort?: number;
  revNat?: number;
  srcId?: number;
  dstId?: number;
  src?: string;
  dst?: string;
  orig?: string;
  origPort?: number;
  ifindex?: number;
  cookie?: bigint;
  cgroup?: bigint;
}

function record(r: Rec): Buffer {
  const b = Buffer.alloc(EVENT_RECORD_SIZE);
  b.writeBigUInt64LE(r.time ?? 1_000n, 0);
  [r.type, r.verdict ?? 0, r.reason ?? 0, r.direction ?? 0, r.proto ?? 6, r.flags ?? 2, r.tcpFlags ?? 0].forEach((v, i) => b.writeUInt8(v, 8 + i));
  b.writeUInt16BE(r.sport ?? 0, 16);
  b.writeUInt16BE(r.dport ?? 0, 18);
  b.writeUInt16LE(r.proxyPort ?? 0, 20);
  b.writeUInt16LE(r.revNat ?? 0, 22);
  b.writeUInt32LE(r.srcId ?? 0, 24);
  b.writeUInt32LE(r.dstId ?? 0, 28);
  if (r.src) addr16(r.src).copy(b, 32);
  if (r.dst) addr16(r.dst).copy(b, 48);
  if (r.orig) addr16(r.orig).copy(b, 64);
  b.writeUInt16BE(r.origPort ?? 0, 80);
  b.writeUInt32LE(r.ifindex ?? 0, 84);
  b.writeBigUInt64LE(r.cookie ?? 0n, 88);
  b.writeBigUInt64LE(r.cgroup ?? 0n, 96);
  return b;
}

const ctx = { nodeName: 'n1', monoToEpochNs: 5_000n };

t.test('a new flow: verdict, direction, identities, addresses, ports, TCP flags, wall time', async (t) => {
  const f = decodeEvent(record({ type: EV.flow, verdict: 1, direction: 1, tcpFlags: 1, sport: 40000, dport: 80, srcId: 256, dstId: 258, src: '10.0.0.1', dst: '10.0.0.2', ifindex: 7 }), ctx);
  t.same(f, {
    timeNs: 6_000n,
    nodeName: 'n1',
    ip: { source: '10.0.0.1', destination: '10.0.0.2', ipVersion: 'IPv4' },
    l4: { protocol: 'TCP', sourcePort: 40000, destinationPort: 80, flags: { SYN: true } },
    trafficDirection: 'EGRESS',
    verdict: 'FORWARDED',
    type: 'L3_L4',
    source: { identity: 256 },
    destination: { identity: 258 },
    interface: { index: 7 },
  });
});

t.test('redirects carry the proxy port; ends are FIN/RST, replies marked; IPv6 compressed', async (t) => {
  const r = decodeEvent(record({ type: EV.flow, verdict: 3, proxyPort: 15001, flags: 0, src: 'fd00::1', dst: 'fd00::2', dport: 80 }), ctx)!;
  t.match(r, { verdict: 'REDIRECTED', proxyPort: 15001, trafficDirection: 'INGRESS', ip: { source: 'fd00::1', destination: 'fd00::2', ipVersion: 'IPv6' } });
  const end = decodeEvent(record({ type: EV.tcpEnd, verdict: 1, flags: 3, tcpFlags: 4 | 2 }), ctx)!;
  t.match(end, { verdict: 'FORWARDED', isReply: true, l4: { flags: { FIN: true, ACK: true } } });
  t.notOk(end.proxyPort, 'no proxy port on a forwarded flow');
  t.same(decodeEvent(record({ type: EV.tcpEnd, verdict: 1, tcpFlags: 8 }), ctx)!.l4!.flags, { RST: true });
});

t.test("drops: each of policy.c's reasons by Hubble's name; an unknown code is DROP_REASON_UNKNOWN", async (t) => {
  t.equal(DROP_REASON_NAMES.length, DROP_REASONS.length, 'a name for every reason the datapath counts');
  const names = DROP_REASONS.map((_, i) => decodeEvent(record({ type: EV.drop, verdict: 2, reason: i }), ctx)!.dropReason);
  t.same(names, ['POLICY_DENIED', 'POLICY_DENY', 'SOCKET_LOOKUP_FAILED', 'SOCKET_ASSIGN_FAILED', 'PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL', 'AUTH_REQUIRED']);
  t.match(decodeEvent(record({ type: EV.drop, verdict: 2, reason: 99 }), ctx), { verdict: 'DROPPED', dropReason: 'DROP_REASON_UNKNOWN' });
});

t.test('socket-LB translations: frontend, backend, Service, socket, cgroup; UDP and ICMP ports', async (t) => {
  const rec = record({ type: EV.sockXlate, direction: 1, proto: 17, dport: 5353, dst: '10.244.1.1', orig: '10.96.0.53', origPort: 53, revNat: 9, cookie: 77n, cgroup: 1234n });
  const f = decodeEvent(rec, { ...ctx, serviceOf: (id) => (id === 9 ? { namespace: 'kube-system', name: 'dns' } : undefined) })!;
  t.match(f, {
    type: 'SOCK',
    verdict: 'TRANSLATED',
    ip: { source: '', destination: '10.244.1.1' },
    l4: { protocol: 'UDP', destinationPort: 5353 },
    translatedFrom: { ip: '10.96.0.53', port: 53 },
    serviceId: 9,
    destinationService: { namespace: 'kube-system', name: 'dns' },
    socketCookie: 77n,
    cgroupId: 1234n,
  });
  t.notOk(f.l4!.sourcePort, 'the socket has no port of its own yet');
  t.notOk('destinationService' in decodeEvent(rec, ctx)!, 'no resolver, no name; the id still says which');
  t.match(decodeEvent(record({ type: EV.sockXlate, flags: 2 | 4, proxyPort: 13001 }), ctx), { proxyPort: 13001 });
  t.same(decodeEvent(record({ type: EV.flow, verdict: 1, proto: 1, sport: 5, dport: 5 }), ctx)!.l4, { protocol: 'ICMPv4' });
});

t.test('batches: framed records in order; unknown types and short records are skipped', async (t) => {
  const frame = (rec: Buffer, len = rec.length) => {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(len, 0);
    return Buffer.concat([h, rec, Buffer.alloc(((len + 7) & ~7) - rec.length)]);
  };
  const batch = Buffer.concat([frame(record({ type: EV.flow, verdict: 1, dport: 1 })), frame(record({ type: 42 })), frame(Buffer.alloc(12)), frame(record({ type: EV.drop, dport: 2 }))]);
  t.same(decodeBatch(batch, ctx).map((f) => [f.verdict, f.l4?.destinationPort]), [['FORWARDED', 1], ['DROPPED', 2]]);
  t.same(decodeBatch(Buffer.alloc(0), ctx), []);
});

t.test('the config entry', async (t) => {
  const b = eventConfigValue({ enabled: true, dropRate: 1, dropBurst: 2, flowRate: 3, flowBurst: 4 });
  t.same([0, 4, 8, 12, 16, 20].map((o) => b.readUInt32LE(o)), [1, 1, 2, 3, 4, 0]);
  t.equal(eventConfigValue({ enabled: false, dropRate: 0, dropBurst: 0, flowRate: 0, flowBurst: 0 }).readUInt32LE(0), 0);
});
