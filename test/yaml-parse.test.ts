// Plain YAML goes through js-yaml for speed; whatever it reads must be what
// the yaml package reads, and what it might read differently (aliases, tags,
// binary numbers, errors) must still go to the yaml package.
import t from 'tap';
import { stringify } from 'yaml';
import { parsePlain, parseWithYamlPackage, parseYamlText } from '../src/sources/yaml-files.js';
import { cec, endpointSlice, service, splitResources } from './helpers/kube.js';

const CASES: Record<string, string> = {
  'objects as stringify writes them': [service('web', [{ port: 80, name: 'http' }]), endpointSlice('web', 'http', 8080, [{ ip: '10.0.0.1' }]), cec('c', { resources: splitResources({ 'default/web': 100 }) })]
    .map((o) => stringify(o))
    .join('---\n'),
  'scalars of the core schema': 'a: 012\nb: 0o12\nc: 0x1F\nd: 1_000\nf: +12\ng: .5\nh: 1e3\nl: ~\nm: Null\nn: yes\no: True\np: 2024-01-01\nq: 1:20\nr: "x"\nt: -0\nw: null\nx: TRUE\ny: on\nz: "*"\n',
  'empty and comment-only documents keep the indexes': '# header\n---\n---\na: 1\n---\n# nothing\n---\nb: 2\n---\n',
  'block scalars, flow collections, keys': 'a: |\n  line\n  two\nb: >-\n  folded\n  text\nc: [1, {d: e}]\n"quoted key": 2\n1: int key\n? complex\n: value\n<<: not a merge\n',
  'a binary-looking number': 'a: 0b11\n',
  'anchors and aliases': 'a: &x {b: 1}\nc: *x\n',
  tags: 'a: !!str 1\nb: !custom x\n',
  'a directive': '%YAML 1.2\n---\na: 1\n',
  'a duplicate key': 'a: b\na: c\n',
  'bad indentation': 'a: 1\n  b: 2\n',
  'an error in the second document': 'a: 1\n---\nb: [\n',
};

/** The cases js-yaml reads; the rest must go to the yaml package. */
const PLAIN = new Set(['objects as stringify writes them', 'scalars of the core schema', 'empty and comment-only documents keep the indexes', 'block scalars, flow collections, keys']);

t.test('js-yaml reads the plain cases, and only them', async (t) => {
  for (const [name, text] of Object.entries(CASES)) t.equal(parsePlain(text) !== undefined, PLAIN.has(name), name);
});

t.test('parseYamlText reads every case as the yaml package does, errors included', async (t) => {
  for (const [name, text] of Object.entries(CASES)) t.same(parseYamlText('f.yaml', text), parseWithYamlPackage('f.yaml', text), name);
});

t.test('an alias bomb is still refused by the alias limit', async (t) => {
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 8; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
  // As before js-yaml: the yaml package refuses it (its caller reports the file), rather than handing on a shared structure.
  t.throws(() => parseYamlText('bomb.yaml', lines.join('\n') + '\n'), /alias/i, 'refused by the yaml package, not expanded');
});
