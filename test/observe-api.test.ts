// Hubble's Observer API as sluice serves it, read by the real hubble CLI
// (built from github.com/cilium/cilium by scripts/install-hubble.sh) and by
// `sluice observe`: a ring fed with an allowed HTTP request, an L3 policy
// drop and an L7 403, filtered the way Cilium users filter, and followed live.
import t from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Flow } from '../src/observe/flow.js';
import { FlowRing } from '../src/observe/flow-ring.js';
import { startObserverServer } from '../src/observe/observer-server.js';
import { hubbleBinary } from './helpers/hubble.js';

const run = promisify(execFile);
const bin = new URL('../bin/sluice.js', import.meta.url).pathname;
t.ok(existsSync(new URL('../dist/observe-cli.js', import.meta.url)), 'dist is built (npm run build)');
const hubble = hubbleBinary();

const dir = mkdtempSync(join(tmpdir(), 'sluice-observe-'));
const sock = join(dir, 'hubble.sock');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const t0 = BigInt(Date.now() - 5000) * 1_000_000n;
const tcp = (sourcePort: number, destinationPort: number, flags?: { SYN?: boolean; ACK?: boolean }) => ({ protocol: 'TCP' as const, sourcePort, destinationPort, ...(flags ? { flags } : {}) });
const client = { identity: 20001, namespace: 'shop', podName: 'client-6d4f', labels: ['k8s:app=client', 'k8s:io.kubernetes.pod.namespace=shop'] };
const web = { identity: 20002, namespace: 'shop', podName: 'web-7c9b', labels: ['k8s:app=web', 'k8s:io.kubernetes.pod.namespace=shop'] };
/** Envoy's record of client's request to web and its answer. */
const response = (timeNs: bigint, verdict: Flow['verdict'], sourcePort: number, l7: Omit<NonNullable<Flow['l7']>, 'type'>): Flow => ({
  timeNs,
  verdict,
  type: 'L7',
  nodeName: 'node-1',
  trafficDirection: 'INGRESS',
  ip: { source: '10.200.0.5', destination: '10.200.0.6', ipVersion: 'IPv4' },
  l4: tcp(sourcePort, 8080),
  source: client,
  destination: web,
  l7: { type: 'RESPONSE', ...l7 },
});
/** The datapath's record of a connection's first packet. */
const syn = (timeNs: bigint, trafficDirection: Flow['trafficDirection'], [source, sourcePort]: [string, number], [destination, destinationPort]: [string, number]): Flow => ({
  timeNs,
  verdict: 'FORWARDED',
  type: 'L3_L4',
  nodeName: 'node-1',
  trafficDirection,
  ip: { source, destination, ipVersion: 'IPv4' },
  l4: tcp(sourcePort, destinationPort, { SYN: true }),
});
const flows: Record<string, Flow> = {
  allowed: {
    ...response(t0, 'FORWARDED', 43210, { latencyNs: 12_000_000n, http: { code: 200, method: 'GET', url: 'http://web.shop/api/items' } }),
    destinationService: { namespace: 'shop', name: 'web' },
  },
  l3drop: {
    ...syn(t0 + 1_000_000n, 'INGRESS', ['10.200.1.9', 5555], ['10.200.0.7', 5432]),
    verdict: 'DROPPED',
    dropReason: 'POLICY_DENIED',
    source: { identity: 20003, namespace: 'other', podName: 'intruder-1', labels: ['k8s:app=intruder'] },
    destination: { identity: 20004, namespace: 'shop', podName: 'db-0', labels: ['k8s:app=db'] },
  },
  l7deny: response(t0 + 2_000_000n, 'DROPPED', 43212, { latencyNs: 1_000_000n, http: { code: 403, method: 'POST', url: 'http://web.shop/admin' } }),
  probe: { ...syn(t0 + 3_000_000n, 'EGRESS', ['10.200.2.3', 40000], ['10.200.0.6', 8080]), source: { identity: 2, namespace: 'default', podName: 'probe-1' }, destination: web },
};
// What each flow's compact line must carry, whoever prints it.
const marks: Record<string, RegExp> = {
  allowed: /shop\/web-7c9b:8080 \(ID:20002\) <- shop\/client-6d4f:43210 \(ID:20001\) http-response FORWARDED \(HTTP\/1\.1 200 12ms \(GET http:\/\/web\.shop\/api\/items\)\)$/,
  l3drop: /other\/intruder-1:5555 \(ID:20003\) -> shop\/db-0:5432 \(ID:20004\) Policy denied DROPPED \(TCP Flags: SYN\)$/,
  l7deny: /http-response DROPPED \(HTTP\/1\.1 403 1ms \(POST http:\/\/web\.shop\/admin\)\)$/,
  probe: /default\/probe-1:40000 \(world\) -> shop\/web-7c9b:8080 \(ID:20002\) to-stack FORWARDED \(TCP Flags: SYN\)$/,
};

