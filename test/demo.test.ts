// The README's demo command, run in its bounded mode.
import t from 'tap';
import { execFileSync } from 'node:child_process';

t.test('scripts/demo.sh --check runs the agent and Envoy on the examples', async (t) => {
  const out = execFileSync('bash', [new URL('../scripts/demo.sh', import.meta.url).pathname, '--check'], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const counts = Object.fromEntries([...out.matchAll(/^\s*(\d+) (echo-v\d)$/gm)].map((m) => [m[2], Number(m[1])]));
  t.equal((counts['echo-v1'] ?? 0) + (counts['echo-v2'] ?? 0), 100, 'all 100 demo requests answered');
  t.ok(counts['echo-v1'] > counts['echo-v2'], `the 80/20 route favours v1: ${JSON.stringify(counts)}`);
});
