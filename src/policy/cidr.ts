// Address prefixes as numbers, so policies can ask which named CIDR lies
// inside which; IPv4 and IPv6 never contain each other.
import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  v6: boolean;
  /** The network address, host bits cleared. */
  addr: bigint;
  len: number;
}

function ipToBigint(ip: string): bigint | undefined {
  if (isIPv4(ip)) return ip.split('.').reduce((a, o) => (a << 8n) | BigInt(Number(o)), 0n);
  if (!isIPv6(ip)) return undefined;
  let text = ip;
  // A trailing dotted quad (::ffff:1.2.3.4) is two groups.
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (quad) {
    const n = ipToBigint(quad[1])!;
    text = text.slice(0, quad.index) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined ? (tail ? tail.split(':') : []) : [];
  const groups = tail !== undefined ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.reduce((a, g) => (a << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function bits(v6: boolean): number {
  return v6 ? 128 : 32;
}

/** "10.0.0.0/8" (or a bare address, as a host prefix); undefined when malformed. */
export function parseCidr(text: string): Cidr | undefined {
  if (typeof text !== 'string') return undefined;
  const [ip, lenText, ...rest] = text.split('/');
  if (rest.length) return undefined;
  const addr = ipToBigint(ip);
  if (addr === undefined) return undefined;
  const v6 = !isIPv4(ip);
  const len = lenText === undefined ? bits(v6) : /^\d{1,3}$/.test(lenText) ? Number(lenText) : NaN;
  if (!(len >= 0 && len <= bits(v6))) return undefined;
  const host = (1n << BigInt(bits(v6) - len)) - 1n;
  return { v6, addr: addr & ~host, len };
}

export function formatCidr(c: Cidr): string {
  if (!c.v6) return `${[24n, 16n, 8n, 0n].map((s) => (c.addr >> s) & 0xffn).join('.')}/${c.len}`;
  const groups = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((c.addr >> s) & 0xffffn).toString(16));
  return `${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}/${c.len}`;
}

/** Whether `inner` lies within `outer` (equal counts). */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.v6 !== inner.v6 || inner.len < outer.len) return false;
  const shift = BigInt(bits(outer.v6) - outer.len);
  return inner.addr >> shift === outer.addr >> shift;
}

/** The canonical text of a prefix, so "10.1.2.3/8" and "10.0.0.0/8" are one identity. */
export function normalizeCidr(text: string): string | undefined {
  const c = parseCidr(text);
  return c && formatCidr(c);
}
