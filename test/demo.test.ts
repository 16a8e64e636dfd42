// The README's demo command, run in its bounded mode.
import t from 'tap';
import { execFileSync } from 'node:child_process';

t.test('scripts/demo.sh --check runs the agent and Envoy on the examples', async (t) => {
  const out = execFileSync('bash', [new URL('../scripts/demo.sh', import.meta.url).pathname, '--check'], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const [cecPart, gammaPart] = out.split('HTTPRoute default/echo');
  const count = (text: string, name: string) => Number(new RegExp(`^\\s*(\\d+) ${name}$`, 'm').exec(text)?.[1] ?? 0);
  t.equal(count(cecPart, 'echo-v1') + count(cecPart, 'echo-v2'), 100, 'all 100 CEC requests answered');
  t.ok(count(cecPart, 'echo-v1') > count(cecPart, 'echo-v2'), 'the 80/20 CEC route favours v1');
  t.equal(count(gammaPart, 'echo-v1') + count(gammaPart, 'echo-v2'), 100, 'all 100 HTTPRoute requests answered');
  t.ok(count(gammaPart, 'echo-v1') > count(gammaPart, 'echo-v2'), 'the 70/30 HTTPRoute favours v1');
  t.match(gammaPart, /with x-version: v2 -> echo-v2/, 'the header match routes to v2');
  t.match(gammaPart, /an unmatched path -> HTTP 404/, 'unmatched requests are rejected');
});
