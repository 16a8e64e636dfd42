// Port ranges become longest-prefix entries that cover exactly the range.
import t from 'tap';
import { rangeToPrefixes } from '../src/policy/ports.js';
import { seeded } from './helpers/policy-world.js';

/** Whether aligned prefixes tile [lo, hi] with no gap, overlap or spill (as intervals, sorted). */
function tiles(prefixes: { port: number; prefixLen: number }[], lo: number, hi: number): boolean {
  let next = lo;
  for (const { port, prefixLen } of [...prefixes].sort((a, b) => a.port - b.port)) {
    const size = 2 ** (16 - prefixLen);
    if (port % size !== 0 || port !== next) return false;
    next = port + size;
  }
  return next === hi + 1;
}

/** A member-by-member check on small ranges, independent of the interval reasoning above. */
function coversByPort(prefixes: { port: number; prefixLen: number }[], lo: number, hi: number): boolean {
  for (let p = Math.max(0, lo - 40); p <= Math.min(65535, hi + 40); p++) {
    const n = prefixes.filter((x) => p >> (16 - x.prefixLen) === x.port >> (16 - x.prefixLen)).length;
    if (n !== (p >= lo && p <= hi ? 1 : 0)) return false;
  }
  return true;
}

t.test('known ranges', async (t) => {
  t.same(rangeToPrefixes(80, 80), [{ port: 80, prefixLen: 16 }]);
  t.same(rangeToPrefixes(0, 65535), [{ port: 0, prefixLen: 0 }]);
  t.same(rangeToPrefixes(8000, 8003), [{ port: 8000, prefixLen: 14 }]);
  t.same(rangeToPrefixes(1, 65535).length, 16, '1-65535: one prefix per bit');
  t.same(rangeToPrefixes(1024, 2047), [{ port: 1024, prefixLen: 6 }]);
});

t.test('random ranges: the prefixes cover exactly the range, once each, and are few', async (t) => {
  // A fixed-seed generator: the same 2,000 ranges every run, skewed towards edges and small spans.
  const rand = seeded(0x9e3779b9);
  let bad = 0;
  for (let i = 0; i < 2000; i++) {
    const lo = rand(4) === 0 ? rand(3) : rand(65536);
    const span = rand(3) === 0 ? rand(16) : rand(65536 - lo);
    const hi = Math.min(65535, lo + span);
    const prefixes = rangeToPrefixes(lo, hi);
    const exact = tiles(prefixes, lo, hi) && (hi - lo > 64 || coversByPort(prefixes, lo, hi));
    // A range splits into at most two prefixes per bit.
    if (!exact || prefixes.length > 30) {
      bad++;
      t.fail(`${lo}-${hi}: ${JSON.stringify(prefixes)}`);
    }
  }
  t.equal(bad, 0, '2,000 ranges covered exactly');
});
