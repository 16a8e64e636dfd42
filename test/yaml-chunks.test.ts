// An edit of one document in a multi-document YAML file parses only that
// document: the others keep their items (and so their model objects).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitDocuments, YamlTree, type YamlDoc } from '../src/sources/yaml-files.js';

t.test('documents are cut where the parser counts them', async (t) => {
  t.same(splitDocuments('a: 1\n---\nb: 2\n'), ['a: 1', '---\nb: 2\n']);
  t.same(splitDocuments('# c\n---\na: 1\n--- \nb: |\n  ---x\n'), ['# c\n---\na: 1', '--- \nb: |\n  ---x\n']);
  t.equal(splitDocuments('%YAML 1.2\n---\na: 1'), undefined, 'directives: not cut');
  t.equal(splitDocuments('a: 1\n...\n---\nb: 2'), undefined, 'document ends: not cut');
});

t.test('an edited document is the only one read again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-chunks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const f = join(dir, 'f.yaml');
  let converted = 0;
  const tree = new YamlTree(dir, (d: YamlDoc) => (converted++, { ...d }));
  writeFileSync(f, 'a: 1\n---\nb: 2\n---\nc: 3\n');
  const first = tree.read();
  t.equal(converted, 3);
  writeFileSync(f, 'a: 1\n---\nb: 20\n---\nc: 3\n');
  const second = tree.read(new Set([f]));
  t.equal(converted, 4, 'one document converted again');
  t.equal(second[0], first[0]);
  t.equal(second[2], first[2]);
  t.same(second[1], { file: 'f.yaml', index: 1, value: { b: 20 } });
  writeFileSync(f, 'a: 1\n---\nb: [\n---\nc: 3\n');
  const third = tree.read(new Set([f]));
  t.match(third[1], { index: 1, error: /^YAML: / }, 'a broken document is reported as the whole-file parse reports it');
  t.equal(third.length, 3);
});
