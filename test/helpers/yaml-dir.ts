// A scratch directory with a src/ folder of Kubernetes YAML that standalone
// agents read (`--source dir:SRC`), edited atomically so an agent watching it
// never reads half a file. Removed at teardown.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface YamlDir {
  /** The scratch directory (not on bpffs). */
  dir: string;
  /** Its src/ folder, the agents' source. */
  src: string;
  /** (Re)writes one YAML file of src/; [] removes it. */
  write(file: string, docs: object[]): void;
}

export function yamlDir(t: Teardown, prefix: string): YamlDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, 'src');
  mkdirSync(src);
  const write = (file: string, docs: object[]) => {
    if (!docs.length) return rmSync(join(src, file), { force: true });
    writeFileSync(join(dir, 'tmp.yaml'), docs.map((d) => stringify(d)).join('---\n'));
    renameSync(join(dir, 'tmp.yaml'), join(src, file));
  };
  return { dir, src, write };
}
