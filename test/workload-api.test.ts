// The SPIFFE Workload API against real callers: processes placed in kubelet-
// named cgroups (and pod network namespaces) on the real kernel, attested
// through SO_PEERCRED and /proc, and go-spiffe's own client and verifiers
// checking what our CA issued, served through the agent's own adapter.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { localSpiffeIds } from '../src/agent/identity-wiring.js';
import { podIdentityByUid } from '../src/identity/attest.js';
import { SpiffeCa } from '../src/identity/ca.js';
import { WorkloadSvids } from '../src/identity/svid-store.js';
import { workloadSpiffeId, type X509Svid } from '../src/identity/types.js';
import { WorkloadApiServer, type WorkloadIdentitySource } from '../src/identity/workload-api.js';
import { workloadIdentitySource } from '../src/identity/workload-source.js';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';
import { CGROUP2, removeCgroup, requireDatapathPrerequisites, stopChild } from './helpers/netns.js';
import { sameSerial, spiffeClientBinary, spiffeClientResult } from './helpers/spiffe-client.js';

requireDatapathPrerequisites();
const root = new URL('..', import.meta.url).pathname;
const GO_CLIENT = spiffeClientBinary();
const CALL = join(root, 'test/helpers/workload-api-call.mjs');

const TD = 'cluster.test';
const NODE = 'n1';
const id = `${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
const uidA = randomUUID();
const uidB = randomUUID();
const uidC = randomUUID();
const idA = workloadSpiffeId(TD, 'shop', 'frontend');
const idB = workloadSpiffeId(TD, 'bank', 'ledger');

const pod = (ns: string, name: string, sa: string, uid: string, node: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, uid },
  spec: { nodeName: node, serviceAccountName: sa },
  status: { phase: 'Running', podIP: '10.0.0.1' },
});
let model = Model.from(
  [pod('shop', 'frontend-1', 'frontend', uidA, NODE), pod('bank', 'ledger-1', 'ledger', uidB, NODE), pod('shop', 'elsewhere', 'frontend', uidC, 'n2')].map(
    (object) => ({ object: object as ModelObject }),
  ),
);

// Kubelet's two cgroup layouts: cgroupfs for A (and C), systemd for B.
const cgRoot = join(CGROUP2, `sluice-test-wlapi-${id}`);
const cgA = join(cgRoot, 'kubepods/burstable', `pod${uidA}`);
const cgB = join(cgRoot, 'kubepods.slice/kubepods-besteffort.slice', `kubepods-besteffort-pod${uidB.replaceAll('-', '_')}.slice`);
const cgC = join(cgRoot, 'kubepods/besteffort', `pod${uidC}`);
const nsA = `sluice-t-wlapi-a-${id}`;
const nsB = `sluice-t-wlapi-b-${id}`;
const children = new Set<ChildProcess>();

t.teardown(async () => {
  await Promise.all([...children].map(stopChild));
  for (const ns of [nsA, nsB])
    try {
      execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
    } catch {
      /* not created */
    }
  // Deepest first.
  const dirs = [cgA, cgB, cgC, join(cgB, '..'), join(cgB, '../..'), join(cgA, '..'), join(cgC, '..'), join(cgA, '../..'), cgRoot];
  for (const d of dirs) await removeCgroup(d);
});
for (const d of [cgA, cgB, cgC]) mkdirSync(d, { recursive: true });
for (const ns of [nsA, nsB]) execFileSync('ip', ['netns', 'add', ns]);

const caDir = mkdtempSync(join(tmpdir(), 'sluice-wlapi-ca-'));
t.teardown(() => rmSync(caDir, { recursive: true, force: true }));
const ca = await SpiffeCa.loadOrCreate({ trustDomain: TD, dir: caDir });
const svids = new WorkloadSvids({ ca, ttlSeconds: 3600 });
t.teardown(() => svids.stop());
// As the agent does: an SVID for each service account with a pod on this node.
svids.setWanted(localSpiffeIds(model, NODE, TD));
await svids.ready();
const agentSource = workloadIdentitySource(ca, svids, 300);

/** Drops an identity and wants it again, as a pod's going and coming does: a fresh SVID, pushed like a rotation. */
async function reissue(spiffeId: string): Promise<X509Svid> {
  svids.setWanted(svids.wanted().filter((w) => w !== spiffeId));
  svids.setWanted(localSpiffeIds(model, NODE, TD));
  await svids.ready();
  return svids.get(spiffeId)!;
}

// Our root does not rotate yet, so a bundle change is layered over the agent's adapter to show that the server pushes one to every stream.
let bundleBumps = 0;
const bundleListeners = new Set<(changed: 'bundle') => void>();
const source: WorkloadIdentitySource = {
  ...agentSource,
  bundle: () => {
    const b = agentSource.bundle();
    return { ...b, sequence: b.sequence + bundleBumps };
  },
  onChange(cb) {
    const off = agentSource.onChange(cb);
    bundleListeners.add(cb);
    return () => (off(), bundleListeners.delete(cb));
  },
};
function bumpBundle(): void {
  bundleBumps++;
  for (const l of bundleListeners) l('bundle');
}

const sockDir = mkdtempSync(join(tmpdir(), 'sluice-wlapi-'));
t.teardown(() => rmSync(sockDir, { recursive: true, force: true }));
const socketPath = join(sockDir, 'agent.sock');
const server = new WorkloadApiServer({ socketPath, source, podByUid: (uid) => podIdentityByUid(model, TD, NODE, uid) });
await server.start();
t.teardown(() => server.close());

/** Starts a command as a process of a pod: in its cgroup (joined before exec) and, if given, its network namespace. */
function inPod(cgroup: string | undefined, netns: string | undefined, cmd: string, args: string[]): ChildProcess {
  const quoted = [cmd, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  const script = cgroup ? `echo $$ > '${cgroup}/cgroup.procs' && exec ${quoted}` : `exec ${quoted}`;
  const c = netns ? spawn('nsenter', [`--net=/var/run/netns/${netns}`, 'sh', '-c', script]) : spawn('sh', ['-c', script]);
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** Runs to completion; the server lives in this process, so never a synchronous spawn. */
function run(cgroup: string | undefined, netns: string | undefined, cmd: string, args: string[]): Promise<{ code: number | null; out: any; stderr: string }> {
  const c = inPod(cgroup, netns, cmd, args);
  let stdout = '';
  let stderr = '';
  c.stdout!.on('data', (d) => (stdout += d));
  c.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve) =>
    c.once('exit', (code) => {
      resolve({ code, out: spiffeClientResult(stdout), stderr });
    }),
  );
}
const goClient = (cg: string | undefined, ns: string | undefined, ...extra: string[]) =>
  run(cg, ns, GO_CLIENT, ['-addr', `unix://${socketPath}`, '-audience', 'spiffe://cluster.test/ns/bank/sa/ledger', ...extra]);
