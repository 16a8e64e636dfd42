import { Model } from '../model/model.js';
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

  constructor(private readonly paths: string[]) {
    this.trees = paths.map((p) => new YamlTree(p, checkDoc));
  }

  /**
   * Without `changed` reads every file; with the paths a watcher saw change,
   * re-reads only those and reuses the rest.
   */
  read(changed?: ReadonlySet<string>): ModelUpdate {
    const issues: TranslationIssue[] = [];
    const objects = [];
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
    return { model: Model.from(objects), issues };
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