const ring = new FlowRing(100);
for (const f of Object.values(flows)) ring.push(f);
const server = await startObserverServer({ ring, nodeName: 'node-1', socket: sock });
t.teardown(() => server.close());

const clis = {
  hubble: (args: string[]) => [hubble, ['observe', '--server', `unix://${sock}`, ...args]] as const,
  sluice: (args: string[]) => [process.execPath, [bin, 'observe', '--server', `unix://${sock}`, ...args]] as const,
};
type Cli = keyof typeof clis;

async function observe(cli: Cli, ...args: string[]): Promise<string[]> {
  const [file, argv] = clis[cli](args);
  try {
    const { stdout } = await run(file, argv, { encoding: 'utf8', timeout: 30_000 });
    return stdout.split('\n').filter(Boolean);
  } catch (e) {
    throw new Error(`${cli} observe ${args.join(' ')}: ${(e as { stderr?: string }).stderr ?? e}`);
  }
}

/** Which synthetic flows the lines show, in order; a line matching none fails. */
function which(lines: string[]): string[] {
  return lines.map((l) => Object.keys(marks).find((k) => marks[k].test(l)) ?? `unmatched: ${l}`);
}

const cases: [string[], string[]][] = [
  [[], ['allowed', 'l3drop', 'l7deny', 'probe']],
  [['--verdict', 'DROPPED'], ['l3drop', 'l7deny']],
  [['--verdict', 'FORWARDED', '--verdict', 'DROPPED'], ['allowed', 'l3drop', 'l7deny', 'probe']],
  [['--namespace', 'other'], ['l3drop']],
  [['--namespace', 'default'], ['probe']],
  [['--namespace', 'shop'], ['allowed', 'l3drop', 'l7deny', 'probe']],
  [['--pod', 'shop/db'], ['l3drop']],
  [['--pod', 'probe'], ['probe']],
  [['--from-pod', 'shop/client'], ['allowed', 'l7deny']],
  [['--to-pod', 'shop/client'], []],
  [['--protocol', 'http', '--http-status', '403'], ['l7deny']],
  [['--protocol', 'http', '--http-status', '2+'], ['allowed']],
  [['--http-status', '5+'], []],
  [['--http-method', 'post'], ['l7deny']],
  [['--http-path', '^/api/'], ['allowed']],
  [['--protocol', 'tcp', '--port', '5432'], ['l3drop']],
  [['--label', 'app=db'], ['l3drop']],
  [['--from-label', 'k8s:app=intruder'], ['l3drop']],
  [['--ip', '10.200.2.0/24'], ['probe']],
  [['--identity', 'world'], ['probe']],
  [['--to-identity', '20004'], ['l3drop']],
  [['--type', 'drop'], ['l3drop']],
  [['--type', 'l7'], ['allowed', 'l7deny']],
  [['--last', '2'], ['l7deny', 'probe']],
  [['--first', '1'], ['allowed']],
  [['--since', '1h', '--verdict', 'DROPPED'], ['l3drop', 'l7deny']],
  [['--until', '1h'], []],
  [['--not', '--verdict', 'DROPPED'], ['allowed', 'probe']],
  [['--namespace', 'shop', '--not', '--pod', 'shop/db'], ['allowed', 'l7deny', 'probe']],
  // The --not flags make one blacklist filter, their fields ANDed: no flow is both in default and a 403.
  [['--not', '--namespace', 'default', '--not', '--http-status', '403'], ['allowed', 'l3drop', 'l7deny', 'probe']],
  [['--not', '--namespace', 'default'], ['allowed', 'l3drop', 'l7deny']],
];

for (const cli of ['hubble', 'sluice'] as const) {
  t.test(`${cli} observe filters as Hubble does`, async (t) => {
    for (const [args, want] of cases) t.same(which(await observe(cli, ...args)), want, `${cli} observe ${args.join(' ')}`);
  });

  t.test(`${cli} observe -o json parses, with the flows' fields`, async (t) => {
    const lines = await observe(cli, '-o', 'json');
    t.equal(lines.length, 4);
    const rs = lines.map((l) => JSON.parse(l));
    t.same(
      rs.map((r) => r.flow.verdict),
      ['FORWARDED', 'DROPPED', 'DROPPED', 'FORWARDED'],
    );
    t.equal(rs[0].flow.l7.http.code, 200);
    t.equal(rs[0].flow.l7.latency_ns, '12000000');
    t.equal(rs[0].flow.destination_service.name, 'web');
    t.equal(rs[1].flow.drop_reason_desc, 'POLICY_DENIED');
    t.equal(rs[1].flow.source.pod_name, 'intruder-1');
    t.equal(rs[2].flow.l7.http.method, 'POST');
    t.equal(rs[2].flow.l7.http.code, 403);
    t.equal(rs[0].node_name, 'node-1');
  });
}

