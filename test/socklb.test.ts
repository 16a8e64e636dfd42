// Socket load balancing on the real kernel: cgroup sock_addr programs, in a
// test network namespace and cgroup, steering VIP connections to backends.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StableIds } from '../src/ids/stable-ids.js';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';
import { SockLbApplier } from '../src/redirect/apply.js';
import { desiredServices } from '../src/redirect/desired.js';
import { SockLb, SOCK_LB_PROGRAMS } from '../src/redirect/datapath.js';
import { endpointSlice, service } from './helpers/kube.js';
import { netnsWorld } from './helpers/netns.js';
import { assertSplit } from './helpers/stats.js';

const BACKENDS = ['10.244.1.1', '10.244.1.2', '10.244.1.3'];
const BACKENDS6 = ['fd00:244::1', 'fd00:244::2'];

function slice(svc: string, port: number, ips: string[], family: 'IPv4' | 'IPv6' = 'IPv4', portName = 'p', protocol = 'TCP'): object {
  const s = endpointSlice(svc, portName, port, ips.map((ip) => ({ ip })), { name: `${svc}-${family}` }) as any;
  return { ...s, addressType: family, ports: [{ name: portName, port, protocol }] };
}

function objects(web: string[], opts: { affinity?: boolean } = {}): ModelObject[] {
  const webSvc = service('web', [{ port: 80, name: 'p' }], { clusterIP: '10.96.0.10' }) as any;
  if (opts.affinity) webSvc.spec.sessionAffinity = 'ClientIP';
  const v6 = service('web6', [{ port: 80, name: 'p' }], { clusterIP: 'fd00:96::10' }) as any;
  v6.spec.ipFamilies = ['IPv6'];
  const dns = service('dns', [{ port: 53, name: 'p' }], { clusterIP: '10.96.0.53' }) as any;
  dns.spec.ports[0].protocol = 'UDP';
  const udp6 = service('udp6', [{ port: 7, name: 'p' }], { clusterIP: 'fd00:96::7' }) as any;
  udp6.spec.ports[0].protocol = 'UDP';
  return [
    webSvc,
    slice('web', 8080, web),
    v6,
    slice('web6', 8080, BACKENDS6, 'IPv6'),
    dns,
    slice('dns', 5353, ['10.244.1.1'], 'IPv4', 'p', 'UDP'),
    udp6,
    slice('udp6', 7007, ['fd00:244::1'], 'IPv6', 'p', 'UDP'),
  ] as ModelObject[];
}

const model = (objs: ModelObject[]) => Model.from(objs.map((object) => ({ object })));

