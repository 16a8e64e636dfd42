// The standalone source: bad documents are reported by file, object and field,
// keep their last good version serving, and never cost the other documents.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { EnvoyResourceDir, type FileLoad } from '../src/sources/envoy-resource-dir.js';
import { assemble } from '../src/translate/assemble.js';
import { edsCluster, endpoints } from './helpers/resources.js';

const yaml = (...docs: object[]) => docs.map((d) => stringify(d)).join('---\n');

/** Every file's resources and errors, in file order, across loads that return only changed files. */
function reader(src: EnvoyResourceDir) {
  const files = new Map<string, FileLoad>();
  return () => {
    const changed = src.load();
    for (const [file, load] of changed) {
      if (load) files.set(file, load);
      else files.delete(file);
    }
    const all = [...files.keys()].sort().map((f) => files.get(f)!);
    return { changed, files: all, resources: all.flatMap((f) => f.resources), errors: all.flatMap((f) => f.errors) };
  };
}

t.test('a document that turns bad keeps serving its last good version', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-dir-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'a.yaml'), yaml(edsCluster('one'), edsCluster('two')));
  writeFileSync(join(dir, 'b.yaml'), yaml(endpoints('one', [1])));
  const load = reader(new EnvoyResourceDir(dir));
  const first = load();
  t.same(first.errors, []);
  t.same(first.resources.map((r) => r.name), ['one', 'two', 'one']);

  writeFileSync(join(dir, 'a.yaml'), yaml({ ...(edsCluster('one') as object), connect_timeout: 'soon' }, { ...(edsCluster('two') as object), connect_timeout: '9s' }));
  const second = load();
  t.equal(second.errors.length, 1);
  t.match(second.errors[0], { file: 'a.yaml', index: 0, object: 'envoy.config.cluster.v3.Cluster/one' });
  t.match(second.errors[0].message, /connect_timeout: want a duration/);
  const one = second.resources.find((r) => r.name === 'one' && r.typeUrl.endsWith('Cluster'));
  t.equal(one?.version, first.resources[0].version, 'the bad document still serves its last good version');
  const two = second.resources.find((r) => r.name === 'two');
  t.not(two?.version, first.resources[1].version, 'its good neighbour updated');

  writeFileSync(join(dir, 'c.yaml'), yaml(edsCluster('two')) + '---\n{ not: [yaml');
  const third = load();
  t.ok(third.errors.some((e) => e.file === 'c.yaml' && e.index === 1 && /^YAML:/.test(e.message)), 'broken YAML is reported by file and document');
  t.same([...third.changed.keys()], ['c.yaml'], 'a full read still hands over only what changed: unchanged files keep their loads');
  // Files are units of their own: a name two files define is settled in assembly, first file first.
  const assembled = assemble(third.files.map((f) => ({ object: `Envoy resources ${f.file}`, resources: f.resources.map((r) => r.any), redirects: [], issues: [] })));
  t.ok(assembled.issues.some((i) => i.object === 'Envoy resources c.yaml' && /"two" is also defined, differently, by Envoy resources a.yaml/.test(i.message)), 'the clash is reported on the later file, naming the first');
  t.equal(assembled.resources.find((r) => r.name === 'two')!.version, second.resources.find((r) => r.name === 'two')!.version, 'the first definition wins');
});
