import { parseAllDocuments } from 'yaml';
import jsyaml from 'js-yaml';
import { readFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
const viaYaml = (t) => parseAllDocuments(t).map((d) => (d.errors.length ? 'ERR' : d.toJS({ maxAliasCount: 100 })));
const viaJs = (t) => { try { return jsyaml.loadAll(t, undefined, { schema: jsyaml.CORE_SCHEMA }); } catch (e) { return 'THROW ' + e.message.split('\n')[0]; } };
const cases = ['', '---\n', 'a: 1\n---\n', '---\na: 1\n---\n---\nb: 2\n', '# c\n', 'a: 1\n...\n---\nb: 2\n', 'a: 012\nb: 0o12\nc: 0x1F\nd: 1_000\ne: 0b11\nf: +12\ng: .5\nh: 1e3\ni: .inf\nj: -.Inf\nk: .NaN\nl: ~\nm: Null\nn: yes\no: True\np: 2024-01-01\nq: 1:20\nr: "x"\ns: 12345678901234567890\nt: -0\nu: 0.\nv: 1.0\nw: null\nx: TRUE\n', '- a\n- b: c\n  d: [1, 2, {e: f}]\n', 'a: |\n  line\n  two\nb: >-\n  folded\n  text\n', '? a\n: b\n', 'a: b\na: c\n', 'a: 1\n  b: 2\n', '{"a": 1}\n', 'a: 1\n---\n\n---\nb: 2\n', 'a: !!str 1\n', '%YAML 1.2\n---\na: 1\n', 'a: "\\u00e9\\x41"\n', "a: 'it''s'\n", 'a:\n', 'a: - b\n', '- - a\n  - b\n', 'key with spaces: v\n"quoted key": 2\n1: int key\n'];
let diff = 0;
for (const c of cases) {
  const a = JSON.stringify(viaYaml(c)), b = JSON.stringify(viaJs(c));
  if (a !== b) { diff++; console.log('DIFF', JSON.stringify(c), '\n  yaml:', a, '\n  js  :', b); }
}
const files = execSync("git ls-files '*.yaml' '*.yml'; find /work/main/examples /work/main/test -name '*.yaml' 2>/dev/null", { encoding: 'utf8' }).split('\n').filter(Boolean);
let n = 0;
for (const f of new Set(files)) { let t; try { t = readFileSync(f, 'utf8'); } catch { continue; } n++; const a = JSON.stringify(viaYaml(t)), b = JSON.stringify(viaJs(t)); if (a !== b) { diff++; console.log('FILE DIFF', f); } }
console.log('files', n, 'diffs', diff);
