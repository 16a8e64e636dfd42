// A node's proxies reconnecting at once must find room in the unix socket's
// accept queue while the agent is busy, not be refused and back off.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapshotCache } from '../src/xds/snapshot-cache.js';
import { XdsServer } from '../src/xds/server.js';
import { silentLogger } from '../src/log.js';

const CONNECTS = 1000;

t.test('a thousand connections arriving while the agent is busy all get queued', async (t) => {
  const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
  t.ok(somaxconn >= CONNECTS, `net.core.somaxconn (${somaxconn}) must be at least ${CONNECTS} for this test`);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-backlog-'));
  const socketPath = join(dir, 'xds.sock');
  const server = new XdsServer({ cache: new SnapshotCache(), log: silentLogger, socketPath });
  await server.start();
  t.teardown(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  // spawnSync blocks this process, so nothing is accepted while the child connects.
  const client = `
    const net = require('node:net');
    let ok = 0, refused = 0, done = 0;
    const socks = [];
    for (let i = 0; i < ${CONNECTS}; i++) {
      const s = net.connect({ path: process.argv[1] });
      socks.push(s);
      s.on('connect', () => { ok++; settle(); });
      s.on('error', () => { refused++; settle(); });
    }
    function settle() { if (++done === ${CONNECTS}) { console.log(JSON.stringify({ ok, refused })); for (const s of socks) s.destroy(); } }
  `;
  const r = spawnSync(process.execPath, ['-e', client, socketPath], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout), { ok: CONNECTS, refused: 0 });
});