t.test("hubble's field mask: only the fields asked for come back", async (t) => {
  const lines = await observe('hubble', '-o', 'json', '--last', '1', '--verdict', 'DROPPED', '--field-mask', 'source.pod_name,verdict,l7.http.code');
  t.same(JSON.parse(lines[0]).flow, { verdict: 'DROPPED', source: { pod_name: 'client-6d4f' }, l7: { http: { code: 403 } } });
  await t.rejects(observe('hubble', '-o', 'json', '--field-mask', 'nonsense'), /nonsense/);
});

t.test('sluice observe prints what hubble observe prints', async (t) => {
  for (const args of [[], ['--verdict', 'DROPPED'], ['-o', 'json']]) t.same(await observe('sluice', ...args), await observe('hubble', ...args), args.join(' ') || 'no flags');
});

/** Starts `cli observe --follow ARGS`; lines arrive in `lines`, killed by PID at teardown. */
function follow(t: Tap.Test, cli: Cli, args: string[]): { lines: string[]; child: ChildProcess } {
  const [file, argv] = clis[cli](['--follow', ...args]);
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  });
  const lines: string[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts.filter(Boolean));
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  child.on('exit', (code) => code && lines.push(`exited ${code}: ${err}`));
  return { lines, child };
}

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let n = 0;
/** The last drop in the ring: the L7 403 until the first follow test adds one. */
let lastDrop = marks.l7deny;
for (const cli of ['hubble', 'sluice'] as const) {
  t.test(`${cli} observe --follow sees a flow added later, filtered`, async (t) => {
    const { lines, child } = follow(t, cli, ['--last', '1', '--verdict', 'DROPPED']);
    // The history line says the stream is up; what is pushed after it is live.
    await until('the last drop from history', () => lines.length >= 1);
    t.match(lines[0], lastDrop, 'history: the last drop');
    const port = 6000 + n++;
    lastDrop = new RegExp(`other/intruder-1:${port} \\(ID:20003\\) -> shop/db-0:5432 .* Policy denied DROPPED`);
    ring.push({ ...flows.probe, timeNs: BigInt(Date.now()) * 1_000_000n });
    ring.push({ ...flows.l3drop, timeNs: BigInt(Date.now()) * 1_000_000n, l4: tcp(port, 5432, { SYN: true }) });
    await until('the new drop', () => lines.length >= 2);
    t.match(lines[1], lastDrop, 'live: the new drop');
    t.equal(lines.length, 2, 'the new FORWARDED flow is filtered out');
    process.kill(child.pid!, 'SIGTERM');
    await until('the follower to exit', () => child.exitCode !== null || child.signalCode !== null);
  });
}

t.test('hubble status reads ServerStatus', async (t) => {
  const { stdout } = await run(hubble, ['status', '--server', `unix://${sock}`], { encoding: 'utf8' });
  const s = ring.stats();
  t.match(stdout, new RegExp(`Current/Max Flows: ${s.numFlows}/100`));
  t.match(stdout, /Flows\/s:/);
});

t.test('the agent serves the Observer API beside its xDS socket, and takes the socket with it', async (t) => {
  const run_ = join(dir, 'agent-run');
  const yaml = join(dir, 'agent-yaml');
  mkdirSync(yaml, { recursive: true });
  const agentSock = join(run_, 'hubble.sock');
  const base = 20000 + Math.floor(Math.random() * 100) * 100;
  const args = ['agent', '--source', `dir:${yaml}`, '--node', 'node-obs', '--socket', join(run_, 'xds.sock'), '--state-dir', join(dir, 'agent-state'), '--proxy-ports', `${base}-${base + 99}`, '--flow-ring-size', '77'];
  const agent = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  agent.stderr!.on('data', (d) => (logs += d));
  t.teardown(() => {
    if (agent.exitCode === null && agent.signalCode === null) process.kill(agent.pid!, 'SIGKILL');
  });
  await until(`the agent's observer socket (agent log: ${logs.slice(-300)})`, () => existsSync(agentSock), 60_000);
  const { stdout } = await run(hubble, ['status', '--server', `unix://${agentSock}`], { encoding: 'utf8' });
  t.match(stdout, /Current\/Max Flows: 0\/77/, 'the configured ring size');
  const nodes = await run(hubble, ['list', 'nodes', '--server', `unix://${agentSock}`, '-o', 'json'], { encoding: 'utf8' });
  t.match(JSON.parse(nodes.stdout), [{ name: 'node-obs', state: 'NODE_CONNECTED', max_flows: '77' }]);
  t.same((await run(process.execPath, [bin, 'observe', '--server', agentSock], { encoding: 'utf8' })).stdout, '', 'no flows yet, and no error');
  process.kill(agent.pid!, 'SIGTERM');
  t.equal(await new Promise((r) => agent.once('exit', r)), 0);
  t.notOk(existsSync(agentSock), 'no stale socket left');
  await t.rejects(run(process.execPath, [bin, 'observe', '--server', agentSock]), /cannot reach the Observer API at .*is the agent running/);
});
