// The real hubble CLI: built on demand by scripts/install-hubble.sh (cached
// by version), so a failed build fails the test that needs it rather than
// skipping it.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;

export function hubbleBinary(): string {
  return execFileSync(join(root, 'scripts/install-hubble.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()!;
}
