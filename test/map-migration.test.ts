// Upgrades whose map definitions changed, on the real kernel: a client keeps
// connecting to a Service VIP while a new object opens over the old pins, and
// not one connection fails. A map whose layout still fits is carried across;
// one that does not (or no longer fits the data) is filled from desired state
// while the old programs go on serving; then every hook moves in place.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StableIds } from '../src/ids/stable-ids.js';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';
import { SockLbApplier } from '../src/redirect/apply.js';
import { addon } from '../src/redirect/bpf.js';
import { SockLb, SOCK_LB_PROGRAMS } from '../src/redirect/datapath.js';
import { desiredServices } from '../src/redirect/desired.js';
import { eventually } from './helpers/envoy.js';
import { endpointSlice, service } from './helpers/kube.js';
import { netnsWorld } from './helpers/netns.js';

const BACKENDS = ['10.244.7.1', '10.244.7.2', '10.244.7.3'];
const VIP = '10.96.7.10';
const root = new URL('..', import.meta.url).pathname;
const here = new URL('.', import.meta.url).pathname;

const desired = (ips: string[]) =>
  desiredServices(Model.from([service('web', [{ port: 80, name: 'p' }], { clusterIP: VIP }), endpointSlice('web', 'p', 8080, ips.map((ip) => ({ ip })))].map((object) => ({ object: object as ModelObject }))), [], { nodeIPs: [] });

function buildVariant(dir: string, variant: number): string {
  const out = join(dir, `sock_lb_v${variant}.o`);
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-Wall', `-DSLUICE_TEST_MAP_VARIANT=${variant}`, '-c', join(root, 'bpf/sock_lb.c'), '-o', out]);
  return out;
}

