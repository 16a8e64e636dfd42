// The node proxy address: where L7-redirected connections go. Pods reach it
// over their veth, as a local address of the node's network namespace; it is
// link-local (IPv4) or a ULA (IPv6) on `lo`, so nothing off the node routes to it.
import { execFileSync } from 'node:child_process';
import { isIPv4, isIPv6 } from 'node:net';

export interface ProxyAddresses {
  v4: string;
  v6: string;
}

/** 169.254.0.0/16 is never routed off a link; the ULA prefix was drawn at random (RFC 4193). */
export const DEFAULT_PROXY_ADDRESSES: ProxyAddresses = { v4: '169.254.90.1', v6: 'fd5c:1ce0:7e11::1' };
/** For a single network namespace (tests, a laptop): Envoy on loopback, no address added. */
export const LOOPBACK_PROXY_ADDRESSES: ProxyAddresses = { v4: '127.0.0.1', v6: '::1' };

const isLoopback = (a: string) => a === '::1' || a.startsWith('127.');

export function checkProxyAddresses(a: ProxyAddresses): void {
  if (!isIPv4(a.v4)) throw new Error(`proxy address ${a.v4} is not an IPv4 address`);
  if (!isIPv6(a.v6) || a.v6.includes('.')) throw new Error(`proxy address ${a.v6} is not an IPv6 address`);
}

type Ip = (args: string[]) => void;
const ip: Ip = (args) => void execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** The `ip` commands that add or delete each non-loopback address on `lo`. */
function commands(a: ProxyAddresses, verb: 'replace' | 'del'): [string, string[]][] {
  const all: [string, string[]][] = [
    [a.v4, ['-4', 'addr', verb, `${a.v4}/32`, 'dev', 'lo', ...(verb === 'replace' ? ['scope', 'host'] : [])]],
    [a.v6, ['-6', 'addr', verb, `${a.v6}/128`, 'dev', 'lo']],
  ];
  return all.filter(([addr]) => !isLoopback(addr));
}

const stderrOf = (e: unknown) => String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim();

/**
 * Adds the addresses to `lo` of this process's network namespace; `replace`
 * makes it idempotent across agent restarts. Returns one message per address
 * that could not be added (IPv6 disabled, say), for the caller to log: the
 * other family keeps working.
 */
export function addProxyAddresses(a: ProxyAddresses, run: Ip = ip): string[] {
  const failed: string[] = [];
  for (const [addr, args] of commands(a, 'replace'))
    try {
      run(args);
    } catch (e) {
      failed.push(`adding the proxy address ${addr} to lo failed: ${stderrOf(e)}`);
    }
  return failed;
}

/** Undoes addProxyAddresses (for `sluice cleanup`); an address already gone is not an error. */
export function removeProxyAddresses(a: ProxyAddresses, run: Ip = ip): void {
  for (const [, args] of commands(a, 'del'))
    try {
      run(args);
    } catch (e) {
      if (!/Cannot assign requested address|not found/i.test(stderrOf(e))) throw e;
    }
}
