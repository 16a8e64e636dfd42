import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';

export interface YamlDoc {
  /** The file, relative to the directory read. */
  file: string;
  /** Position of the document in its file, from 0. */
  index: number;
  value?: unknown;
  error?: string;
}

const YAML_FILE = /\.(ya?ml|json)$/;

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p));
    else if (YAML_FILE.test(e.name)) out.push(p);
  }
  return out;
}

/** Every YAML document in files below `dir`, in a stable order; a document that does not parse carries its error. */
export function readYamlDocs(path: string): YamlDoc[] {
  const files = statSync(path).isDirectory() ? listFiles(path).sort() : [path];
  const base = statSync(path).isDirectory() ? path : join(path, '..');
  const docs: YamlDoc[] = [];
  for (const f of files) {
    const file = relative(base, f);
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      docs.push({ file, index: 0, error: `cannot read: ${(e as Error).message}` });
      continue;
    }
    parseAllDocuments(text).forEach((doc, index) => {
      if (doc.errors.length) docs.push({ file, index, error: doc.errors.map((e) => e.message).join('; ') });
      else {
        const value = doc.toJS({ maxAliasCount: 100 });
        if (value !== null && value !== undefined) docs.push({ file, index, value });
      }
    });
  }
  return docs;
}
