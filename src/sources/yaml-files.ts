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
  /** Per item, its document's position and content, so an edit of one document in a file keeps the others' items. */
  sigs?: string[];
  /** A YAML stream cut at its document markers, with each document's item: an edit parses only the documents it changed. */
  chunks?: string[];
  byChunk?: (T | undefined)[];
}

const MARKER = /^---(?:[ \t].*)?$/;

/**
 * The documents of a YAML stream, as text, when it can be cut safely at its
 * "---" lines (no directives, no "..." ends); undefined otherwise. Whatever
 * precedes the first marker belongs to the first document.
 */
export function splitDocuments(text: string): string[] | undefined {
  const lines = text.split('\n');
  const chunks: string[] = [];
  let current: string[] = [];
  let content = false;
  for (const line of lines) {
    if (line.startsWith('%') || /^\.\.\.(\s|$)/.test(line)) return undefined;
    if (MARKER.test(line) && content) {
      chunks.push(current.join('\n'));
      current = [];
      content = false;
    }
    current.push(line);
    if (!MARKER.test(line) && line.trim() !== '' && !line.trimStart().startsWith('#')) content = true;
    else if (MARKER.test(line) && line.trim() !== '---') content = true;
  }
  chunks.push(current.join('\n'));
  return chunks;
}

const signature = (d: YamlDoc) => `${d.index}\0${d.error ?? JSON.stringify(d.value)}`;


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
  /**
   * What the last read() changed, by file: the items before and after
   * (undefined: no such file). Undefined when it read everything.
   */
  lastChanged: Map<string, { before?: T[]; after?: T[] }> | undefined;

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
    if (hit && hit.text === text) return hit;
    const chunks = file.endsWith('.json') ? undefined : splitDocuments(text);
    if (chunks && hit?.chunks) {
      const byChunk = this.reparse(file, chunks, hit);
      if (byChunk) return { text, chunks, byChunk, items: byChunk.filter((x): x is T => x !== undefined) };
    }
    const docs = parseFileText(file, text);
    // Signatures only pay off on a re-read: the first read of a file skips them.
    const sigs = hit ? docs.map(signature) : undefined;
    const kept = new Map<string, T>();
    hit?.sigs?.forEach((sig, i) => kept.set(sig, hit.items[i]));
    const items = docs.map((d, i) => (sigs && kept.get(sigs[i])) ?? this.convert(d));
    // Cut the same way the parser counted, or not remembered as cut at all.
    if (!chunks || docs.some((d) => d.index >= chunks.length || d.error)) return { text, sigs, items };
    const byChunk: (T | undefined)[] = chunks.map(() => undefined);
    docs.forEach((d, i) => (byChunk[d.index] = items[i]));
    return { text, sigs, items, chunks, byChunk };
  }

  /** Each document's item, parsing only documents whose text changed; undefined when one does not parse alone as one document. */
  private reparse(file: string, chunks: string[], hit: Entry<T>): (T | undefined)[] | undefined {
    const out: (T | undefined)[] = [];
    for (let i = 0; i < chunks.length; i++) {
      if (hit.chunks![i] === chunks[i]) {
        out.push(hit.byChunk![i]);
        continue;
      }
      const docs = parseYamlText(file, chunks[i]);
      if (docs.length > 1 || docs.some((d) => d.error || d.index !== 0)) return undefined;
      out.push(docs.length ? this.convert({ ...docs[0], index: i }) : undefined);
    }
    return out;
  }

  /**
   * Without `changed`, lists and reads every file. With the absolute paths a
   * watcher saw change, reads only those; a path that is or was a directory
   * falls back to reading everything, as it may add or remove many files.
   */
  read(changed?: Iterable<string>): T[] {
    this.lastReads = 0;
    this.lastChanged = undefined;
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
    const delta = new Map<string, { before?: T[]; after?: T[] }>();
    const note = (file: string, after: Entry<T> | undefined) => {
      const before = delta.has(file) ? delta.get(file)!.before : this.cache.get(file)?.items;
      if (before !== after?.items) delta.set(file, { before, after: after?.items });
    };
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
        const entry = this.load(abs, file);
        note(file, entry);
        this.cache.set(file, entry);
      } else {
        note(file, undefined);
        if (this.cache.delete(file)) this.order = undefined;
      }
    }
    this.lastChanged = delta;
    return this.all();
  }

  private all(): T[] {
    this.order ??= [...this.cache.keys()].sort();
    const out: T[] = [];
    for (const f of this.order) for (const item of this.cache.get(f)!.items) out.push(item);
    return out;
  }
}
