// Runs inside a test network namespace: TCP and UDP servers that answer with
// their name, and a minimal DNS server answering A queries with one address.
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';

const cfg = JSON.parse(process.argv[2]);
let pending = 0;
const ready = () => --pending === 0 && console.log('ready');

for (const s of cfg.tcp ?? []) {
  pending++;
  createServer((c) => c.end(s.name)).listen(s.port, s.ip, ready);
}
for (const s of cfg.echo ?? []) {
  pending++;
  createServer((c) => c.pipe(c)).listen(s.port, s.ip, ready);
}
for (const s of cfg.http ?? []) {
  pending++;
  createHttpServer((_req, res) => res.end(s.name)).listen(s.port, s.ip, ready);
}
// Answers with what it saw: the request, and the addresses of the connection it came on.
for (const s of cfg.httpEcho ?? []) {
  pending++;
  createHttpServer((req, res) => {
    const { localAddress, localPort, remoteAddress } = req.socket;
    res.end(JSON.stringify({ name: s.name, method: req.method, url: req.url, headers: req.headers, local: `${localAddress}:${localPort}`, remote: remoteAddress }));
  }).listen(s.port, s.ip, ready);
}
for (const s of cfg.udp ?? []) {
  pending++;
  const sock = createSocket(s.ip.includes(':') ? 'udp6' : 'udp4');
  sock.on('message', (_m, r) => sock.send(s.name, r.port, r.address));
  sock.bind(s.port, s.ip, ready);
}
if (cfg.dns) {
  pending++;
  const sock = createSocket('udp4');
  sock.on('message', (q, r) => {
    // Echo the question back with one A record pointing at cfg.dns.answer.
    let end = 12;
    while (q[end] !== 0) end += q[end] + 1;
    end += 5;
    const header = Buffer.from(q.subarray(0, 12));
    header.writeUInt16BE(0x8180, 2);
    header.writeUInt16BE(1, 6);
    const answer = Buffer.alloc(16);
    answer.writeUInt16BE(0xc00c, 0);
    answer.writeUInt16BE(1, 2);
    answer.writeUInt16BE(1, 4);
    answer.writeUInt32BE(30, 6);
    answer.writeUInt16BE(4, 10);
    cfg.dns.answer.split('.').forEach((o, i) => answer.writeUInt8(Number(o), 12 + i));
    sock.send(Buffer.concat([header, q.subarray(12, end), answer]), r.port, r.address);
  });
  sock.bind(cfg.dns.port, cfg.dns.ip, ready);
}
