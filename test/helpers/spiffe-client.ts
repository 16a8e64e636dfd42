// The go-spiffe Workload API client (test/spiffe-client): built on demand by
// scripts/install-spiffe-client.sh, so a failed build fails the test that
// needs it rather than skipping it.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;

/** The client binary's path, built if its sources changed. */
export function spiffeClientBinary(): string {
  return execFileSync(join(root, 'scripts/install-spiffe-client.sh'), { encoding: 'utf8' }).trim();
}

/** The client's last stdout line: {spiffeId, serial, jwtSub} on success, {step, error, code} on failure. */
export function spiffeClientResult(stdout: string): any {
  try {
    return JSON.parse(stdout.trim().split('\n').pop() ?? '');
  } catch {
    return { unparsed: stdout };
  }
}

/** Two certificate serials (hex, leading zeros or not) name the same number. */
export const sameSerial = (a: string, b: string) => BigInt(`0x${a}`) === BigInt(`0x${b}`);
