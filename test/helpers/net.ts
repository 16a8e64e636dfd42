import { createServer, request, Agent, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export { freePort } from './free-port.mjs';

export interface Backend {
  name: string;
  port: number;
  hits: number;
  close(): Promise<void>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** An HTTP server on loopback that answers with its name and echoes what it saw. */
export async function startBackend(t: Teardown, name: string): Promise<Backend> {
  const server: Server = createServer((req, res) => {
    backend.hits++;
    const seen = { backend: name, method: req.method, url: req.url, headers: req.headers };
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-backend', name);
    res.end(JSON.stringify(seen));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const backend: Backend = {
    name,
    port: (server.address() as AddressInfo).port,
    hits: 0,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
  t.teardown(() => backend.close());
  return backend;
}

export interface HttpResult {
  status: number;
  backend: string | undefined;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 4 });

export function httpGet(port: number, path = '/', headers: Record<string, string> = {}, method = 'GET'): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: keepAlive, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, backend: res.headers['x-backend'] as string | undefined, body, headers: res.headers }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

export function closeHttpAgents(): void {
  keepAlive.destroy();
}
