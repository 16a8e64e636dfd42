// Plain JavaScript, shared by the TypeScript test helpers and the .mjs ones.
import { createServer } from 'node:net';

/** A port free on 127.0.0.1 right now (Envoy listeners need a fixed port in their config). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
