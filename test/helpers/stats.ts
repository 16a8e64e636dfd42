// Bounds for statistical assertions: a correct implementation fails one less
// than once in 10,000 runs (two-sided, exact binomial tails), so a red run
// means a wrong split rather than bad luck.

export const FALSE_ALARM = 1e-4;

/** The counts k in [lo, hi] a Binomial(n, p) lands in with probability >= 1 - alpha; each tail holds <= alpha/2. */
export function binomialBounds(n: number, p: number, alpha = FALSE_ALARM): [number, number] {
  if (p <= 0) return [0, 0];
  if (p >= 1) return [n, n];
  // The pmf in log space by its ratio recurrence: exact enough for n in the tens of thousands.
  const logPmf = new Array<number>(n + 1);
  logPmf[0] = n * Math.log1p(-p);
  const step = Math.log(p) - Math.log1p(-p);
  for (let k = 0; k < n; k++) logPmf[k + 1] = logPmf[k] + Math.log(n - k) - Math.log(k + 1) + step;
  const pmf = logPmf.map(Math.exp);
  let lo = 0;
  for (let tail = pmf[0]; tail <= alpha / 2 && lo < n; tail += pmf[++lo]);
  let hi = n;
  for (let tail = pmf[n]; tail <= alpha / 2 && hi > 0; tail += pmf[--hi]);
  return [lo, hi];
}

/**
 * Checks observed counts against weights: every weighted name's count lies in
 * its binomial bounds (alpha shared among them), and nothing else got hits.
 */
export function checkSplit(counts: Record<string, number>, weights: Record<string, number>, alpha = FALSE_ALARM): { ok: boolean; message: string } {
  const n = Object.values(counts).reduce((a, b) => a + b, 0);
  const total = Object.values(weights).reduce((a, b) => a + b, 0);
  const names = Object.keys(weights);
  const parts: string[] = [];
  let ok = true;
  for (const name of names) {
    const [lo, hi] = binomialBounds(n, weights[name] / total, alpha / names.length);
    const got = counts[name] ?? 0;
    if (got < lo || got > hi) ok = false;
    parts.push(`${name} ${got} in [${lo}, ${hi}]`);
  }
  const strays = Object.keys(counts).filter((k) => !(k in weights) && counts[k] > 0);
  if (strays.length) ok = false;
  return { ok, message: `${parts.join(', ')} of ${n}${strays.length ? `; unexpected: ${strays.join(', ')}` : ''}` };
}

interface Assert {
  ok(v: unknown, message: string): unknown;
}

/** Asserts checkSplit, naming the split in the message. */
export function assertSplit(t: Assert, counts: Record<string, number>, weights: Record<string, number>, what: string): void {
  const { ok, message } = checkSplit(counts, weights);
  t.ok(ok, `${what}: ${message}`);
}
