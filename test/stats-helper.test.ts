// The bound statistical assertions use: exact, tight, and still able to tell wrong splits apart.
import t from 'tap';
import { binomialBounds, checkSplit, FALSE_ALARM } from './helpers/stats.js';

/** P(X = k) for X ~ Binomial(n, p), summed over ks, by direct multiplication (a second method). */
function mass(n: number, p: number, ks: number[]): number {
  let sum = 0;
  for (const k of ks) {
    let v = 1;
    for (let i = 0; i < k; i++) v *= ((n - i) / (k - i)) * p;
    v *= Math.pow(1 - p, n - k);
    sum += v;
  }
  return sum;
}
const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);

t.test('each tail outside the bounds holds at most alpha/2, and the bounds are the tightest that do', async (t) => {
  for (const [n, p] of [[1000, 0.8], [500, 0.7], [400, 0.75], [90, 1 / 3], [100, 0.5]] as const) {
    const [lo, hi] = binomialBounds(n, p);
    const below = mass(n, p, range(0, lo));
    const above = mass(n, p, range(hi + 1, n + 1));
    t.ok(below <= FALSE_ALARM / 2 && above <= FALSE_ALARM / 2, `n=${n} p=${p}: [${lo}, ${hi}], tails ${below.toExponential(2)} / ${above.toExponential(2)}`);
    t.ok(mass(n, p, range(0, lo + 1)) > FALSE_ALARM / 2 && mass(n, p, range(hi, n + 1)) > FALSE_ALARM / 2, `n=${n} p=${p}: one step tighter would break the budget`);
  }
  t.same(binomialBounds(10, 0), [0, 0]);
  t.same(binomialBounds(10, 1), [10, 10]);
});

t.test('checkSplit passes the expected split and fails a wrong one or a stray backend', async (t) => {
  t.ok(checkSplit({ v1: 800, v2: 200 }, { v1: 80, v2: 20 }).ok, 'exactly 80/20');
  t.notOk(checkSplit({ v1: 700, v2: 300 }, { v1: 80, v2: 20 }).ok, '70/30 is not 80/20 over 1000');
  t.notOk(checkSplit({ v1: 800, v2: 199, v3: 1 }, { v1: 80, v2: 20 }).ok, 'a backend with no weight got traffic');
  t.match(checkSplit({ v1: 700, v2: 300 }, { v1: 80, v2: 20 }).message, /v1 700 in \[\d+, \d+\]/, 'the message names counts and bounds');
});