const call = (cg: string | undefined, ns: string | undefined, step: object) => run(cg, ns, process.execPath, [CALL, socketPath, JSON.stringify(step)]);

t.test('the socket is open to every uid', async (t) => {
  t.equal(statSync(socketPath).mode & 0o777, 0o666);
});

t.test("go-spiffe in pod A's cgroup gets A's SVIDs and validates both with its own verifiers", async (t) => {
  const r = await goClient(cgA, nsA);
  t.equal(r.code, 0, `go client: ${JSON.stringify(r.out)} ${r.stderr}`);
  t.equal(r.out.spiffeId, idA, 'x509svid.Verify against the fetched bundle names A');
  t.equal(r.out.jwtSub, idA, 'jwtsvid.ParseAndValidate against the fetched JWT bundle names A');
  t.ok(sameSerial(r.out.serial, svids.get(idA)!.serial), "the served certificate is A's current one, issued by our CA");
});

t.test("pod B (systemd cgroup layout) gets B's identity, and is refused A's", async (t) => {
  const own = await goClient(cgB, nsB);
  t.equal(own.code, 0, `go client: ${JSON.stringify(own.out)} ${own.stderr}`);
  t.equal(own.out.spiffeId, idB);
  t.equal(own.out.jwtSub, idB);
  const theft = await goClient(cgB, nsB, '-jwt-spiffe-id', idA);
  t.equal(theft.code, 1);
  t.match(theft.out, { step: 'FetchJWTSVID', code: 'PermissionDenied' });
});

t.test('callers that cannot be attested are refused', async (t) => {
  const nowhere = await goClient(undefined, undefined);
  t.equal(nowhere.code, 1);
  t.match(nowhere.out, { step: 'FetchX509Context', code: 'PermissionDenied' }, 'a process in no pod cgroup');
  const otherNode = await goClient(cgC, undefined);
  t.equal(otherNode.code, 1);
  t.match(otherNode.out, { step: 'FetchX509Context', code: 'PermissionDenied' }, "a pod of another node (its uid is in the model, but not on this node)");
  const jwt = await call(undefined, undefined, { op: 'jwt', audience: ['x'] });
  t.match(jwt.out, { code: 'PERMISSION_DENIED' }, 'FetchJWTSVID too');
});

