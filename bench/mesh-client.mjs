// The load side of bench/mesh.mjs, run in a pod's (or a node's) netns: one
// JSON command a line on stdin, one JSON answer a line on stdout. It stays up
// between commands, so batches of two paths interleave without paying a
// process start each, and keep-alive connections survive from batch to batch.
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

const agents = new Map();
const agentFor = (keepAlive) => {
  if (!agents.has(keepAlive)) agents.set(keepAlive, new http.Agent({ keepAlive, maxSockets: 1 }));
  return agents.get(keepAlive);
};

const get = (host, port, agent) =>
  new Promise((resolve, reject) => {
    http
      .get({ host, port, path: '/', agent }, (r) => {
        r.resume();
        r.on('end', () => (r.statusCode === 200 ? resolve() : reject(new Error(`status ${r.statusCode}`))));
      })
      .on('error', reject);
  });

// The HTTP/2 client connection preface and an empty SETTINGS frame (RFC 9113 §3.4).
const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

/**
 * One full connection of `kind`, opened and closed. TCP and TLS wait for the
 * server's first byte: in TLS 1.3 the client is done before the server has
 * checked the client's certificate, and the server speaks (Envoy's HTTP/2
 * SETTINGS, the Node baseline's one byte) only after it has. Envoy answers
 * only a client that opened HTTP/2, so the TLS client sends the preface.
 */
function once(kind, c, tlsOpts) {
  if (kind === 'http-new') return get(c.host, c.port, agentFor(false));
  return new Promise((resolve, reject) => {
    const s = kind === 'tls' ? tls.connect({ host: c.host, port: c.port, ...tlsOpts }) : net.connect({ host: c.host, port: c.port });
    if (kind === 'tls') s.once('secureConnect', () => s.write(H2_PREFACE));
    s.setTimeout(5000, () => s.destroy(new Error('no byte from the server in 5 s')));
    s.once('data', () => {
      s.destroy();
      resolve();
    });
    s.once('end', () => reject(new Error('closed before the server spoke')));
    s.once('error', reject);
  });
}

async function latency(c) {
  const agent = agentFor(c.keepAlive);
  const out = [];
  for (let i = 0; i < c.n; i++) {
    const t = process.hrtime.bigint();
    await get(c.host, c.port, agent);
    out.push(Number(process.hrtime.bigint() - t) / 1e3);
  }
  return out;
}

async function rate(c) {
  // Fresh TLS sessions each time: no `session` is passed, so every handshake is a full one.
  const tlsOpts = c.tls && {
    cert: readFileSync(c.tls.cert),
    key: readFileSync(c.tls.key),
    ca: readFileSync(c.tls.ca),
    servername: c.tls.servername,
    ALPNProtocols: ['h2'],
    // The peer is checked against the bundle; its URI SAN is not a host name.
    checkServerIdentity: () => undefined,
  };
  const end = performance.now() + c.ms;
  let count = 0;
  let errors = 0;
  let firstError;
  const worker = async () => {
    while (performance.now() < end)
      try {
        await once(c.kind, c, tlsOpts);
        count++;
      } catch (e) {
        errors++;
        firstError ??= e.message;
      }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c.concurrency }, worker));
  return { count, errors, firstError, ms: performance.now() - t0 };
}

const ops = { latency, rate };
for await (const line of createInterface({ input: process.stdin })) {
  const c = JSON.parse(line);
  try {
    process.stdout.write(JSON.stringify({ ok: await ops[c.op](c) }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: e.message }) + '\n');
  }
}
