// The routing half of the L7 redirect: a packet bpf_sk_assign handed to
// Envoy's socket still carries a pod's address as its destination, and would
// be forwarded to the pod. The TC program marks it; a rule sends marked
// packets to a table where every address is local, so the node delivers it
// to the assigned socket. Node network namespace only.
import type { TproxyConfig } from './policy-maps.js';

export const TPROXY_DEFAULTS = { mark: 0x4e00, markMask: 0xff00, table: 2080, priority: 2080 } as const;

export interface TproxyRoute {
  mark: number;
  markMask: number;
  table: number;
  priority: number;
}

/** Runs `ip` with these arguments in the node's namespace, returning stdout. */
export type IpRunner = (args: string[]) => string;

const hexMark = (n: number) => `0x${n.toString(16)}`;

/** Adds what is missing, both families; safe to repeat. */
export function ensureTproxyRoute(ip: IpRunner, r: TproxyRoute = TPROXY_DEFAULTS): void {
  for (const family of ['-4', '-6']) {
    const rules = JSON.parse(ip([family, '-j', 'rule', 'show', 'table', String(r.table)]) || '[]') as unknown[];
    if (!rules.length) ip([family, 'rule', 'add', 'fwmark', `${hexMark(r.mark)}/${hexMark(r.markMask)}`, 'lookup', String(r.table), 'priority', String(r.priority)]);
    ip([family, 'route', 'replace', 'local', family === '-4' ? '0.0.0.0/0' : '::/0', 'dev', 'lo', 'table', String(r.table)]);
  }
}

export function removeTproxyRoute(ip: IpRunner, r: TproxyRoute = TPROXY_DEFAULTS): void {
  for (const family of ['-4', '-6']) {
    for (const args of [
      [family, 'rule', 'del', 'table', String(r.table)],
      [family, 'route', 'flush', 'table', String(r.table)],
    ])
      try {
        ip(args);
      } catch {
        /* already gone */
      }
  }
}

/** The program's side of the same agreement. */
export function tproxyConfig(r: TproxyRoute = TPROXY_DEFAULTS, proxy4?: string, proxy6?: string): TproxyConfig {
  return { mark: r.mark, markMask: r.markMask, proxy4, proxy6 };
}