t.test('malformed requests: InvalidArgument', async (t) => {
  const noHeader = await call(cgA, nsA, { op: 'jwt', audience: ['x'], noHeader: true });
  t.match(noHeader.out, { code: 'INVALID_ARGUMENT', details: /workload\.spiffe\.io/ }, 'no workload.spiffe.io header');
  const noHeaderUnattested = await call(undefined, undefined, { op: 'jwt', audience: ['x'], noHeader: true });
  t.match(noHeaderUnattested.out, { code: 'INVALID_ARGUMENT' }, 'the header is checked before the caller');
  const noAudience = await call(cgA, nsA, { op: 'jwt', audience: [] });
  t.match(noAudience.out, { code: 'INVALID_ARGUMENT', details: /audience/ }, 'FetchJWTSVID with no audience');
  const ok = await call(cgA, nsA, { op: 'jwt', audience: ['svc'], spiffeId: idA });
  t.same(ok.out.svids?.map((s: any) => s.spiffeId), [idA], 'asking for its own ID by name is fine');
  const token = ok.out.svids[0].svid;
  const valid = await call(cgB, nsB, { op: 'validate', audience: 'svc', svid: token });
  t.equal(valid.out.spiffeId, idA, `B validates A's token: ${JSON.stringify(valid.out)} ${valid.stderr}`);
  t.equal(valid.out.claims?.sub, idA);
  const wrongAud = await call(cgB, nsB, { op: 'validate', audience: 'other', svid: token });
  t.match(wrongAud.out, { code: 'INVALID_ARGUMENT' }, 'wrong audience');
  const garbage = await call(cgB, nsB, { op: 'validate', audience: 'svc', svid: 'not.a.jwt' });
  t.match(garbage.out, { code: 'INVALID_ARGUMENT' }, 'not a JWT');
  const noSvid = await call(cgB, nsB, { op: 'validate', audience: 'svc', svid: '' });
  t.match(noSvid.out, { code: 'INVALID_ARGUMENT', details: /svid/ });
});

/** A FetchX509SVID stream in a pod: each response's {spiffeId, serial}, awaited one at a time. */
function watch(cg: string, ns: string) {
  const c = inPod(cg, ns, process.execPath, [CALL, socketPath, JSON.stringify({ op: 'watch' })]);
  const seen: { spiffeId?: string; serial?: string; code?: string }[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: c.stdout! }).on('line', (l) => {
    seen.push(JSON.parse(l));
    waiters.splice(0).forEach((w) => w());
  });
  const exited = new Promise<never>((_, reject) => c.once('exit', (code) => reject(new Error(`watcher exited (${code}) after ${JSON.stringify(seen)}`))));
  exited.catch(() => {});
  return {
    seen,
    async next(n: number) {
      while (seen.length < n) await Promise.race([new Promise<void>((r) => waiters.push(r)), exited]);
      return seen[n - 1];
    },
  };
}

t.test('two concurrent streams keep their own identities; a new SVID reaches only its owner', async (t) => {
  const a = watch(cgA, nsA);
  const b = watch(cgB, nsB);
  // Both connections are open at once from here on.
  t.match(await a.next(1), { spiffeId: idA });
  t.match(await b.next(1), { spiffeId: idB });
  t.ok(sameSerial(a.seen[0].serial!, svids.get(idA)!.serial));

  const newA = await reissue(idA);
  const a2 = await a.next(2);
  t.equal(a2.spiffeId, idA);
  t.ok(sameSerial(a2.serial!, newA.serial), "A's stream carries A's new certificate");
  t.notOk(sameSerial(a2.serial!, a.seen[0].serial!), 'and it is a different one');

  const newB = await reissue(idB);
  const b2 = await b.next(2);
  t.equal(b2.spiffeId, idB);
  t.ok(sameSerial(b2.serial!, newB.serial), "B's next response is B's own rotation, nothing from A's");
  t.equal(a.seen.length, 2, "A's stream got nothing for B's rotation");

  bumpBundle();
  const [a3, b3] = await Promise.all([a.next(3), b.next(3)]);
  t.same([a3.spiffeId, b3.spiffeId], [idA, idB], 'a bundle change reaches every stream');
  t.ok(sameSerial(a3.serial!, newA.serial) && sameSerial(b3.serial!, newB.serial), 'with the same SVIDs');
});

t.test('a pod gone from the model loses its identity', async (t) => {
  const before = model;
  model = Model.from(before.list('Pod').filter((p) => p.metadata.uid !== uidA).map((object) => ({ object })));
  t.teardown(() => void (model = before));
  const r = await goClient(cgA, nsA);
  t.equal(r.code, 1);
  t.match(r.out, { step: 'FetchX509Context', code: 'PermissionDenied' });
});
