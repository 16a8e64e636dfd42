// Runs inside a test network namespace and cgroup: performs a plan of
// connects, datagrams and DNS lookups, and prints what it saw as JSON.
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';

const plan = JSON.parse(process.argv[2]);

function tcp(host, port) {
  return new Promise((resolve, reject) => {
    const c = connect({ host, port });
    let data = '';
    let peer;
    c.on('connect', () => (peer = { address: c.remoteAddress, port: c.remotePort }));
    c.on('data', (d) => (data += d));
    c.on('end', () => resolve({ backend: data, peer }));
    c.on('error', reject);
    c.setTimeout(3000, () => c.destroy(new Error('timeout')));
  });
}

// One HTTP/1.1 request (GET / unless the step says) on a fresh connection; the body is the backend's name.
function http(host, port, step = {}) {
  return new Promise((resolve, reject) => {
    let peer;
    const req = request({ host, port, path: step.path ?? '/', method: step.method ?? 'GET', headers: step.headers, agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, backend: body, peer, via: res.headers['x-envoy-upstream-service-time'] !== undefined ? 'envoy' : undefined }));
    });
    req.on('socket', (s) => s.on('connect', () => (peer = { address: s.remoteAddress, port: s.remotePort })));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// One connection held open across a change: echoes "one", waits for the file
// `file` to appear, then echoes "two" on the same connection.
function hold(host, port, until) {
  return new Promise((resolve, reject) => {
    const c = connect({ host, port });
    const echoes = [];
    let timer;
    const expect = (what) => {
      c.write(what);
      timer = setTimeout(() => c.destroy(new Error(`timeout waiting for the echo of ${what}`)), 3000);
    };
    c.on('connect', () => expect('one'));
    c.on('data', async (d) => {
      clearTimeout(timer);
      echoes.push(String(d));
      if (echoes.length === 2) return c.end(), resolve({ echoes });
      while (!existsSync(until)) await new Promise((r) => setTimeout(r, 20));
      expect('two');
    });
    c.on('error', (e) => (clearTimeout(timer), reject(e)));
    c.setTimeout(3000, () => echoes.length === 0 && c.destroy(new Error('timeout')));
    // A peer that closes first leaves nothing to wait for: say so rather than exit silently.
    c.on('close', () => echoes.length < 2 && (clearTimeout(timer), reject(new Error(`closed after ${echoes.length} echo(es)`))));
  });
}

function udp(host, port, type = host.includes(':') ? 'udp6' : 'udp4') {
  return new Promise((resolve, reject) => {
    const s = createSocket(type);
    const fail = (e) => (clearTimeout(timer), s.close(), reject(e));
    const timer = setTimeout(() => fail(new Error('udp timeout')), 3000);
    s.on('message', (m, r) => {
      clearTimeout(timer);
      s.close();
      resolve({ backend: String(m), from: { address: r.address, port: r.port } });
    });
    s.send('who', port, host, (e) => e && fail(e));
  });
}

const out = [];
for (const step of plan) {
  const results = [];
  // `until`: a file whose appearance ends the step (a loop that must outlast something, however slow the machine).
  for (let i = 0; step.until ? !existsSync(step.until) : i < (step.count ?? 1); i++) {
    try {
      if (step.op === 'tcp') results.push(await tcp(step.host, step.port));
      else if (step.op === 'udp') results.push(await udp(step.host, step.port));
      else if (step.op === 'udp6') results.push(await udp(step.host, step.port, 'udp6'));
      else if (step.op === 'http') results.push(await http(step.host, step.port, step));
      else if (step.op === 'hold') results.push(await hold(step.host, step.port, step.file));
      else if (step.op === 'dns') {
        const r = new Resolver({ timeout: 2000, tries: 1 });
        r.setServers([`${step.server}:${step.port ?? 53}`]);
        results.push({ addresses: await r.resolve4(step.name) });
      }
    } catch (e) {
      results.push({ error: e.message, code: e.code });
    }
  }
  out.push(results);
}
console.log(JSON.stringify(out));