const pinnedInfo = (path: string) => {
  const fd = addon().objGet(path);
  if (fd < 0) throw new Error(`${path} is not pinned`);
  try {
    return { ...addon().mapInfo(fd), entries: addon().mapKeys(fd, addon().mapInfo(fd).keySize).length / addon().mapInfo(fd).keySize };
  } finally {
    addon().closeFd(fd);
  }
};
const linkProgs = (pinDir: string) => SOCK_LB_PROGRAMS.map((p) => addon().linkInfo(join(pinDir, 'links', p))!.progId);
const mapExists = (id: number) => {
  try {
    execFileSync('bpftool', ['map', 'show', 'id', String(id)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

t.test('map definition changes between versions: no failed connection to the VIP', async (t) => {
  const w = await netnsWorld(t, BACKENDS);
  t.teardown(() => SockLb.remove(w.pinDir));
  await w.servers({ tcp: BACKENDS.map((ip, i) => ({ ip, port: 8080, name: `b${i + 1}` })) });
  const dir = mkdtempSync(join(tmpdir(), 'sluice-migrate-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const v1 = buildVariant(dir, 1);
  const v2 = buildVariant(dir, 2);
  const ids = () => ({ services: new StableIds(join(dir, 'svc-ids.json'), [1, 65535]), backends: new StableIds(join(dir, 'backend-ids.json'), [1, 1 << 30]) });
  const pin = (name: string) => join(w.pinDir, name);
  const backendsSeen = (count = 30) => [...new Set(w.client([{ op: 'tcp', host: VIP, port: 80, count }])[0].map((r: any) => r.backend ?? r.error))].sort().join(',');

  /** Connects to the VIP in the world's netns and cgroup, in the background, until stop() (then resolves with the results). */
  let loops = 0;
  const loop = () => {
    const until = join(dir, `stop-${loops++}`);
    const plan = JSON.stringify([{ op: 'tcp', host: VIP, port: 80, until }]);
    const script = `echo $$ > ${w.cgroupDir}/cgroup.procs && exec ${process.execPath} ${join(here, 'helpers/netns-client.mjs')} '${plan}'`;
    const child = spawn('nsenter', [`--net=/var/run/netns/${w.ns}`, 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.teardown(() => void (child.exitCode === null && child.kill('SIGKILL')));
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    const done = new Promise<any[]>((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)[0]) : reject(new Error(`client exited ${code}`)))));
    const stop = () => (writeFileSync(until, ''), done);
    return { running: () => child.exitCode === null, stop };
  };
  /** Waits until the programs have written `more` rev-NAT entries than now: connections are going through. */
  const trafficFlows = async (more = 20) => {
    const before = pinnedInfo(pin('sluice_rev_nat')).entries;
    await eventually(() => pinnedInfo(pin('sluice_rev_nat')).entries >= before + more, 20_000, 'connections through the current programs');
  };

  // The running version: the object as built, one Service with three backends.
  const old = SockLb.open({ pinDir: w.pinDir, cgroupDir: w.cgroupDir });
  new SockLbApplier(old.maps, ids()).apply(desired(BACKENDS));
  old.close();
  t.equal(backendsSeen(), 'b1,b2,b3', 'the VIP reaches all three backends');

  t.test('a resized services map is carried across; a reshaped cache starts afresh', async (t) => {
    const before = { services: pinnedInfo(pin('sluice_services')), revNat: pinnedInfo(pin('sluice_rev_nat')), progs: linkProgs(w.pinDir) };
    t.throws(() => addon().openObject(v1, w.pinDir), /map mismatch/, 'libbpf alone refuses to reuse pins whose definition changed');
    const clients = loop();
    await trafficFlows();
    const lb = SockLb.open({ pinDir: w.pinDir, cgroupDir: w.cgroupDir, objectPath: v1 });
    t.same([...lb.replaced].sort(), ['sluice_rev_nat', 'sluice_services'], 'the two changed maps are replaced');
    t.same(lb.carried, ['sluice_services'], 'the services map, laid out alike, is carried');
    t.same(lb.awaitingFill, [], 'so nothing waits for a fill: the switch is done at open');
    t.same(lb.adopted, [...SOCK_LB_PROGRAMS], 'every pinned link now runs the new program');
    const r = new SockLbApplier(lb.maps, ids()).apply(desired(BACKENDS));
    t.same([r.upserts, r.deletes, r.failed], [0, 0, 0], 'the carried map already holds the desired state');
    lb.close();
    t.ok(clients.running(), 'the client loop was still running when the switch was over');
    await trafficFlows();
    t.pass('and connections go on through the new programs');
    const results = await clients.stop();
    const failed = results.filter((r) => !/^b[123]$/.test(r.backend));
    t.equal(failed.length, 0, `no failed connection of ${results.length}: ${JSON.stringify(failed.slice(0, 3))}`);

    const services = pinnedInfo(pin('sluice_services'));
    t.not(services.id, before.services.id, 'the services pin holds a new map');
    t.equal(services.maxEntries, 131072, "with the new version's size");
    t.equal(services.entries, before.services.entries, 'and every entry');
    t.equal(pinnedInfo(pin('sluice_rev_nat')).valueSize, before.revNat.valueSize + 8, "the rev-NAT pin holds the new version's layout");
    t.ok(linkProgs(w.pinDir).every((id, i) => id !== before.progs[i]), 'the links run new programs');
    await eventually(() => !mapExists(before.services.id) && !mapExists(before.revNat.id), 10_000, 'the old maps to be freed');
    t.pass('the old maps are gone with the old programs');
    const [fresh] = w.client([{ op: 'tcp', host: VIP, port: 80, count: 10 }]);
    t.ok(fresh.every((r: any) => r.peer?.address === VIP), 'getpeername shows the VIP through the new rev-NAT map');
  });

  t.test('a map too small to carry: the old programs serve until desired state fills the new one', async (t) => {
    const before = { backends: pinnedInfo(pin('sluice_backends')), progs: linkProgs(w.pinDir) };
    const clients = loop();
    await trafficFlows();
    const lb = SockLb.open({ pinDir: w.pinDir, cgroupDir: w.cgroupDir, objectPath: v2 });
    t.ok(lb.replaced.includes('sluice_backends'), 'the shrunk backends map is replaced');
    t.same(lb.awaitingFill, ['sluice_backends'], 'three backends do not fit in two: it waits for a fill');
    t.same(linkProgs(w.pinDir), before.progs, 'meanwhile the old programs stay on every hook');
    t.equal(pinnedInfo(pin('sluice_backends')).id, before.backends.id, 'and the old map in its pin');
    await trafficFlows();
    t.pass('serving connections');
    // What the agent does: apply desired state (now two backends), then switch.
    new SockLbApplier(lb.maps, ids()).apply(desired(BACKENDS.slice(0, 2)));
    lb.commit();
    t.same(lb.awaitingFill, [], 'filled and switched');
    t.ok(linkProgs(w.pinDir).every((id, i) => id !== before.progs[i]), 'the links run the new programs');
    const backends = pinnedInfo(pin('sluice_backends'));
    t.same([backends.maxEntries, backends.entries], [2, 2], 'the backends pin holds the new, filled map');
    lb.close();
    t.ok(clients.running(), 'the client loop was still running when the switch was over');
    await trafficFlows();
    const results = await clients.stop();
    const failed = results.filter((r) => !/^b[123]$/.test(r.backend));
    t.equal(failed.length, 0, `no failed connection of ${results.length}: ${JSON.stringify(failed.slice(0, 3))}`);
    t.equal(backendsSeen(), 'b1,b2', 'the VIP now reaches the two backends desired state has');
    await eventually(() => !mapExists(before.backends.id), 10_000, 'the old backends map to be freed');
    t.pass('the old backends map is gone');
  });
});
