// An RE2 pattern for an inclusive range of decimal integers, so an RBAC header
// matcher can say "this port range" about the port inside a CONNECT authority
// (RBAC's own port matchers see the tunnel's port, not the one in the header).
// The range is cut into pieces that each fix a prefix and vary one digit
// position over a span, followed by free digits.

const span = (lo: string, hi: string) => (lo === hi ? lo : `[${lo}-${hi}]`);
const free = (n: number) => (n === 0 ? '' : n === 1 ? '[0-9]' : `[0-9]{${n}}`);

/** Pieces for lo..hi of the same number of digits (strings, no leading zeros needed by the caller). */
function sameLength(lo: string, hi: string): string[] {
  const n = lo.length;
  if (n === 1) return [span(lo, hi)];
  if (lo[0] === hi[0]) return sameLength(lo.slice(1), hi.slice(1)).map((p) => lo[0] + p);
  const out: string[] = [];
  let first = Number(lo[0]);
  let last = Number(hi[0]);
  if (!/^0*$/.test(lo.slice(1))) out.push(...sameLength(lo.slice(1), '9'.repeat(n - 1)).map((p) => lo[0] + p)), first++;
  const tail = /^9*$/.test(hi.slice(1)) ? [] : sameLength('0'.repeat(n - 1), hi.slice(1)).map((p) => hi[0] + p);
  if (tail.length) last--;
  if (first <= last) out.push(span(String(first), String(last)) + free(n - 1));
  return [...out, ...tail];
}

/** Alternatives (no anchors) matching exactly the decimal numbers from..to. */
export function integerRangePieces(from: number, to: number): string[] {
  if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || from > to) throw new Error(`bad range ${from}-${to}`);
  const out: string[] = [];
  for (let digits = String(from).length; digits <= String(to).length; digits++) {
    const lo = Math.max(from, digits === 1 ? 0 : 10 ** (digits - 1));
    const hi = Math.min(to, 10 ** digits - 1);
    if (lo <= hi) out.push(...sameLength(String(lo), String(hi)));
  }
  return out;
}

/** One group matching any of the ranges, e.g. "(?:80|44[3-4])". */
export function portRangesRegex(ranges: readonly { from: number; to: number }[]): string {
  return `(?:${ranges.flatMap((r) => integerRangePieces(r.from, r.to)).join('|')})`;
}
