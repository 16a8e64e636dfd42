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

/** A container port name as Kubernetes allows it (IANA_SVC_NAME). */
const PORT_NAME = /^(?=.*[a-z])(?!.*--)[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$/;

/**
 * A port as Cilium and Kubernetes write it: a number, a numeric string, or
 * the name of a container port, resolved later against the pods.
 */
export function parsePort(v: unknown): number | { name: string } | { problem: string } {
  if (v === undefined) return 0;
  if (typeof v === 'string' && !/^\d+$/.test(v))
    return PORT_NAME.test(v) ? { name: v } : { problem: `${JSON.stringify(v)} is neither a port number nor a container port name` };
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) return { problem: `port ${JSON.stringify(v)} is out of range 0-65535` };
  return n;
}
