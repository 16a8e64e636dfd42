import type { Any } from '../proto/any.js';
import { anyFromJson } from '../proto/any.js';
import { toXdsResource, type XdsResource } from '../xds/snapshot.js';
import { readYamlDocs } from './yaml-files.js';

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

function describe(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const type = typeof v['@type'] === 'string' ? (v['@type'] as string).split('/').pop() : undefined;
  const name = v.name ?? v.cluster_name ?? v.clusterName;
  return type ? `${type}/${typeof name === 'string' ? name : '?'}` : undefined;
}

/**
 * A directory of Envoy resources written as proto3 JSON/YAML with "@type".
 * A document that turns bad keeps serving its last good version, so one typo
 * neither removes the resource from Envoy nor blocks the other documents.
 */
export class EnvoyResourceDir {
  private lastGood = new Map<string, Any>();

  constructor(private readonly dir: string) {}

  load(): ResourceLoad {
    const errors: ResourceError[] = [];
    const good = new Map<string, Any>();
    const byName = new Map<string, string>();
    const resources: XdsResource[] = [];
    for (const doc of readYamlDocs(this.dir)) {
      const key = `${doc.file}#${doc.index}`;
      const where = `${doc.file}[${doc.index}]`;
      let any: Any | undefined;
      try {
        if (doc.error) throw new Error(`YAML: ${doc.error}`);
        any = anyFromJson(doc.value, describe(doc.value) ?? where);
      } catch (e) {
        errors.push({ file: doc.file, index: doc.index, object: describe(doc.value), message: (e as Error).message });
        any = this.lastGood.get(key);
      }
      if (!any) continue;
      let r: XdsResource;
      try {
        r = toXdsResource(any);
      } catch (e) {
        errors.push({ file: doc.file, index: doc.index, object: describe(doc.value), message: (e as Error).message });
        continue;
      }
      const id = `${r.typeUrl}/${r.name}`;
      const first = byName.get(id);
      if (first) {
        errors.push({ file: doc.file, index: doc.index, object: describe(doc.value), message: `duplicate name "${r.name}": already defined at ${first}` });
        continue;
      }
      byName.set(id, where);
      good.set(key, any);
      resources.push(r);
    }
    this.lastGood = good;
    return { resources, errors };
  }
}
