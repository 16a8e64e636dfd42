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

export function parseYamlText(file: string, text: string): YamlDoc[] {
  const docs: YamlDoc[] = [];
  parseAllDocuments(text).forEach((doc, index) => {
    if (doc.errors.length) docs.push({ file, index, error: doc.errors.map((e) => e.message).join('; ') });
    else {
      const value = doc.toJS({ maxAliasCount: 100 });
      if (value !== null && value !== undefined) docs.push({ file, index, value });
    }
  });
  return docs;
}

/**
 * Reads the YAML files below a path (a directory, or one file) and maps each
 * file's documents through `convert`. Files whose text is unchanged since the
 * last read reuse their converted documents, so an edit costs one file.
 */
export class YamlTree<T> {
  private cache = new Map<string, { text: string; items: T[] }>();

  constructor(
    private readonly path: string,
    private readonly convert: (doc: YamlDoc) => T,
  ) {}

  read(): T[] {
    const isDir = statSync(this.path).isDirectory();
    const files = isDir ? listFiles(this.path).sort() : [this.path];
    const base = isDir ? this.path : join(this.path, '..');
    const next = new Map<string, { text: string; items: T[] }>();
    const out: T[] = [];
    for (const f of files) {
      const file = relative(base, f);
      let text: string;
      try {
        text = readFileSync(f, 'utf8');
      } catch (e) {
        // Deleted between listing and reading, or unreadable: report it as a document error.
        const items = [this.convert({ file, index: 0, error: `cannot read: ${(e as Error).message}` })];
        out.push(...items);
        continue;
      }
      const hit = this.cache.get(file);
      const entry = hit && hit.text === text ? hit : { text, items: parseYamlText(file, text).map(this.convert) };
      next.set(file, entry);
      out.push(...entry.items);
    }
    this.cache = next;
    return out;
  }
}
