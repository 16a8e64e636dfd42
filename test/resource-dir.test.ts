// The standalone source: bad documents are reported by file, object and field,
// keep their last good version serving, and never cost the other documents.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { EnvoyResourceDir } from '../src/sources/envoy-resource-dir.js';
import { edsCluster, endpoints } from './helpers/resources.js';

const yaml = (...docs: object[]) => docs.map((d) => stringify(d)).join('---\n');

t.test('a document that turns bad keeps serving its last good version', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-dir-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'a.yaml'), yaml(edsCluster('one'), edsCluster('two')));
  writeFileSync(join(dir, 'b.yaml'), yaml(endpoints('one', [1])));
  const src = new EnvoyResourceDir(dir);
  const first = src.load();
  t.same(first.errors, []);
  t.same(first.resources.map((r) => r.name), ['one', 'two', 'one']);

  writeFileSync(join(dir, 'a.yaml'), yaml({ ...(edsCluster('one') as object), connect_timeout: 'soon' }, { ...(edsCluster('two') as object), connect_timeout: '9s' }));
  const second = src.load();
  t.equal(second.errors.length, 1);
  t.match(second.errors[0], { file: 'a.yaml', index: 0, object: 'envoy.config.cluster.v3.Cluster/one' });
  t.match(second.errors[0].message, /connect_timeout: want a duration/);
  const one = second.resources.find((r) => r.name === 'one' && r.typeUrl.endsWith('Cluster'));
  t.equal(one?.version, first.resources[0].version, 'the bad document still serves its last good version');
  const two = second.resources.find((r) => r.name === 'two');
  t.not(two?.version, first.resources[1].version, 'its good neighbour updated');

  writeFileSync(join(dir, 'c.yaml'), yaml(edsCluster('two')) + '---\n{ not: [yaml');
  const third = src.load();
  t.ok(third.errors.some((e) => e.file === 'c.yaml' && /duplicate name "two": already defined at a.yaml\[1\]/.test(e.message)), 'duplicates name both places');
  t.ok(third.errors.some((e) => e.file === 'c.yaml' && e.index === 1 && /^YAML:/.test(e.message)), 'broken YAML is reported by file and document');
  t.equal(third.resources.filter((r) => r.name === 'two').length, 1, 'the first definition wins');
});
