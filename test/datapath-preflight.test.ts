// The datapath's start-up errors: what the machine lacks is named in one
// clear line with the path and the fix, before anything is loaded or created.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { preflight, SockLb, SOCK_LB_OBJECT } from '../src/redirect/datapath.js';
import { CGROUP2, requireDatapathPrerequisites } from './helpers/netns.js';

/** A (sub)test, as tap hands it to a test function. */
type T = Parameters<Parameters<typeof t.test>[0]>[0];

const mounts = () =>
  readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' '));

/** Runs `fn`, which must throw; returns the message. */
function failure(t: T, fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    t.type(e, Error);
    return (e as Error).message;
  }
  t.fail('expected an error');
  return '';
}

/** A clear start-up error: one line, naming `path`, with no stack frames or errno soup in it. */
function clear(t: T, message: string, path: string, says: RegExp): void {
  t.ok(message.includes(path), `names ${path}: ${message}`);
  t.match(message, says);
  t.equal(message.split('\n').length, 1, 'one line');
  t.notMatch(message, /^\s+at /m, 'no stack frames');
}

/** A private bpffs mount (and whatever is mounted under it), removed at teardown. */
function bpffs(t: T, name = 'sluice-preflight-'): string {
  const dir = mkdtempSync(join(tmpdir(), name));
  execFileSync('mount', ['-t', 'bpf', 'bpf', dir]);
  t.teardown(() => {
    const unescape = (m: string) => m.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    for (const m of mounts().map((f) => unescape(f[1])).filter((m) => m.startsWith(`${dir}/`)).reverse()) execFileSync('umount', [m]);
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

// Mounting bpffs and tmpfs needs root, and the cgroup checks a real cgroup v2
// hierarchy: without them this file fails, naming what is missing.
requireDatapathPrerequisites();

t.test('a pin dir not on bpffs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-not-bpffs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const pinDir = join(dir, 'sluice');
  const message = failure(t, () => SockLb.open({ pinDir, cgroupDir: CGROUP2 }));
  clear(t, message, pinDir, /not on a bpffs mount.*mount -t bpf/);
  t.notOk(existsSync(pinDir), 'nothing was created');
});

t.test('a pin dir on a tmpfs mounted inside a bpffs mount is not on bpffs', async (t) => {
  const bpf = bpffs(t);
  mkdirSync(join(bpf, 'sub'));
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', join(bpf, 'sub')]);
  const pinDir = join(bpf, 'sub', 'sluice');
  clear(t, failure(t, () => preflight({ pinDir, cgroupDir: CGROUP2 })), pinDir, /not on a bpffs mount/);
  // Control: beside the tmpfs, the same bpffs mount is fine.
  t.doesNotThrow(() => preflight({ pinDir: join(bpf, 'sluice'), cgroupDir: CGROUP2 }), 'a pin dir on the bpffs mount itself passes');
});

t.test('a bpffs mount whose path has a space in it is a bpffs mount', async (t) => {
  const bpf = bpffs(t, 'sluice preflight ');
  t.doesNotThrow(() => preflight({ pinDir: join(bpf, 'sluice'), cgroupDir: CGROUP2 }), `/proc/mounts escapes the space; ${bpf} is still bpffs`);
});

t.test('a cgroup dir not on cgroup v2', async (t) => {
  const pinDir = join(bpffs(t), 'sluice');
  const plain = mkdtempSync(join(tmpdir(), 'sluice-not-cgroup-'));
  t.teardown(() => rmSync(plain, { recursive: true, force: true }));
  clear(t, failure(t, () => SockLb.open({ pinDir, cgroupDir: plain })), plain, /not in a cgroup v2 hierarchy.*mount -t cgroup2/);
  t.notOk(existsSync(pinDir), 'nothing was created');
  // A cgroup v1 hierarchy, where the machine has one, is not v2 either.
  const v1 = mounts().find((f) => f[2] === 'cgroup')?.[1];
  if (v1) clear(t, failure(t, () => preflight({ pinDir, cgroupDir: v1 })), v1, /not in a cgroup v2 hierarchy/);
});

t.test('a cgroup dir that does not exist', async (t) => {
  const pinDir = join(bpffs(t), 'sluice');
  const cgroupDir = join(CGROUP2, `sluice-preflight-missing-${process.pid}`);
  clear(t, failure(t, () => SockLb.open({ pinDir, cgroupDir })), cgroupDir, /does not exist/);
  t.notOk(existsSync(pinDir), 'nothing was created');
});

t.test('a missing BPF object', async (t) => {
  const pinDir = join(bpffs(t), 'sluice');
  const objectPath = join(tmpdir(), `sluice-no-such-dir-${process.pid}`, 'sock_lb.o');
  clear(t, failure(t, () => SockLb.open({ pinDir, cgroupDir: CGROUP2, objectPath })), objectPath, /is missing.*scripts\/setup\.sh/);
  t.notOk(existsSync(pinDir), 'nothing was created');
  t.ok(SOCK_LB_OBJECT.endsWith('build/bpf/sock_lb.o'), 'the default object is the one scripts/setup.sh builds');
});

t.test('a BPF object that is not one', async (t) => {
  const pinDir = join(bpffs(t), 'sluice');
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bad-object-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const objectPath = join(dir, 'sock_lb.o');
  writeFileSync(objectPath, 'not an ELF file\n');
  clear(t, failure(t, () => SockLb.open({ pinDir, cgroupDir: CGROUP2, objectPath })), objectPath, /is not a BPF object.*scripts\/setup\.sh/);
  t.notOk(existsSync(pinDir), 'nothing was created');
});
