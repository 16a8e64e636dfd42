import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { CORE_SCHEMA, loadAll } from 'js-yaml';
import { parseAllDocuments } from 'yaml';

export interface YamlDoc {
  /** The file, relative to the directory read. */
  file: string;
  /** Position of the document in its file, from 0. */
  index: number;
  value?: unknown;
  /** Why the document could not be read, starting with the syntax it failed ("YAML: ", "JSON: ") where that applies. */
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

/**
 * Anchors, aliases, tags, directives and binary integers: where js-yaml (below)
 * reads YAML differently from the yaml package (aliases shared rather than
 * counted against maxAliasCount, 0b101 as a number), or could. Each starts a
 * token, so it follows a line start, blank or flow indicator; a false positive
 * only costs the slower parser.
 */
const NOT_PLAIN = /(?:^|[\s[{,])(?:[&*!][^\s,[\]{}]|[-+]?0b[01])|^%/m;

/**
 * The documents of plain YAML (what kubectl, helm and editors write) through
 * js-yaml's core schema, about ten times faster than the yaml package, which
 * start-up from thousands of files spends most of its time in. Undefined when
 * the text needs the yaml package: anything NOT_PLAIN matches, or a syntax
 * error, whose report then comes from the yaml package as before.
 */
export function parsePlain(text: string): unknown[] | undefined {
  if (NOT_PLAIN.test(text)) return undefined;
  try {
    return loadAll(text, undefined, { schema: CORE_SCHEMA });
  } catch {
    return undefined;
  }
}

export function parseYamlText(file: string, text: string): YamlDoc[] {
  const plain = parsePlain(text);
  if (!plain) return parseWithYamlPackage(file, text);
  const docs: YamlDoc[] = [];
  plain.forEach((value, index) => {
    if (value !== null && value !== undefined) docs.push({ file, index, value });
  });
  return docs;
}

/** Any YAML, through the yaml package: its errors name line and column, and aliases count against a limit. */
export function parseWithYamlPackage(file: string, text: string): YamlDoc[] {
  const docs: YamlDoc[] = [];
  parseAllDocuments(text).forEach((doc, index) => {
    if (doc.errors.length) docs.push({ file, index, error: `YAML: ${doc.errors.map((e) => e.message).join('; ')}` });
    else {
      const value = doc.toJS({ maxAliasCount: 100 });
      if (value !== null && value !== undefined) docs.push({ file, index, value });
    }
  });
  return docs;
}

/**
 * A `.json` file is one document; JSON.parse reads it an order of magnitude
 * faster than the YAML parser. Only text that is not JSON at all (YAML saved
 * as .json, which worked before) goes to the YAML parser; JSON with a syntax
 * error is reported as JSON, since that is what its author meant.
 */
export function parseFileText(file: string, text: string): YamlDoc[] {
  if (!file.endsWith('.json')) return parseYamlText(file, text);
  const head = text.trimStart()[0];
  if (head !== '{' && head !== '[') return parseYamlText(file, text);
  try {
    const value = JSON.parse(text) as unknown;
    return value === null ? [] : [{ file, index: 0, value }];
  } catch (e) {
    return [{ file, index: 0, error: `JSON: ${(e as Error).message}` }];
  }
}

interface Entry<T> {
  text: string;
  items: T[];
}


/**
 * Reads the YAML files below a path (a directory, or one file) and maps each
 * file's documents through `convert`. Files whose text is unchanged since the
 * last read keep their converted documents (the same objects), so memos keyed
 * on identity downstream keep hitting.
 */
export class YamlTree<T> {
  private cache = new Map<string, Entry<T>>();
  /** Relative paths in read order; undefined until the next read sorts them. */
  private order: string[] | undefined = [];
  /** Files read from disk by the last read(): what an edit costs. */
  lastReads = 0;

  constructor(
    private readonly path: string,
    private readonly convert: (doc: YamlDoc) => T,
  ) {}

  private isDir(): boolean {
    return statSync(this.path).isDirectory();
  }

  private base(isDir: boolean): string {
    return isDir ? this.path : join(this.path, '..');
  }

  /** Reads one file, reusing its converted documents when its text is the same. */
  private load(abs: string, file: string): Entry<T> {
    this.lastReads++;
    let text: string;
    try {
      text = readFileSync(abs, 'utf8');
    } catch (e) {
      // Deleted between listing and reading, or unreadable: report it as a document error.
      return { text: '\0unreadable', items: [this.convert({ file, index: 0, error: `cannot read: ${(e as Error).message}` })] };
    }
    const hit = this.cache.get(file);
    return hit && hit.text === text ? hit : { text, items: parseFileText(file, text).map(this.convert) };
  }

  /**
   * Without `changed`, lists and reads every file. With the absolute paths a
   * watcher saw change, reads only those; a path that is or was a directory
   * falls back to reading everything, as it may add or remove many files.
   */
  read(changed?: Iterable<string>): T[] {
    this.lastReads = 0;
    const isDir = this.isDir();
    const base = this.base(isDir);
    if (changed && isDir) {
      const files = this.update(base, changed);
      if (files) return files;
    }
    const files = isDir ? listFiles(this.path).sort() : [this.path];
    const next = new Map<string, Entry<T>>();
    for (const f of files) {
      const file = relative(base, f);
      next.set(file, this.load(f, file));
    }
    this.cache = next;
    this.order = [...next.keys()];
    return this.all();
  }

  /** Applies the changed paths; undefined when one of them needs a full rescan. */
  private update(base: string, changed: Iterable<string>): T[] | undefined {
    for (const abs of changed) {
      const file = relative(base, abs);
      if (file === '') return undefined;
      // Another tree's file: watchers of several directories may share one set.
      if (file === '..' || file.startsWith('..' + sep)) continue;
      if (file.split(sep).some((p) => p.startsWith('.'))) continue;
      let isFile: boolean;
      try {
        const st = statSync(abs);
        if (st.isDirectory()) return undefined;
        isFile = st.isFile();
      } catch {
        isFile = false;
        // A removed directory takes its files with it.
        const prefix = file + sep;
        for (const k of this.cache.keys()) if (k.startsWith(prefix)) return undefined;
      }
      if (!YAML_FILE.test(file)) continue;
      if (isFile) {
        if (!this.cache.has(file)) this.order = undefined;
        this.cache.set(file, this.load(abs, file));
      } else if (this.cache.delete(file)) this.order = undefined;
    }
    return this.all();
  }

  private all(): T[] {
    this.order ??= [...this.cache.keys()].sort();
    const out: T[] = [];
    for (const f of this.order) for (const item of this.cache.get(f)!.items) out.push(item);
    return out;
  }
}