t.test('socket LB in a test netns and cgroup', async (t) => {
  const w = await netnsWorld(t, [...BACKENDS, ...BACKENDS6]);
  await w.servers({
    tcp: [...BACKENDS.map((ip, i) => ({ ip, port: 8080, name: `b${i + 1}` })), ...BACKENDS6.map((ip, i) => ({ ip, port: 8080, name: `v6-${i + 1}` }))],
    udp: [{ ip: 'fd00:244::1', port: 7007, name: 'u6' }],
    dns: { ip: '10.244.1.1', port: 5353, answer: '10.1.2.3' },
  });
  const state = mkdtempSync(join(tmpdir(), 'sluice-ids-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const ids = { services: new StableIds(join(state, 'svc-ids.json'), [1, 65535]), backends: new StableIds(join(state, 'backend-ids.json'), [1, 1 << 30]) };
  t.teardown(() => SockLb.remove(w.pinDir));
  let lb = SockLb.open({ pinDir: w.pinDir, cgroupDir: w.cgroupDir });
  t.same(lb.adopted, [], 'a fresh start attaches, adopting nothing');
  const applier = new SockLbApplier(lb.maps, ids);
  const first = applier.apply(desiredServices(model(objects(BACKENDS)), [], { nodeIPs: [] }));
  t.ok(first.upserts > 0);

  t.test('TCP over IPv4 reaches every backend, roughly evenly; getpeername shows the VIP', async (t) => {
    const [res] = w.client([{ op: 'tcp', host: '10.96.0.10', port: 80, count: 90 }]);
    const counts: Record<string, number> = {};
    for (const r of res) counts[r.backend] = (counts[r.backend] ?? 0) + 1;
    t.same(Object.keys(counts).sort(), ['b1', 'b2', 'b3'], `all backends used: ${JSON.stringify(counts)}`);
    assertSplit(t, counts, { b1: 1, b2: 1, b3: 1 }, 'an even random pick per connection');
    t.ok(res.every((r: any) => r.peer.address === '10.96.0.10' && r.peer.port === 80), 'getpeername returns the VIP');
  });

  t.test('TCP over IPv6 and UDP over IPv6, with replies from the VIP', async (t) => {
    const [tcp6, udp6] = w.client([
      { op: 'tcp', host: 'fd00:96::10', port: 80, count: 20 },
      { op: 'udp', host: 'fd00:96::7', port: 7, count: 3 },
    ]);
    t.ok(tcp6.every((r: any) => /^v6-/.test(r.backend)), 'v6 connects reach v6 backends');
    t.equal(new Set(tcp6.map((r: any) => r.backend)).size, 2, 'both v6 backends used');
    t.ok(tcp6.every((r: any) => r.peer.address === 'fd00:96::10'), 'getpeername6 returns the VIP');
    t.same(udp6.map((r: any) => [r.backend, r.from.address, r.from.port]), Array(3).fill(['u6', 'fd00:96::7', 7]), 'recvmsg6 rewrites the source to the VIP');
  });

  t.test('DNS over UDP to a VIP works because recvmsg rewrites the source', async (t) => {
    const [dns] = w.client([{ op: 'dns', server: '10.96.0.53', name: 'web.default.svc', count: 3 }]);
    t.same(dns, Array(3).fill({ addresses: ['10.1.2.3'] }), 'a real resolver accepted the answers');
  });

  t.test('ClientIP session affinity keeps one backend', async (t) => {
    applier.apply(desiredServices(model(objects(BACKENDS, { affinity: true })), [], { nodeIPs: [] }));
    const [res] = w.client([{ op: 'tcp', host: '10.96.0.10', port: 80, count: 30 }]);
    t.equal(new Set(res.map((r: any) => r.backend)).size, 1, `one backend: ${res[0].backend}`);
    applier.apply(desiredServices(model(objects(BACKENDS)), [], { nodeIPs: [] }));
  });

  t.test('removing a backend stops new connections to it', async (t) => {
    const stats = applier.apply(desiredServices(model(objects(BACKENDS.slice(0, 2))), [], { nodeIPs: [] }));
    t.ok(stats.deletes >= 2, `the stale slot and backend were deleted (${JSON.stringify(stats)})`);
    const [res] = w.client([{ op: 'tcp', host: '10.96.0.10', port: 80, count: 40 }]);
    t.same([...new Set(res.map((r: any) => r.backend))].sort(), ['b1', 'b2']);
    t.match(applier.apply(desiredServices(model(objects(BACKENDS.slice(0, 2))), [], { nodeIPs: [] })), { upserts: 0, deletes: 0, failed: 0 }, 'an unchanged model writes nothing');
  });

  t.test('the agent going away leaves connections working; a restart adopts without duplicates or leaks', async (t) => {
    const progsBefore = execFileSync('bpftool', ['cgroup', 'show', w.cgroupDir], { encoding: 'utf8' });
    lb.close();
    const [res] = w.client([{ op: 'tcp', host: '10.96.0.10', port: 80, count: 10 }]);
    t.ok(res.every((r: any) => r.backend === 'b1' || r.backend === 'b2'), 'service connections work with no agent');
    lb = SockLb.open({ pinDir: w.pinDir, cgroupDir: w.cgroupDir });
    t.same(lb.adopted, [...SOCK_LB_PROGRAMS], 'every pinned link was adopted');
    const again = new SockLbApplier(lb.maps, ids);
    t.match(again.apply(desiredServices(model(objects(BACKENDS.slice(0, 2))), [], { nodeIPs: [] })), { upserts: 0, deletes: 0, failed: 0 }, 'the adopted maps already hold the state');
    const progsAfter = execFileSync('bpftool', ['cgroup', 'show', w.cgroupDir], { encoding: 'utf8' });
    const count = (s: string) => s.split('\n').filter((l) => /sluice_/.test(l)).length;
    t.equal(count(progsAfter), SOCK_LB_PROGRAMS.length, 'one program per hook, not two');
    t.equal(count(progsBefore), count(progsAfter));
    // Judged by this world's programs and pins alone: other suites load sluice maps of their own meanwhile.
    const bpftool = (args: string[]) => JSON.parse(execFileSync('bpftool', [...args, '-j'], { encoding: 'utf8' }));
    const used = new Set<number>(bpftool(['cgroup', 'show', w.cgroupDir]).flatMap((p: any) => bpftool(['prog', 'show', 'id', String(p.id)]).map_ids ?? []));
    const pinned = new Set<number>(readdirSync(w.pinDir).filter((n) => n.startsWith('sluice_')).map((n) => bpftool(['map', 'show', 'pinned', join(w.pinDir, n)]).id));
    t.ok(used.size > 0, 'the attached programs use maps');
    t.same([...used].filter((id) => !pinned.has(id)), [], 'every map the restarted programs use is a pinned one: none was created twice');
    lb.close();
  });
});
