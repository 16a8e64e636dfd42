import type { Any } from '../proto/any.js';
import { anyFromJson } from '../proto/any.js';
import { toXdsResource, type XdsResource } from '../resources/resource.js';
import { YamlTree, type YamlDoc } from './yaml-files.js';

export interface ResourceError {
  file: string;
  index: number;
  /** type/name when the document got far enough to tell. */
  object?: string;
  message: string;
}

/** One file's resources and the problems of its documents. */
export interface FileLoad {
  file: string;
  resources: XdsResource[];
  errors: ResourceError[];
}

interface Parsed {
  file: string;
  index: number;
  object?: string;
  resource?: XdsResource;
  error?: string;
}

function describe(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const type = typeof v['@type'] === 'string' ? (v['@type'] as string).split('/').pop() : undefined;
  const name = v.name ?? v.cluster_name ?? v.clusterName;
  return type ? `${type}/${typeof name === 'string' ? name : '?'}` : undefined;
}

function parseDoc(doc: YamlDoc): Parsed {
  const object = describe(doc.value);
  const base = { file: doc.file, index: doc.index, object };
  if (doc.error) return { ...base, error: doc.error };
  try {
    const any: Any = anyFromJson(doc.value, object ?? `${doc.file}[${doc.index}]`);
    return { ...base, resource: toXdsResource(any) };
  } catch (e) {
    return { ...base, error: (e as Error).message };
  }
}

/**
 * A directory of Envoy resources written as proto3 JSON/YAML with "@type".
 * A document that turns bad keeps serving its last good version, so one typo
 * neither removes the resource from Envoy nor blocks the other documents.
 * Each file is loaded on its own, so an edit costs its file, whatever the
 * directory holds; names that clash across files are settled where every
 * other name clash is, in assembly.
 */
export class EnvoyResourceDir {
  private readonly tree: YamlTree<Parsed>;
  /** By file, then document index: what each document last served. */
  private lastGood = new Map<string, XdsResource[]>();
  /** By file: the documents last loaded, so a rescan hands over only files whose documents differ. */
  private lastDocs = new Map<string, readonly Parsed[]>();

  constructor(readonly dir: string) {
    this.tree = new YamlTree(dir, parseDoc);
  }

  /**
   * The files that changed since the last load (all of them on the first, or
   * without `changed`, the paths a watcher saw change), each with what it now
   * serves; a file that is gone maps to undefined.
   */
  load(changed?: ReadonlySet<string>): Map<string, FileLoad | undefined> {
    const items = this.tree.read(changed);
    const delta = this.tree.lastChanged;
    const byFile = new Map<string, Parsed[] | undefined>();
    if (delta) for (const [file, { after }] of delta) byFile.set(file, after);
    else {
      for (const file of this.lastGood.keys()) byFile.set(file, undefined);
      for (const p of items) {
        let docs = byFile.get(p.file);
        if (!docs) byFile.set(p.file, (docs = []));
        docs.push(p);
      }
    }
    const out = new Map<string, FileLoad | undefined>();
    for (const [file, docs] of byFile) {
      if (!docs) {
        if (!this.lastGood.has(file)) continue;
        this.lastGood.delete(file);
        this.lastDocs.delete(file);
        out.set(file, undefined);
        continue;
      }
      const had = this.lastDocs.get(file);
      if (had && had.length === docs.length && had.every((p, i) => p === docs[i])) continue;
      this.lastDocs.set(file, docs);
      const before = this.lastGood.get(file);
      const kept: XdsResource[] = [];
      const load: FileLoad = { file, resources: [], errors: [] };
      for (const p of docs) {
        if (p.error) load.errors.push({ file, index: p.index, object: p.object, message: p.error });
        const r = p.resource ?? before?.[p.index];
        if (!r) continue;
        kept[p.index] = r;
        load.resources.push(r);
      }
      this.lastGood.set(file, kept);
      out.set(file, load);
    }
    return out;
  }
}
