// Two tiny HTTP backends on loopback for the demo: each answers with its name.
import { createServer } from 'node:http';

for (const [name, port] of [['echo-v1', 18081], ['echo-v2', 18082]]) {
  createServer((req, res) => res.end(`${name} ${req.method} ${req.url}\n`)).listen(port, '127.0.0.1');
}
