// Node-local proxy ports: stable across restarts, unique, outside the ephemeral range.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../src/agent/agent.js';
import { StableIds } from '../src/ids/stable-ids.js';
import { silentLogger } from '../src/log.js';

t.test('ports are unique and survive a restart through the state file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ports-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'proxy-ports.json');
  const a = new StableIds(file, [14000, 14009]);
  const keys = Array.from({ length: 10 }, (_, i) => `ns/cec-${i}/listener`);
  const ports = keys.map((k) => a.idFor(k));
  t.equal(new Set(ports).size, 10, 'ten keys, ten ports, in a range of ten');
  t.ok(ports.every((p) => p >= 14000 && p <= 14009));
  t.throws(() => a.idFor('one-too-many'), /exhausted/);
  await new Promise((r) => setImmediate(r)); // the state file is written once per burst, after it
  const b = new StableIds(file, [14000, 14009]);
  t.same([...keys].reverse().map((k) => b.idFor(k)), [...ports].reverse(), 'the same ports after a restart, asked in another order');
});

t.test('a proxy port range inside the kernel ephemeral range is refused at start', async (t) => {
  t.throws(
    () => new Agent({ nodeName: 'n', log: silentLogger, proxyPortRange: [40000, 40099] }),
    /proxy port range 40000-40099 overlaps the kernel's ephemeral ports/,
  );
});
