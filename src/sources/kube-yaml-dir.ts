import { Model, type ModelEdit } from '../model/model.js';
import type { ModelObject } from '../model/objects.js';
import { describeObject, objectKey } from '../model/objects.js';
import type { TranslationIssue } from '../issues/issue.js';
import { checkKubeObject, type Checked } from './kube-objects.js';
import type { ModelSource, ModelUpdate } from './source.js';
import { watchDir } from './watch-dir.js';
import { YamlTree, type YamlDoc } from './yaml-files.js';

function checkDoc(doc: YamlDoc): Checked {
  const origin = { file: doc.file, index: doc.index };
  if (doc.error) return { issue: { object: `${doc.file}[${doc.index}]`, origin, field: '', message: doc.error } };
  return checkKubeObject(doc.value, origin);
}

/** Kubernetes YAML from files: the standalone source. Each read yields a new model whose unchanged objects are the same objects. */
export class KubeYamlDir implements ModelSource {
  private readonly trees: YamlTree<Checked>[];
  private unwatch: (() => void)[] = [];
  private model: Model | undefined;
  /** The object each "Kind/ns/name" last read as, with where it was. */
  private current = new Map<string, Extract<Checked, { object: ModelObject }>>();

  constructor(private readonly paths: string[]) {
    this.trees = paths.map((p) => new YamlTree(p, checkDoc));
  }

  /**
   * Without `changed` reads every file; with the paths a watcher saw change,
   * re-reads only those and reuses the rest.
   */
  read(changed?: ReadonlySet<string>): ModelUpdate {
    const t0 = performance.now();
    const issues: TranslationIssue[] = [];
    const objects: (Extract<Checked, { object: ModelObject }>)[] = [];
    const seen = new Map<string, string>();
    for (const tree of this.trees) {
      for (const c of tree.read(changed)) {
        if ('issue' in c) issues.push(c.issue);
        if (!('object' in c)) continue;
        const id = `${c.object.kind}/${objectKey(c.object)}`;
        const where = `${c.origin.file}[${c.origin.index}]`;
        const first = seen.get(id);
        if (first) {
          issues.push({ object: describeObject(c.object), origin: c.origin, field: 'metadata.name', message: `defined twice; the first, at ${first}, wins` });
          continue;
        }
        seen.set(id, where);
        objects.push(c);
      }
    }
    const t1 = performance.now();
    const model = (this.model = this.derive(objects));
    return { model, issues, timings: { readMs: t1 - t0, modelMs: performance.now() - t1 } };
  }

  /** The next model from the last, by the objects that changed, so unchanged ones keep their identity and translations. */
  private derive(objects: (Extract<Checked, { object: ModelObject }>)[]): Model {
    const next = new Map<string, Extract<Checked, { object: ModelObject }>>();
    for (const c of objects) next.set(`${c.object.kind}/${objectKey(c.object)}`, c);
    const prev = this.current;
    this.current = next;
    if (!this.model) return Model.from(objects);
    const edits: ModelEdit[] = [];
    for (const [id, c] of next) {
      const before = prev.get(id);
      if (before?.object !== c.object || before.origin?.file !== c.origin?.file || before.origin?.index !== c.origin?.index) edits.push(c);
    }
    for (const [id, c] of prev) if (!next.has(id)) edits.push({ removed: { kind: c.object.kind, key: objectKey(c.object) } });
    return this.model.withEdits(edits);
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
