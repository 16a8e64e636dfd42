// An edit to one file among many costs that file: the watcher names the files
// that changed, only they are read again, and every other file's objects stay
// the very same objects, so the translation memo keeps hitting.
import t from 'tap';
import { mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { KubeYamlDir } from '../src/sources/kube-yaml-dir.js';
import { EnvoyResourceDir } from '../src/sources/envoy-resource-dir.js';
import { watchDir } from '../src/sources/watch-dir.js';
import { YamlTree, type YamlDoc } from '../src/sources/yaml-files.js';
import type { ModelUpdate } from '../src/sources/source.js';
import { service } from './helpers/kube.js';

const FILES = 300;

function tempDir(t: Tap.Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-incr-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** As editors and the agent tests do: write aside, then rename into place. */
function put(dir: string, file: string, text: string): void {
  const tmp = join(dir, `.${file.replace(/\//g, '_')}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, file));
}

const svc = (name: string, port = 80) => stringify(service(name, [{ port, name: 'http' }], { namespace: 'default', clusterIP: '10.96.0.10' }));

function fill(dir: string): void {
  for (let i = 0; i < FILES; i++) put(dir, `svc-${String(i).padStart(4, '0')}.yaml`, svc(`s${i}`));
}

/** The next batch of changed paths the watcher reports. */
function nextBatch(dir: string, t: Tap.Test): { batch: Promise<ReadonlySet<string> | undefined> } {
  let resolve!: (c: ReadonlySet<string> | undefined) => void;
  const batch = new Promise<ReadonlySet<string> | undefined>((r) => (resolve = r));
  const stop = watchDir(dir, (c) => resolve(c), 30);
  t.teardown(stop);
  return { batch };
}

t.test('a watched edit reads one file and keeps every other object', async (t) => {
  const dir = tempDir(t);
  fill(dir);
  const parsed: string[] = [];
  const tree = new YamlTree(dir, (d: YamlDoc) => (parsed.push(d.file), { doc: d }));
  const first = tree.read();
  t.equal(first.length, FILES);
  t.equal(tree.lastReads, FILES, 'the first read reads every file');

  const { batch } = nextBatch(dir, t);
  put(dir, 'svc-0007.yaml', svc('s7', 81));
  const changed = await batch;
  t.ok(changed, 'the watcher names what changed');
  t.ok(changed!.has(join(dir, 'svc-0007.yaml')), 'including the renamed-in file');
  parsed.length = 0;
  const second = tree.read(changed);
  t.equal(tree.lastReads, 1, 'one file read for one edit');
  t.same(parsed, ['svc-0007.yaml'], 'one file parsed');
  t.equal(second.length, FILES);
  t.not(second[7], first[7], 'the edited document is new');
  t.equal(second.filter((x, i) => x === first[i]).length, FILES - 1, 'every other document is the same object');

  const full = tree.read();
  t.equal(full.filter((x, i) => x === second[i]).length, FILES, 'a full rescan keeps identity too');
});

t.test('removals, new files and new directories', async (t) => {
  const dir = tempDir(t);
  fill(dir);
  const tree = new YamlTree(dir, (d: YamlDoc) => d.file);
  tree.read();
  unlinkSync(join(dir, 'svc-0000.yaml'));
  let out = tree.read(new Set([join(dir, 'svc-0000.yaml'), join(dir, '.ignored.tmp')]));
  t.equal(out.length, FILES - 1, 'a deleted file takes its documents with it');
  t.equal(tree.lastReads, 0, 'nothing read to learn of a deletion');
  put(dir, 'a-first.yaml', svc('first'));
  out = tree.read(new Set([join(dir, 'a-first.yaml')]));
  t.equal(out[0], 'a-first.yaml', 'a new file takes its place in name order');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'x.yaml'), svc('x'));
  out = tree.read(new Set([join(dir, 'sub')]));
  t.ok(out.includes(join('sub', 'x.yaml')), 'a new directory is read whole');
  rmSync(join(dir, 'sub'), { recursive: true });
  out = tree.read(new Set([join(dir, 'sub')]));
  t.notOk(out.includes(join('sub', 'x.yaml')), 'a removed directory takes its files with it');
  t.equal(tree.read(new Set(['/elsewhere/other.yaml'])).length, out.length, "another tree's paths are ignored");
  t.equal(tree.lastReads, 0);
});

t.test('KubeYamlDir: Model.get returns the same object for an unchanged file', async (t) => {
  const dir = tempDir(t);
  fill(dir);
  const src = new KubeYamlDir([dir]);
  const updates: ModelUpdate[] = [];
  let wake: () => void = () => {};
  await src.start((u) => (updates.push(u), wake()));
  t.teardown(() => src.stop());
  const before = updates[0]!.model;
  const next = new Promise<void>((r) => (wake = r));
  put(dir, 'svc-0003.yaml', svc('s3', 8080));
  await next;
  const after = updates[updates.length - 1]!.model;
  t.equal(after.service('default', 's3')?.spec.ports?.[0]?.port, 8080, 'the edit is read');
  t.not(after.service('default', 's3'), before.service('default', 's3'));
  t.equal(after.service('default', 's4'), before.service('default', 's4'), 'an untouched Service is the same object');
  t.equal(after.services().filter((s) => s === before.service(s.metadata.namespace!, s.metadata.name)).length, FILES - 1);
});

t.test('.json files: JSON.parse, YAML text still accepted, syntax errors name the file', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'good.json'), JSON.stringify(service('j', [{ port: 80 }], { namespace: 'default', clusterIP: '10.96.0.11' })));
  writeFileSync(join(dir, 'yaml-in.json'), svc('y'));
  writeFileSync(join(dir, 'bad.json'), '{"apiVersion": "v1", "kind": "Service",, }');
  const { model, issues } = new KubeYamlDir([dir]).read();
  t.ok(model.service('default', 'j'), 'JSON read');
  t.ok(model.service('default', 'y'), 'YAML in a .json file still read');
  t.equal(issues.length, 1);
  t.equal(issues[0]!.object, 'bad.json[0]', 'the issue names the file');
  t.match(issues[0]!.message, /^JSON: /);

  const raw = tempDir(t);
  writeFileSync(join(raw, 'broken.json'), '{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": ');
  const load = new EnvoyResourceDir(raw).load().get('broken.json')!;
  t.equal(load.errors.length, 1);
  t.equal(load.errors[0]!.file, 'broken.json', 'a raw resource file names itself too');
  t.match(load.errors[0]!.message, /JSON: /);
});
