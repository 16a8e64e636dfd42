// The operator tools as users run them: `sluice endpoint list`, `policy get`
// and `policy trace` against a real agent process over its API socket, and the
// same commands computing offline from the YAML the agent reads.
import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { eventually } from './helpers/envoy.js';
import { freePort } from './helpers/net.js';
import { cnp, demoPods, rule1L7 } from './helpers/policy-world.js';

const bin = new URL('../bin/sluice.js', import.meta.url).pathname;
t.ok(existsSync(new URL('../dist/cli.js', import.meta.url)), 'dist is built (npm run build)');

const run = promisify(execFile);
/** Runs `sluice ARGS`; resolves with stdout, or rejects with stderr in the message. */
async function sluice(...args: string[]): Promise<string> {
  try {
    return (await run(process.execPath, [bin, ...args], { encoding: 'utf8' })).stdout;
  } catch (e) {
    throw new Error(`sluice ${args.join(' ')}: ${(e as { stderr?: string }).stderr ?? e}`);
  }
}

const badRegex = cnp('bad-regex', {
  endpointSelector: { matchLabels: { class: 'xwing' } },
  ingress: [{ fromEndpoints: [{ matchLabels: { org: 'empire' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/v1/(unclosed' }] } }] }],
});

const dir = mkdtempSync(join(tmpdir(), 'sluice-policy-cli-'));
const yaml = join(dir, 'yaml');
mkdirSync(yaml);
const write = (file: string, docs: object[]) => {
  writeFileSync(join(dir, file), docs.map((d) => stringify(d)).join('---\n'));
  renameSync(join(dir, file), join(yaml, file));
};
write('pods.yaml', demoPods);
write('rule1.yaml', [rule1L7]);
write('bad.yaml', [badRegex]);

const apiSocket = join(dir, 'run', 'api.sock');
const metricsPort = await freePort();
const base = 20000 + Math.floor(Math.random() * 100) * 100;
const agentArgs = ['agent', '--source', `dir:${yaml}`, '--node', 'node-a', '--socket', join(dir, 'run', 'xds.sock'), '--state-dir', join(dir, 'state'), '--proxy-ports', `${base}-${base + 99}`, '--metrics-port', String(metricsPort)];
const agent = spawn(process.execPath, [bin, ...agentArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
let logs = '';
agent.stderr!.on('data', (d) => (logs += d));
t.teardown(() => {
  if (agent.exitCode === null) agent.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

const viaAgent = ['--agent', apiSocket];
const offline = ['--source', `dir:${yaml}`, '--node', 'node-a'];
// A deadline, not a latency claim: start-up on a loaded machine takes seconds.
const endpointsJson = await eventually(async () => {
  const out = await sluice('endpoint', 'list', ...viaAgent, '-o', 'json').catch(() => '[]');
  return out.includes('default/deathstar') && JSON.parse(out);
}, 60_000, `the agent's API (agent log: ${logs.slice(-500)})`);

const landing = ['--from', 'default/tiefighter', '--to', 'default/deathstar', '--port', '80', '--method', 'POST', '--path', '/v1/request-landing'];
const xwing = ['--from', 'default/xwing', '--to', 'default/deathstar', '--port', '80'];
const exhaust = ['--from', 'default/tiefighter', '--to', 'default/deathstar', '--port', '80', '--proto', 'tcp', '--method', 'PUT', '--path', '/v1/exhaust-port'];
/** What the agent answered, by command line, for the offline comparison. */
const answered = new Map<string[], string>();
async function ask(...args: string[]): Promise<string> {
  const out = await sluice(...args, ...viaAgent);
  answered.set(args, out);
  return out;
}

t.test("sluice endpoint list: this node's pods, identities, labels and enforcement", async (t) => {
  const out = await ask('endpoint', 'list');
  const lines = out.split('\n');
  t.match(lines[0], /^ENDPOINT\s+POLICY \(ingress\)\s+POLICY \(egress\)\s+IDENTITY\s+POD\s+LABELS \(source:key\[=value\]\)\s+IPv6\s+IPv4$/);
  const rows = new Map(lines.filter((l) => /^\d/.test(l)).map((l) => l.split(/\s{2,}/)).map((cells) => [cells[4], cells]));
  t.same([...rows.keys()].sort(), ['default/deathstar', 'default/tiefighter', 'default/xwing']);
  t.same(rows.get('default/deathstar')!.slice(1, 3), ['Enabled', 'Disabled'], "rule1 enforces deathstar's ingress only");
  t.same(rows.get('default/tiefighter')!.slice(1, 3), ['Disabled', 'Disabled']);
  t.same(rows.get('default/xwing')!.slice(1, 3), ['Disabled', 'Disabled'], 'the policy with a bad regex is not enforced at all');
  t.equal(rows.get('default/deathstar')!.at(-1), '10.0.1.12');
  t.match(out, /^\s+k8s:io\.kubernetes\.pod\.namespace=default$/m, 'labels as Cilium writes them, one a line');

  const ds = endpointsJson.find((e: any) => e.pod === 'default/deathstar');
  t.match(ds, { ingressEnforced: true, egressEnforced: false, ips: ['10.0.1.12'] }, '-o json');
  t.ok(ds.labels.includes('k8s:class=deathstar') && ds.labels.includes('k8s:org=empire'));
  t.equal(rows.get('default/deathstar')![3], String(ds.identity), 'the table and JSON agree on the identity');
  t.equal(new Set(endpointsJson.map((e: any) => e.identity)).size, 3, 'three label sets, three identities');
});

t.test('sluice policy get: the policies in force, and the refused one with its issue', async (t) => {
  const out = await ask('policy', 'get');
  const v = parse(out);
  t.same(v.policies.map((p: any) => p.policy), ['CiliumNetworkPolicy default/rule1'], 'only rule1 is in force');
  t.match(v.policies[0], { origin: { file: 'rule1.yaml' }, endpoints: ['default/deathstar'], enforces: ['ingress'] });
  t.match(v.policies[0].rules[0].ports[0], { field: 'spec.ingress[0].toPorts[0].ports[0]', proto: 'TCP', ports: '80', http: [{ method: 'POST', path: '/v1/request-landing' }] });
  t.equal(v.issues.length, 1);
  t.match(v.issues[0], { object: 'CiliumNetworkPolicy default/bad-regex', origin: { file: 'bad.yaml' }, field: 'spec.ingress[0].toPorts[0].rules.http[0].path', message: /regular expression/ });
  t.match(out, /^# not enforced:\n#   bad\.yaml\[0\]: CiliumNetworkPolicy default\/bad-regex: spec\.ingress\[0\]\.toPorts\[0\]\.rules\.http\[0\]\.path: /m, 'and once more as one line');
});

t.test('sluice policy trace: the verdict and the deciding policy and field', async (t) => {
  const ok = await ask('policy', 'trace', ...landing);
  t.match(ok, /^Final verdict: ALLOWED$/m);
  t.match(ok, /^Decided by: CiliumNetworkPolicy default\/rule1, field spec\.ingress\[0\]\.toPorts\[0\]\.rules\.http\[0\] \(ingress\)$/m);

  const dropped = await ask('policy', 'trace', ...xwing);
  t.match(dropped, /^Final verdict: DENIED$/m);
  t.match(dropped, /^Decided by: default deny of CiliumNetworkPolicy default\/rule1 \(ingress\)$/m);

  const forbidden = await ask('policy', 'trace', ...exhaust);
  t.match(forbidden, /^Final verdict: L7 403$/m);
  t.match(forbidden, /denied with 403 by Envoy .*no http rule of CiliumNetworkPolicy default\/rule1 matches/);

  const json = JSON.parse(await sluice('policy', 'trace', ...viaAgent, ...exhaust, '-o', 'json'));
  t.match(json, { verdict: 'deny', httpStatus: 403, decidedBy: { direction: 'ingress', reason: 'l7-no-match' }, query: { method: 'PUT', path: '/v1/exhaust-port', port: 80, proto: 'TCP' } });

  await t.rejects(sluice('policy', 'trace', ...viaAgent, '--from', 'default/nope', '--to', 'default/deathstar', '--port', '80'), /answered 400: default\/nope: neither a known pod/, 'an unknown pod is named');
});

t.test('--source dir: computes the same answers offline', async (t) => {
  t.equal(answered.size, 5);
  for (const [args, out] of answered) t.equal(await sluice(...args, ...offline), out, `sluice ${args.join(' ')}`);
});

t.test('the API is on the socket only, never on the metrics port', async (t) => {
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status, 200, 'the metrics port serves');
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/v1/endpoints`)).status, 404, 'but not the endpoints');
  t.equal((await fetch(`http://127.0.0.1:${metricsPort}/v1/policy`)).status, 404, 'nor the policies');
});

t.test('a policy change shows in the next answer', async (t) => {
  rmSync(join(yaml, 'rule1.yaml'));
  const out = await eventually(async () => {
    const o = await sluice('policy', 'trace', ...viaAgent, ...xwing);
    return /Final verdict: ALLOWED/.test(o) && o;
  }, 30_000, 'the trace once rule1 is gone');
  t.match(out, /^Decided by: no policy \(not enforced\) \(ingress\)$/m);
});

t.test('the agent stops cleanly and takes its socket with it', async (t) => {
  agent.kill('SIGTERM');
  t.equal(await new Promise((r) => agent.once('exit', r)), 0);
  t.notOk(existsSync(apiSocket), 'no stale socket left');
  await t.rejects(sluice('endpoint', 'list', ...viaAgent), /cannot reach the agent at .*--source dir:PATH/, 'without an agent, the error says what to do');
});
