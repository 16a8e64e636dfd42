// An upgrade across the change that added the mesh destinations map, on the
// real kernel: the pins a version without it left (maps and TC links) are
// adopted by this version's reconciler and attacher. The maps that still fit
// are reused (same kernel maps, state kept), the new map is created and
// pinned beside them, the pinned links move to the new programs in place, and
// only then does mesh steering take effect.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PolicyDatapathState } from '../src/policy/datapath-state.js';
import { addon } from '../src/redirect/bpf.js';
import { PolicyReconciler } from '../src/redirect/policy-datapath.js';
import { POLICY_MAPS } from '../src/redirect/policy-maps.js';
import { tproxyConfig } from '../src/redirect/tproxy-route.js';
import { netnsWorld, stopChild } from './helpers/netns.js';
import { podMaker } from './helpers/policy-pods.js';
import { tcAttacherStarter } from './helpers/policy-tc-world.js';

const root = new URL('..', import.meta.url).pathname;

function mapId(path: string): number {
  const fd = addon().objGet(path);
  if (fd < 0) throw new Error(`${path} is not pinned`);
  try {
    return addon().mapInfo(fd).id;
  } finally {
    addon().closeFd(fd);
  }
}

t.test('pins of a version without the mesh map are adopted; steering starts once the links run the new programs', async (t) => {
  const node = await netnsWorld(t, []);
  const pod = podMaker(t, node);
  const x = pod(1, '10.244.0.11', 'fd00:244::11');
  const y = pod(2, '10.244.0.12', 'fd00:244::12');
  await y.servers({ tcp: [{ ip: y.ip, port: 8080, name: 'y' }] });
  const dir = mkdtempSync(join(tmpdir(), 'sluice-mesh-upgrade-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const before = join(dir, 'policy-before-mesh.o');
  execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I/usr/include/x86_64-linux-gnu', '-Wall', '-DSLUICE_TEST_WITHOUT_MESH', '-c', join(root, 'bpf/policy.c'), '-o', before]);
  const pin = (name: string) => join(node.pinDir, name);
  const veths = [x.ifindex(), y.ifindex()];
  const links = veths.flatMap((i) => ['ingress', 'egress'].map((d) => `${i}-${d}`)).sort();
  const progIds = () => links.map((l) => addon().linkInfo(join(node.pinDir, 'tc', l))!.progId);
  const xToY = () => x.client([{ op: 'tcp', host: y.ip, port: 8080 }])[0].map((r: any) => r.backend ?? r.error);

  const old = await tcAttacherStarter(t, node, veths, before)();
  t.notOk(existsSync(pin(POLICY_MAPS.mesh)), 'the old version pinned no mesh map');
  t.notOk(existsSync(pin('sluice_events')), 'nor an event ring');
  const kept = ['ipcache', 'endpoints', 'policy', 'ct', 'drops', 'tpcfg', 'polgen'] as const;
  const oldIds = kept.map((k) => mapId(pin(POLICY_MAPS[k])));
  const oldProgs = progIds();

  const r = PolicyReconciler.open(node.pinDir, { retryMs: 0 });
  t.teardown(() => r.close());
  t.ok(existsSync(pin(POLICY_MAPS.mesh)), 'this version created and pinned the mesh map');
  t.ok(['sluice_events', 'sluice_evcfg', 'sluice_evstat'].every((m) => existsSync(pin(m))), 'and the flow event maps, which that version had neither');
  t.same(kept.map((k) => mapId(pin(POLICY_MAPS[k]))), oldIds, 'every other map is the one the old version pinned');
  r.setTproxy(tproxyConfig());
  const state: PolicyDatapathState = {
    ipcache: [],
    endpoints: [{ pod: 'default/x', ip: x.ip, endpoint: 1, identity: 256, ingressEnforced: false, egressEnforced: false, meshed: true }],
    entries: [],
    meshDestinations: [{ prefix: `${y.ip}/32`, proxyPort: 15001 }],
  };
  t.same(r.apply(state).errors, []);
  t.same(xToY(), ['y'], 'the old programs, still attached, know nothing of the mesh: traffic flows as before');

  await stopChild(old.child);
  const { adopted } = await tcAttacherStarter(t, node, veths)();
  t.same([...adopted].sort(), links, "this version's attacher adopted every pinned link");
  t.ok(progIds().every((id, i) => id !== oldProgs[i]), 'each link now runs the new program');
  const noProxy = r.dropCounters()['no-proxy'];
  t.same(xToY(), ['timeout'], 'now the meshed pod is steered, and with no listener dropped');
  t.ok(r.dropCounters()['no-proxy'] > noProxy, 'counted as no proxy');
});
