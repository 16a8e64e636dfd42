// The cost of flow events on connect latency, on the real kernel: pods x and s
// of the policy test world, s enforcing ingress with x allowed to port 8080;
// x times connect() (SYN to SYN-ACK, through both veths' TC programs, where a
// new flow emits its events) in blocks that alternate events off and on in
// one run, so both modes see the same machine.
//
//   sudo node --import @tapjs/typescript/import bench/flow-events.ts [blocks=6] [connects=300]
import { BpfEventReader, DEFAULT_EVENT_CONFIG } from '../src/observe/bpf-event-reader.js';
import { entry, EP, ID, IP, policyWorld } from '../test/helpers/policy-tc-world.js';

const [blocks = 6, connects = 300] = process.argv.slice(2).map(Number);
const cleanups: (() => unknown)[] = [];
const t = { teardown: (fn: () => unknown) => void cleanups.push(fn) };

const py = `
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    s = socket.socket()
    t0 = time.perf_counter_ns()
    s.connect((host, port))
    out.append((time.perf_counter_ns() - t0) // 1000)
    while s.recv(4096): pass
    s.close()
print(' '.join(map(str, out)))
`;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

try {
  const w = await policyWorld(t);
  await w.startAttacher();
  const errors = w.reconciler.apply(w.state({ enforce: { s: ['ingress'] }, entries: [entry(EP.s, 'ingress', ID.x, 6, 8080, 'allow')] })).errors;
  if (errors.length) throw new Error(`policy: ${JSON.stringify(errors)}`);
  let events = 0;
  const reader = BpfEventReader.open({ pinDirs: [w.node.pinDir], onFlows: (f) => (events += f.length) });
  cleanups.push(() => reader.close());
  const lat = { off: [] as number[], on: [] as number[] };
  const counted = { off: 0, on: 0 };
  for (let b = 0; b < blocks * 2; b++) {
    const mode = b % 2 ? 'on' : 'off';
    reader.configure({ ...DEFAULT_EVENT_CONFIG, enabled: mode === 'on' });
    events = 0;
    const r = w.pods.x.exec('python3', ['-c', py, IP.s, '8080', String(connects)]);
    if (r.code !== 0) throw new Error(`client: ${r.stderr}`);
    lat[mode].push(...r.stdout.trim().split(' ').map(Number));
    events += reader.drain().length;
    await new Promise((res) => setTimeout(res, 50));
    counted[mode] += events;
  }
  console.log(`flow events: ${blocks} blocks of ${connects} connects per mode, x -> s:8080 through both veths' TC programs`);
  for (const mode of ['off', 'on'] as const)
    console.log(`  events ${mode.padEnd(3)}  connect() p50 ${pct(lat[mode], 50)} us  p90 ${pct(lat[mode], 90)} us  p99 ${pct(lat[mode], 99)} us  events/connect ${(counted[mode] / lat[mode].length).toFixed(2)}`);
  console.log(`  p50 difference (on - off): ${pct(lat.on, 50) - pct(lat.off, 50)} us; loss ${JSON.stringify(reader.loss())}`);
} finally {
  for (const fn of cleanups.reverse())
    try {
      await fn();
    } catch (e) {
      console.error(`cleanup: ${(e as Error).message}`);
    }
}
