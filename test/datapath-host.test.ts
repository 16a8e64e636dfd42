// What the datapath finds or makes on the node at start: the cgroup v2 mount
// (a unified host, a hybrid one with v2 at unified/, or elsewhere), and a bpffs
// mount at --bpf-root when there is none.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BPF_FS_MAGIC, CGROUP2_SUPER_MAGIC, cgroup2Mounts, ensureBpffs, resolveCgroup2 } from '../src/redirect/host.js';

const line = (id: number, mountPoint: string, fstype: string, optional = '') => `${id} 1 0:${id} / ${mountPoint} rw,nosuid,nodev,noexec,relatime ${optional}- ${fstype} ${fstype} rw`;
const UNIFIED = [line(24, '/sys', 'sysfs', 'shared:7 '), line(29, '/sys/fs/cgroup', 'cgroup2', 'shared:9 '), line(30, '/sys/fs/bpf', 'bpf', 'shared:10 ')].join('\n');
const HYBRID = [line(31, '/sys/fs/cgroup', 'tmpfs', 'shared:9 '), line(32, '/sys/fs/cgroup/cpu', 'cgroup'), line(41, '/sys/fs/cgroup/unified', 'cgroup2', 'shared:10 master:3 ')].join('\n');

t.test('cgroup v2 mounts from mountinfo: optional fields and escaped names', async (t) => {
  t.same(cgroup2Mounts(UNIFIED), ['/sys/fs/cgroup']);
  t.same(cgroup2Mounts(HYBRID), ['/sys/fs/cgroup/unified'], 'v1 and tmpfs mounts are not v2');
  t.same(cgroup2Mounts(line(50, '/run/my\\040cgroup', 'cgroup2')), ['/run/my cgroup'], 'an escaped space');
  t.same(cgroup2Mounts(`${line(51, '/a', 'tmpfs')}\n\n`), [], 'none');
});

t.test('with no --cgroup-dir: /sys/fs/cgroup, then /sys/fs/cgroup/unified, then any v2 mount', async (t) => {
  t.equal(resolveCgroup2(undefined, UNIFIED), '/sys/fs/cgroup', 'a unified host');
  t.equal(resolveCgroup2(undefined, HYBRID), '/sys/fs/cgroup/unified', 'a hybrid host');
  t.equal(resolveCgroup2(undefined, [line(60, '/run/sluice/cgroupv2', 'cgroup2'), HYBRID].join('\n')), '/sys/fs/cgroup/unified', 'the usual places first');
  t.equal(resolveCgroup2(undefined, line(61, '/run/cilium/cgroupv2', 'cgroup2')), '/run/cilium/cgroupv2', 'else wherever it is');
  t.throws(() => resolveCgroup2(undefined, line(62, '/sys/fs/cgroup', 'tmpfs')), /^no cgroup v2 hierarchy is mounted; mount one: mount -t cgroup2 none \/sys\/fs\/cgroup\/unified, or give --cgroup-dir$/);
});

t.test("a requested directory: itself on v2; a hybrid root (the chart's hostPath) means its unified/", async (t) => {
  const plain = mkdtempSync(join(tmpdir(), 'sluice-cgroot-'));
  t.teardown(() => rmSync(plain, { recursive: true, force: true }));
  const mountinfo = [line(70, `${plain}/unified`, 'cgroup2'), line(71, `${plain}/cpu`, 'cgroup')].join('\n');
  t.equal(resolveCgroup2(plain, mountinfo), join(plain, 'unified'), 'a directory holding the v2 mount at unified/');
  t.equal(resolveCgroup2(plain, UNIFIED), plain, 'otherwise it stays as given, for preflight to name');
  t.equal(resolveCgroup2('/no/such/cgroup', HYBRID), '/no/such/cgroup', 'a missing one too');
  // The machine's own v2 mount, and a directory inside it, resolve to themselves.
  const real = resolveCgroup2(undefined);
  t.equal(statfsSync(real).type, CGROUP2_SUPER_MAGIC, `this machine's cgroup v2 mount: ${real}`);
  t.ok(cgroup2Mounts(readFileSync('/proc/self/mountinfo', 'utf8')).includes(real), 'as mountinfo lists it');
  t.equal(resolveCgroup2(real), real);
  t.equal(resolveCgroup2('/sys/fs/cgroup'), real, '/sys/fs/cgroup means the v2 mount on this machine, unified or hybrid');
});

t.test('bpffs: mounted at the root when missing, once', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'sluice-bpfroot-'));
  t.teardown(() => {
    spawnSync('umount', [root]);
    rmSync(root, { recursive: true, force: true });
  });
  t.not(statfsSync(root).type, BPF_FS_MAGIC, 'a plain directory first');
  t.equal(ensureBpffs(root), true, 'mounts');
  t.equal(statfsSync(root).type, BPF_FS_MAGIC, 'the kernel says bpffs');
  t.equal(ensureBpffs(root), false, 'a second call finds it mounted');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4] === root);
  t.equal(mounts.length, 1, 'mounted once, not stacked');
  t.match(mounts[0], / - bpf bpf rw.*mode=700/, 'private to root');
});

t.test('a bpffs root that cannot be mounted is a one-line error with the fix', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bpfroot-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'file'), '');
  const root = join(dir, 'file', 'bpf');
  const err = t.throws(() => ensureBpffs(root)) as Error;
  t.equal(err.message, `${root} is not a bpffs mount and mounting one failed (${err.message.split('failed (')[1].split(');')[0]}); mount one first: mount -t bpf bpf ${root}`);
  t.match(err.message, /ENOTDIR/, 'with the reason');
  t.equal(err.message.split('\n').length, 1, 'one line');
});
