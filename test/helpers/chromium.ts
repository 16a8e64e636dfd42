// Debian's chromium, headless, on a page served by the test: a screenshot or
// the DOM after the page's scripts ran. A fresh profile each run, removed after.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = '/usr/bin/chromium';

/** `netns`: run it inside a test network namespace (nsenter execs chromium: the child's pid is chromium's), to load a page served there. */
function run(args: string[], url: string, netns?: string): Promise<string> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh (apt package chromium)`);
  const profile = mkdtempSync(join(tmpdir(), 'sluice-chromium-'));
  const base = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`];
  return new Promise<string>((resolve, reject) => {
    // execFile's timeout ends the child it started (SIGTERM to its pid) if chromium hangs.
    const argv = [...base, ...args, url];
    execFile(netns ? 'nsenter' : CHROMIUM, netns ? [`--net=/var/run/netns/${netns}`, CHROMIUM, ...argv] : argv, { timeout: 90_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      rmSync(profile, { recursive: true, force: true });
      if (err) reject(new Error(`chromium failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** The page rendered for `budgetMs` of virtual time (timers and fetches run), as PNG at `file`. */
export async function screenshot(url: string, file: string, budgetMs = 5000, netns?: string): Promise<void> {
  await run([`--screenshot=${file}`, '--window-size=1200,800', `--virtual-time-budget=${budgetMs}`], url, netns);
}

/** The serialized DOM after `budgetMs` of virtual time. */
export function dumpDom(url: string, budgetMs = 5000, netns?: string): Promise<string> {
  return run(['--dump-dom', '--window-size=1200,800', `--virtual-time-budget=${budgetMs}`], url, netns);
}
