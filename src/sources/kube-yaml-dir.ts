import type { Model, ModelEdit } from '../model/model.js';
import type { ModelObject } from '../model/objects.js';
import { describeObject, objectKey } from '../model/objects.js';
import type { TranslationIssue } from '../issues/issue.js';
import { checkKubeObject, type Checked } from './kube-objects.js';
import type { ModelSource, ModelUpdate } from './source.js';
import { watchDir } from './watch-dir.js';
import { ModelDeriver } from './model-deriver.js';
import { YamlTree, type YamlDoc } from './yaml-files.js';

function checkDoc(doc: YamlDoc): Checked {
  const origin = { file: doc.file, index: doc.index };
  if (doc.error) return { issue: { object: `${doc.file}[${doc.index}]`, origin, field: '', message: doc.error } };
  return checkKubeObject(doc.value, origin);
}

type Known = Extract<Checked, { object: ModelObject }>;
const idOf = (o: ModelObject) => `${o.kind}/${objectKey(o)}`;
const fileKey = (tree: number, file: string) => `${String(tree).padStart(4, '0')}\0${file}`;

/** Kubernetes YAML from files: the standalone source. Each read yields a new model whose unchanged objects are the same objects. */
export class KubeYamlDir implements ModelSource {
  private readonly trees: YamlTree<Checked>[];
  private unwatch: (() => void)[] = [];
  private model: Model | undefined;
  private readonly deriver = new ModelDeriver();
  /** Which file (tree and path) holds each "Kind/ns/name". */
  private readonly owner = new Map<string, string>();
  /** The documents' issues, by file, in file order once sorted. */
  private readonly fileIssues = new Map<string, TranslationIssue[]>();
  /** Objects defined twice in the last full read. */
  private duplicates = 0;

  constructor(private readonly paths: string[]) {
    this.trees = paths.map((p) => new YamlTree(p, checkDoc));
  }

  /**
   * Without `changed` reads every file; with the paths a watcher saw change,
   * re-reads only those and reuses the rest.
   */
  read(changed?: ReadonlySet<string>): ModelUpdate {
    const t0 = performance.now();
    const items = this.trees.map((tree) => tree.read(changed));
    const t1 = performance.now();
    const quick = this.model && this.byChangedFiles();
    if (quick) return { model: (this.model = quick.model), issues: quick.issues, timings: { readMs: t1 - t0, modelMs: performance.now() - t1 } };
    const issues: TranslationIssue[] = [];
    const objects: Known[] = [];
    const seen = new Map<string, string>();
    this.fileIssues.clear();
    this.duplicates = 0;
    items.forEach((list, t) => {
      for (const c of list) {
        if ('issue' in c) {
          issues.push(c.issue);
          const key = fileKey(t, c.issue.origin?.file ?? '');
          this.fileIssues.set(key, [...(this.fileIssues.get(key) ?? []), c.issue]);
        }
        if (!('object' in c)) continue;
        const id = `${c.object.kind}/${objectKey(c.object)}`;
        const where = `${c.origin.file}[${c.origin.index}]`;
        const first = seen.get(id);
        if (first) {
          this.duplicates++;
          issues.push({ object: describeObject(c.object), origin: c.origin, field: 'metadata.name', message: `defined twice; the first, at ${first}, wins` });
          continue;
        }
        seen.set(id, where);
        objects.push(c);
      }
    });
    const t2 = performance.now();
    const model = (this.model = this.derive(objects, items));
    return { model, issues, timings: { readMs: t2 - t0, modelMs: performance.now() - t2 } };
  }

  /**
   * The next model from the changed files alone, when every tree could say
   * which files changed and no object is defined twice (the first definition
   * winning would need the others' places); undefined otherwise.
   */
  private byChangedFiles(): { model: Model; issues: TranslationIssue[] } | undefined {
    if (this.duplicates) return undefined;
    const deltas = this.trees.map((tree) => tree.lastChanged);
    if (deltas.some((d) => !d)) return undefined;
    const gone = new Map<string, Known>();
    const came = new Map<string, Known>();
    const owners = new Map<string, string | undefined>();
    const owner = (id: string) => (owners.has(id) ? owners.get(id) : this.owner.get(id));
    const issues = new Map<string, TranslationIssue[]>();
    deltas.forEach((delta, t) => {
      for (const [file, { before }] of delta!) for (const c of before ?? []) if ('object' in c) {
        const id = idOf(c.object);
        if (owner(id) === fileKey(t, file)) (owners.set(id, undefined), gone.set(id, c));
      }
    });
    let clash = false;
    deltas.forEach((delta, t) => {
      for (const [file, { after }] of delta!) {
        issues.set(fileKey(t, file), (after ?? []).flatMap((c) => ('issue' in c ? [c.issue] : [])));
        for (const c of after ?? []) if ('object' in c) {
          const id = idOf(c.object);
          if (owner(id) !== undefined) clash = true;
          owners.set(id, fileKey(t, file));
          came.set(id, c);
        }
      }
    });
    if (clash) return undefined;
    for (const [id, o] of owners) o === undefined ? this.owner.delete(id) : this.owner.set(id, o);
    for (const [key, list] of issues) list.length ? this.fileIssues.set(key, list) : this.fileIssues.delete(key);
    const edits: ModelEdit[] = [];
    for (const [id, c] of came) {
      const before = gone.get(id);
      if (before?.object !== c.object || before.origin.file !== c.origin.file || before.origin.index !== c.origin.index) edits.push(c);
    }
    for (const [id, c] of gone) if (!came.has(id)) edits.push({ removed: { kind: c.object.kind, key: objectKey(c.object) } });
    const all = [...this.fileIssues].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).flatMap(([, l]) => l);
    return { model: this.deriver.apply({ gone: gone.values(), came: came.values() }, edits), issues: all };
  }

  /** The next model from the last by the objects that changed, and which file holds each object. */
  private derive(objects: Known[], items: Checked[][]): Model {
    this.owner.clear();
    items.forEach((list, t) => {
      for (const c of list) if ('object' in c && !this.owner.has(idOf(c.object))) this.owner.set(idOf(c.object), fileKey(t, c.origin.file ?? ''));
    });
    return this.deriver.next(objects);
  }

  async start(onChange: (u: ModelUpdate) => void): Promise<void> {
    onChange(this.read());
    this.unwatch = this.paths.map((p) => watchDir(p, (changed) => onChange(this.read(changed))));
  }

  async stop(): Promise<void> {
    for (const u of this.unwatch) u();
    this.unwatch = [];
  }
}
