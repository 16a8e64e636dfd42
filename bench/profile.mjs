// Reads a V8 .cpuprofile (node --cpu-prof) into self time per function and
// per phase of the agent's pipeline.
import { readFileSync } from 'node:fs';
import { col, root } from './lib.mjs';

/**
 * A frame's phase, by the file its code is in; undefined for frames that say
 * nothing on their own (builtins like JSON.parse, node internals), which take
 * their caller's phase.
 */
const PHASES = [
  ['datapath apply', /\/dist\/redirect\//],
  ['read/parse', /\/dist\/sources\/|\/node_modules\/(yaml|@kubernetes|node-fetch|ws|js-yaml|form-data|isomorphic-ws)\//],
  ['model', /\/dist\/model\//],
  ['assemble', /\/dist\/translate\/assemble\.js|\/dist\/xds\/snapshot\.js/],
  ['proto from JSON', /\/dist\/proto\//],
  ['translate', /\/dist\/(translate|policy)\//],
  ['encode/serve', /\/dist\/(xds|gen)\/|\/node_modules\/(@bufbuild|@grpc|protobufjs)\//],
  ['agent (other)', /\/dist\/(agent|ids|envoy)\//],
  ['logging', /\/node_modules\/(pino|sonic-boom|thread-stream)/],
  ['module loading', /^node:internal\/modules\//],
];

function phaseOf(frame) {
  if (frame.functionName === '(garbage collector)') return 'gc';
  if (frame.functionName === '(idle)') return 'idle';
  for (const [name, re] of PHASES) if (re.test(frame.url)) return name;
  return undefined;
}

/** Self time by function and by phase, in ms. */
export function readProfile(file) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  const phases = new Map();
  const functions = new Map();
  const phaseMemo = new Map();
  const phaseOfNode = (id) => {
    if (phaseMemo.has(id)) return phaseMemo.get(id);
    const own = phaseOf(byId.get(id).callFrame);
    const ph = own ?? (parent.has(id) ? phaseOfNode(parent.get(id)) : 'other');
    phaseMemo.set(id, ph);
    return ph;
  };
  for (const [id, ms] of self) {
    const { callFrame: f } = byId.get(id);
    const ph = phaseOfNode(id);
    phases.set(ph, (phases.get(ph) ?? 0) + ms);
    if (ph === 'idle') continue;
    const where = f.url ? `${f.url.replace(/^file:\/\//, '').replace(root, '')}:${f.lineNumber + 1}` : '(native)';
    const key = `${f.functionName || '(anonymous)'} ${where}`;
    const fn = functions.get(key) ?? { key, ms: 0, phase: ph };
    fn.ms += ms;
    functions.set(key, fn);
  }
  return { phases, functions: [...functions.values()].sort((a, b) => b.ms - a.ms) };
}

const busy = (prof) => [...prof.phases].filter(([k]) => k !== 'idle').reduce((s, [, v]) => s + v, 0);

export function phaseTable(prof) {
  const total = busy(prof);
  // V8 stamps samples with wall time: on a busy machine, time the agent waited for a core lands on what it was running.
  const lines = [`phase            sampled-ms  share   (busy ${total.toFixed(0)} ms, idle ${(prof.phases.get('idle') ?? 0).toFixed(0)} ms)`];
  for (const [k, v] of [...prof.phases].filter(([k]) => k !== 'idle').sort((a, b) => b[1] - a[1])) lines.push(`${k.padEnd(16)} ${col(v, 10)} ${col(`${((100 * v) / total).toFixed(1)}%`, 6)}`);
  return lines.join('\n');
}

export function topFunctions(prof, n) {
  const total = busy(prof);
  return ['sampled-self-ms  share  phase           function', ...prof.functions.slice(0, n).map((f) => `${col(f.ms, 15)} ${col(`${((100 * f.ms) / total).toFixed(1)}%`, 6)}  ${f.phase.padEnd(15)} ${f.key}`)].join('\n');
}
