// Port ranges as the prefixes a longest-prefix-match map holds.

export const PROTO = { ANY: 0, TCP: 6, UDP: 17, SCTP: 132 } as const;
export const PORT_PROTOS = [PROTO.TCP, PROTO.UDP, PROTO.SCTP] as const;

export function protoName(p: number): string {
  return p === 6 ? 'TCP' : p === 17 ? 'UDP' : p === 132 ? 'SCTP' : p === 0 ? 'ANY' : String(p);
}

/** The fewest (port, prefix length) pairs over 16 bits that cover exactly [lo, hi]. */
export function rangeToPrefixes(lo: number, hi: number): { port: number; prefixLen: number }[] {
  const out: { port: number; prefixLen: number }[] = [];
  let p = lo;
  while (p <= hi) {
    // The largest aligned block starting at p that stays within hi.
    let size = p === 0 ? 1 << 16 : p & -p;
    while (p + size - 1 > hi) size >>= 1;
    out.push({ port: p, prefixLen: 16 - Math.log2(size) });
    p += size;
  }
  return out;
}

/**
 * A port as Cilium and Kubernetes write it: a number or a numeric string.
 * A name cannot be resolved here (the model keeps no container ports).
 */
export function parsePort(v: unknown): number | { problem: string } {
  if (v === undefined) return 0;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (typeof v === 'string' && !/^\d+$/.test(v)) return { problem: `named port "${v}" cannot be resolved: sluice does not read container ports; write the number` };
  if (!Number.isInteger(n) || n < 0 || n > 65535) return { problem: `port ${JSON.stringify(v)} is out of range 0-65535` };
  return n;
}
