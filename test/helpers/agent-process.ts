// `sluice agent` as a process in a test netns, the way the node runs it.
import { spawn, type ChildProcess } from 'node:child_process';
import { eventually } from './envoy.js';

const cli = new URL('../../dist/cli.js', import.meta.url).pathname;

/**
 * Starts `sluice agent ARGS` in netns `ns` and waits for its first publish.
 * nsenter execs node, so the child's PID is the agent's. `onSpawn` gets the
 * process and its output so far before the wait, so a caller's teardown can
 * stop an agent that never publishes.
 */
export async function spawnAgentInNetns(ns: string, args: string[], onSpawn: (p: ChildProcess, output: () => string) => void): Promise<ChildProcess> {
  let output = '';
  const p = spawn('nsenter', [`--net=/var/run/netns/${ns}`, process.execPath, cli, 'agent', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  p.stdout!.on('data', (d) => (output += d));
  p.stderr!.on('data', (d) => (output += d));
  onSpawn(p, () => output);
  await eventually(() => /snapshot published/.test(output) || p.exitCode !== null, 90_000, 'the agent to publish');
  if (p.exitCode !== null) throw new Error(`agent exited ${p.exitCode}: ${output}`);
  return p;
}
