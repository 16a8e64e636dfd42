// The README's policy demo, `scripts/demo.sh --policy` (beside demo.test.ts,
// so that the two, each a minute or two, run in parallel).
import t from 'tap';
import { execFileSync } from 'node:child_process';

t.test('scripts/demo.sh --policy shows the Star Wars verdicts: 200, timeout, 403', async (t) => {
  const out = execFileSync('bash', [new URL('../scripts/demo.sh', import.meta.url).pathname, '--policy'], { encoding: 'utf8', timeout: 240_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const [none, l4, l7, deleted] = out.split(/^  (?:rule1|policies deleted)/m);
  const verdict = (part: string | undefined, pod: string, method: string, path: string) => new RegExp(`^\\s+${pod}\\s+${method}\\s+${path}\\s+-> (.*)$`, 'm').exec(part ?? '')?.[1];
  t.equal(verdict(none, 'xwing', 'POST', '/v1/request-landing'), '200', 'no policy: the xwing lands');
  t.equal(verdict(l4, 'xwing', 'POST', '/v1/request-landing'), 'timeout', 'rule1: the xwing is dropped');
  t.equal(verdict(l4, 'tiefighter', 'POST', '/v1/request-landing'), '200', 'rule1: the tiefighter lands');
  t.equal(verdict(l7, 'tiefighter', 'PUT', '/v1/exhaust-port'), '403 Access denied by policy', 'the L7 rule: 403 from Envoy');
  t.equal(verdict(l7, 'tiefighter', 'POST', '/v1/request-landing'), '200', 'the L7 rule: the landing passes');
  t.equal(verdict(l7, 'xwing', 'POST', '/v1/request-landing'), 'timeout', 'the L7 rule: the xwing is still dropped');
  t.equal(verdict(deleted, 'xwing', 'POST', '/v1/request-landing'), '200', 'policies deleted: the xwing lands again');
  t.equal(verdict(deleted, 'tiefighter', 'PUT', '/v1/exhaust-port'), '200', 'and the exhaust port is open');
});
