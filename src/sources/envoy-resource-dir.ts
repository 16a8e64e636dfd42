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

export interface ResourceLoad {
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
 */
export class EnvoyResourceDir {
  private readonly tree: YamlTree<Parsed>;
  /** By file, then document index: what each document last served. */
  private lastGood = new Map<string, XdsResource[]>();

  constructor(dir: string) {
    this.tree = new YamlTree(dir, parseDoc);
  }

  /** Without `changed` reads every file; with the paths a watcher saw change, only those. */
  load(changed?: ReadonlySet<string>): ResourceLoad {
    const errors: ResourceError[] = [];
    const good = new Map<string, XdsResource[]>();
    // Keyed without building a string per resource: at tens of thousands of resources
    // the concatenations cost more than the edit itself.
    const byName = new Map<string, Map<string, Parsed>>();
    const resources: XdsResource[] = [];
    for (const p of this.tree.read(changed)) {
      if (p.error) errors.push({ file: p.file, index: p.index, object: p.object, message: p.error });
      const r = p.resource ?? this.lastGood.get(p.file)?.[p.index];
      if (!r) continue;
      let names = byName.get(r.typeUrl);
      if (!names) byName.set(r.typeUrl, (names = new Map()));
      const first = names.get(r.name);
      if (first) {
        errors.push({ file: p.file, index: p.index, object: p.object, message: `duplicate name "${r.name}": already defined at ${first.file}[${first.index}]` });
        continue;
      }
      names.set(r.name, p);
      let kept = good.get(p.file);
      if (!kept) good.set(p.file, (kept = []));
      kept[p.index] = r;
      resources.push(r);
    }
    this.lastGood = good;
    return { resources, errors };
  }
}
