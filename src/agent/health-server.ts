// /metrics, /healthz and /readyz on one port, for Prometheus and the kubelet's probes.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface HealthTarget {
  readonly ready: boolean;
  waitingFor?(): string[];
  readonly metrics: { registry: Registry };
}

export async function startHealthServer(target: HealthTarget, port: number, host = '0.0.0.0'): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
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
    res.statusCode = 404;
    res.end('not found: try /metrics, /healthz or /readyz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
