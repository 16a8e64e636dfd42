// /metrics, /healthz and /readyz on one port, for Prometheus and the kubelet's
// probes; the same plus the operator tools' API on a unix socket of the node.
import { chmodSync, mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, ListenOptions } from 'node:net';
import { dirname } from 'node:path';
import type { Registry } from 'prom-client';
import { clearStaleSocket } from '../xds/server.js';

export interface HealthTarget {
  readonly ready: boolean;
  waitingFor?(): string[];
  readonly metrics: { registry: Registry };
}

/** Answers a request and returns true, or returns false to leave it to the next. */
export type Route = (req: IncomingMessage, res: ServerResponse) => boolean;

function healthServer(target: HealthTarget, extra?: Route, more = ', /v1/endpoints, /v1/policy or /v1/policy/trace'): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return void res.end('ok\n');
    if (path === '/readyz') {
      if (target.ready) return void res.end('ready\n');
      res.statusCode = 503;
      const waiting = target.waitingFor?.() ?? [];
      return void res.end(`not ready: waiting for the first model from the sources${waiting.map((w) => `\n  ${w}`).join('')}\n`);
    }
    if (path === '/metrics') {
      target.metrics.registry.metrics().then(
        (text) => {
          res.setHeader('content-type', target.metrics.registry.contentType);
          res.end(text);
        },
        (e: Error) => {
          res.statusCode = 500;
          res.end(`${e.message}\n`);
        },
      );
      return;
    }
    if (extra?.(req, res)) return;
    res.statusCode = 404;
    res.end(`not found: try /metrics, /healthz or /readyz${extra ? more : ''}\n`);
  });
}

function listening(server: Server, where: ListenOptions): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => resolve(server));
  });
}

/** `pages` adds routes fit for the metrics port, such as the service map (src/observe/service-map-page.ts). */
export async function startHealthServer(target: HealthTarget, port: number, host = '0.0.0.0', pages?: Route): Promise<{ port: number; close(): Promise<void> }> {
  const server = await listening(healthServer(target, pages, ', /flows/map or /flows/graph'), { port, host });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * The API on a unix socket: only the node's root (and whoever the directory
 * lets in) reaches it, never the network the metrics port is open to, since
 * it tells every pod's labels and every policy.
 */
export async function startApiSocket(target: HealthTarget, socketPath: string, api: Route): Promise<{ close(): Promise<void> }> {
  mkdirSync(dirname(socketPath), { recursive: true, mode: 0o750 });
  clearStaleSocket(socketPath); // left by an agent that was killed
  const server = await listening(healthServer(target, api), { path: socketPath });
  chmodSync(socketPath, 0o660);
  return { close: () => new Promise<void>((r) => server.close(() => r())) };
}
