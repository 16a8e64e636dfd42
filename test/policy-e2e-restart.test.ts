// kill -9 of `sluice agent --datapath` while policies are enforced: the pinned
// TC programs and maps keep enforcing (L3/L4 in the kernel, L7 through the
// node's Envoy), and a restarted agent adopts them without a gap: request
// loops across the kill and the restart see no error.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { policyPinDir } from '../src/redirect/policy-object.js';
import { eventually } from './helpers/envoy.js';
import { agentPolicyWorld, outcome } from './helpers/policy-agent-world.js';
import { cnp } from './helpers/policy-world.js';

const X = '10.0.4.10';
const Y = '10.0.4.11';
const S = '10.0.4.12';

const fromX = [{ matchLabels: { app: 'x' } }];
const policy = (yAllowed: boolean) =>
  cnp('s', {
    endpointSelector: { matchLabels: { app: 's' } },
    ingress: [
      { fromEndpoints: fromX, toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] },
      { fromEndpoints: fromX, toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/ok' }] } }] },
      ...(yAllowed ? [{ fromEndpoints: [{ matchLabels: { app: 'y' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }] : []),
    ],
  });

t.test('kill -9 of the agent leaves enforcement in place; a restarted agent adopts it without a gap', async (t) => {
  const w = await agentPolicyWorld(
    t,
    [
      { name: 'x', ip: X, labels: { app: 'x' } },
      { name: 'y', ip: Y, labels: { app: 'y' } },
      { name: 's', ip: S, labels: { app: 's' }, http: [80, 8080] },
    ],
    { proxyPorts: [20640, 20649] },
  );
  w.write('policy.yaml', [policy(false)]);
  await eventually(() => w.http('x', S, 80, { path: '/no' }) === '403', 30_000, 'the L7 rule');
  t.equal(w.http('y', S, 8080), 'timeout', 'y is dropped');

  const bpftool = (...args: string[]) => JSON.parse(execFileSync('bpftool', [...args, '-j'], { encoding: 'utf8' }));
  const pins = policyPinDir(w.node.pinDir);
  const mapIds = () => readdirSync(pins).filter((f) => f.startsWith('sluice_')).map((f) => bpftool('map', 'show', 'pinned', join(pins, f)).id).sort();
  const links = () => readdirSync(join(pins, 'tc')).sort();
  const linkIds = () => links().map((f) => bpftool('link', 'show', 'pinned', join(pins, 'tc', f)).id).sort();
  const mapsBefore = mapIds();
  const linksBefore = linkIds();
  t.ok(links().length >= 6, `a link for each hook of each veth (${links().join(' ')})`);

  const stop = join(w.dir, 'stop-loops');
  let stopped = false;
  t.teardown(() => void (stopped || writeFileSync(stop, '')));
  const loop = (pod: string, port: number, path = '/') => w.pods[pod].clientAsync([{ op: 'http', host: S, port, path, until: stop }]).then(([rs]) => rs.map((r: any) => outcome(r)));
  const l4 = loop('x', 8080);
  const l7 = loop('x', 80, '/ok');

  const deniedBefore = w.drops()['deny-rule'];
  await w.killAgent();
  t.equal(w.http('y', S, 8080), 'timeout', 'with no agent, y is still dropped in the kernel');
  t.equal(w.http('x', S, 80, { path: '/no' }), '403', 'and Envoy still answers what the L7 rule denies');
  t.equal(w.http('x', S, 80, { path: '/ok' }), '200', 'and passes what it allows');

  await w.startAgent();
  await eventually(() => /adopted the policy datapath/.test(w.output()), 15_000, 'the adoption log line');
  // Envoy reconnects and ACKs the new agent's version; the loops keep running through it.
  await eventually(() => w.output().split('\n').some((l) => l.includes('"msg":"ACK"') && l.includes('Listener')), 30_000, "Envoy's ACK of the restarted agent");
  await new Promise((r) => setTimeout(r, 2000));
  t.equal(w.drops()['deny-rule'], deniedBefore, 'no redirect was turned into a drop at any moment (the new agent kept it until Envoy ACKed)');
  t.same(mapIds(), mapsBefore, 'the same pinned maps');
  t.same(linkIds(), linksBefore, 'the same links, adopted rather than made again');
  t.equal(w.http('y', S, 8080), 'timeout', 'y is still dropped after the restart');
  t.equal(w.http('x', S, 80, { path: '/no' }), '403', 'the L7 rule still holds');

  writeFileSync(stop, '');
  stopped = true;
  for (const [name, p] of Object.entries({ 'x -> s:8080 (L3/L4)': l4, 'x -> s:80 GET /ok (L7)': l7 })) {
    const rs = await p;
    t.ok(rs.length >= 5, `${name}: ${rs.length} requests`);
    t.same(rs.filter((o) => o !== '200'), [], `${name}: no errors across the kill and the restart`);
  }

  w.write('policy.yaml', [policy(true)]);
  await eventually(() => w.http('y', S, 8080) === '200', 30_000, 'a change after the restart');
  t.pass('the restarted agent applies changes');

  // Uninstall: `sluice cleanup` in the node's namespace takes the policy programs, links, pins and route away.
  await w.killAgent();
  const steeringRule = () => /lookup 2080/.test(w.node.sh('ip', ['rule', 'show']));
  const attached = linkIds();
  const exists = (id: number) => {
    try {
      return bpftool('link', 'show', 'id', String(id)).id === id;
    } catch {
      return false;
    }
  };
  t.ok(attached.length >= 6 && attached.every(exists) && steeringRule(), 'before: the TC links and the steering rule');
  const cli = new URL('../dist/cli.js', import.meta.url).pathname;
  w.node.sh(process.execPath, [cli, 'cleanup', '--bpf-dir', w.node.pinDir]);
  await eventually(() => !attached.some(exists), 5000, 'the links to go');
  t.pass('cleanup detached every policy link, and with them the programs');
  t.notOk(steeringRule(), 'and removed the steering rule');
  t.notOk(existsSync(w.node.pinDir), 'and every pin');
});
