#!/usr/bin/env node
// A bounded flow load on the real kernel (root): a node netns running
// `sluice agent --datapath`, a client and a server pod joined by veths, a
// policy on the server that allows the client on a UDP port range and drops
// another range. A small C generator in the client pod sends UDP datagrams,
// each on a 5-tuple it has not used before (a new conntrack entry at the
// client's egress and at the server's ingress check: two events), a tenth of
// them to the denied range (the server's check is a drop event). Measures what the kernel emitted, suppressed
// (per-CPU rate limits) and lost (ring full), what the agent kept (its
// hubble_flows_processed_total), its hubble_lost_events_total, and the
// agent's CPU and RSS before, during and after the load.
//
//   sudo node bench/flow-load.mjs [--rate 50000] [--seconds 10] [--flow-rate 20000] [--flow-burst 5000]
// --flow-rate/--flow-burst overwrite the kernel's per-CPU flow event limits
// (the agent's defaults otherwise; 0: unlimited) once the agent has set them.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { col, flags, machine, netnsBench, removeBenchNode, root, routedNode, rssMiB, spawnLines, until, writeYaml } from './lib.mjs';

const opts = flags({ rate: '50000', seconds: '10' });
const RATE = Number(opts.rate);
const SECONDS = Number(opts.seconds);
if (SECONDS > 30) throw new Error('--seconds is capped at 30: this is a bounded load');
const bench = netnsBench('flow-load');
const { ns: NS, cgroup: CG, dir, bpf, src } = bench;
const pinDir = join(bpf, 'sluice');
const { possibleCpus, policyPinDir } = await import(join(root, 'dist/redirect/policy-object.js'));
const { DEFAULT_EVENT_CONFIG, EVENT_MAPS, readEventLoss, writeEventConfig } = await import(join(root, 'dist/observe/bpf-event-reader.js'));
const C = '10.0.77.10';
const S = '10.0.77.11';
const ALLOW = [10000, 11999];
const DENY = [9000, 9099];
const children = [];
const sh = (args) => execFileSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const inNs = (ns, args) => sh(['nsenter', `--net=/var/run/netns/${ns}`, ...args]);

// One cleanup, whoever asks first (a signal, or the end of the run): the other waits for the same one.
let cleaning;
const cleanup = () => (cleaning ??= removeAll());
const removeAll = () => removeBenchNode(sh, { children, pins: pinDir, bpf, netns: [`${NS}-c`, `${NS}-s`, NS], cgroup: CG, dir });
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => {
    console.error(`${sig}: cleaning up`);
    void cleanup().then(() => process.exit(130));
  });

// Paced sendto()s; the k-th tuple of a range is socket (k / ports) with port (k % ports): none repeats within a run.
const GEN = String.raw`
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
  const char *dst = argv[1];
  int aBase = atoi(argv[2]), aN = atoi(argv[3]), dBase = atoi(argv[4]), dN = atoi(argv[5]);
  double rate = atof(argv[6]), secs = atof(argv[7]);
  int denyEvery = atoi(argv[8]);
  long total = (long)(rate * secs);
  long perA = total / aN, perD = denyEvery ? total / denyEvery / dN : 0;
  int nsock = (perA > perD ? perA : perD) + 2;
  struct rlimit rl = { nsock + 64, nsock + 64 };
  setrlimit(RLIMIT_NOFILE, &rl);
  int *fds = malloc(sizeof(int) * nsock);
  for (int i = 0; i < nsock; i++) {
    fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in any = { .sin_family = AF_INET };
    if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&any, sizeof any)) { perror("socket"); return 1; }
  }
  struct in_addr daddr;
  inet_pton(AF_INET, dst, &daddr);
  char payload[16] = "sluice-flowload";
  /* sendmmsg() in runs that share a socket: the syscall's cost is not what limits the rate. */
  enum { BATCH = 64 };
  struct sockaddr_in to[BATCH];
  struct iovec iov = { payload, sizeof payload };
  struct mmsghdr msgs[BATCH];
  int isDeny[BATCH];
  long allowed = 0, denied = 0, errors = 0, i = 0;
  double t0 = now(), end = t0 + secs;
  for (;;) {
    double t = now();
    if (t >= end) break;
    long due = (long)((t - t0) * rate);
    if (i >= due) { usleep(100); continue; }
    while (i < due) {
      int n = 0, fd = -1;
      long a = allowed, d = denied;
      for (; i < due && n < BATCH; i++) {
        int deny = denyEvery && i % denyEvery == 0;
        long k = deny ? d++ : a++, m = deny ? dN : aN;
        int f = fds[(k / m) % nsock];
        if (fd >= 0 && f != fd) { if (deny) d--; else a--; break; }
        fd = f;
        to[n] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr = daddr, .sin_port = htons((deny ? dBase : aBase) + k % m) };
        msgs[n].msg_hdr = (struct msghdr){ .msg_name = &to[n], .msg_namelen = sizeof to[n], .msg_iov = &iov, .msg_iovlen = 1 };
        isDeny[n++] = deny;
      }
      int sent = sendmmsg(fd, msgs, n, 0);
      if (sent < 0) sent = 0;
      /* What was not sent is an error, not a tuple used: the next batch reuses those tuples. */
      for (int j = 0; j < n; j++) {
        if (j >= sent) errors++;
        else if (isDeny[j]) denied++;
        else allowed++;
      }
    }
  }
  printf("{\"allowed\":%ld,\"denied\":%ld,\"errors\":%ld,\"seconds\":%.3f,\"sockets\":%d}\n", allowed, denied, errors, now() - t0, nsock);
  return 0;
}
`;

const log = [];
function startAgent() {
  const args = [join(root, 'dist/cli.js'), 'agent', '--source', `dir:${src}`, '--node', 'bench-node', '--socket', join(dir, 'xds.sock'), '--state-dir', join(dir, 'state'), '--proxy-ports', '20900-20999', '--datapath', '--bpf-root', bpf, '--cgroup-dir', CG, '--log-level', 'info'];
  // nsenter execs node: the child's PID is the agent's, for /proc.
  const p = spawnLines('nsenter', [`--net=/var/run/netns/${NS}`, process.execPath, ...args], (line) => {
    try {
      log.push(JSON.parse(line));
    } catch {
      /* not JSON */
    }
  });
  children.push(p);
  return p;
}

const metrics = () =>
  new Promise((res, rej) => {
    const q = request({ socketPath: join(dir, 'api.sock'), path: '/metrics' }, (r) => {
      let s = '';
      r.on('data', (d) => (s += d));
      r.on('end', () => res(s));
    });
    q.on('error', rej);
    q.end();
  });
/** The sum of a metric's series, or of those whose labels match `labels`. */
function sumOf(text, name, labels = /.*/) {
  let n = 0;
  for (const line of text.split('\n')) {
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name && labels.test(m[2] ?? '')) n += Number(m[3]);
  }
  return n;
}

const eventDirs = () => [policyPinDir(pinDir), pinDir].filter((d) => existsSync(join(d, EVENT_MAPS.ring)));
const kernelLoss = () => readEventLoss(eventDirs());

const ticks = () => {
  const f = readFileSync(`/proc/${agentPid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
};
const HZ = Number(sh(['getconf', 'CLK_TCK']).trim());
let agentPid;
/** The agent's CPU% (of one core) and peak RSS over `ms`, sampled every 250 ms. */
async function window(ms, during) {
  const t0 = performance.now();
  const c0 = ticks();
  let peak = rssMiB(agentPid);
  const p = during?.();
  while (performance.now() - t0 < ms) {
    await sleep(250);
    peak = Math.max(peak, rssMiB(agentPid));
  }
  const out = await p;
  const secs = (performance.now() - t0) / 1000;
  const rss = rssMiB(agentPid);
  return { cpu: ((ticks() - c0) / HZ / secs) * 100, peak: Math.max(peak, rss), rss, secs, out };
}

try {
  routedNode(sh, bench, [['c', C], ['s', S]]);
  writeFileSync(join(dir, 'gen.c'), GEN);
  sh(['gcc', '-O2', '-o', join(dir, 'gen'), join(dir, 'gen.c')]);

  const pod = (name, ip) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', labels: { app: name } }, spec: { nodeName: 'bench-node' }, status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } });
  writeYaml(src, 'pods.yaml', [pod('c', C), pod('s', S)]);
  writeYaml(src, 'policy.yaml', [
    {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'flow-load', namespace: 'default' },
      spec: { endpointSelector: { matchLabels: { app: 's' } }, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'c' } }], toPorts: [{ ports: [{ port: String(ALLOW[0]), endPort: ALLOW[1], protocol: 'UDP' }] }] }] },
    },
  ]);
  agentPid = startAgent().pid;
  // Both objects' rings read: the policy object's (loaded for the policy) and the socket LB's.
  await until(() => log.some((l) => l.msg === 'reading flow events from the datapath' && l.dirs?.length === 2), 60_000, 'the agent to read both event rings');
  await until(() => existsSync(join(dir, 'api.sock')), 10_000, 'the api socket');
  const cfg = { ...DEFAULT_EVENT_CONFIG };
  if (opts['flow-rate'] !== undefined || opts['flow-burst'] !== undefined) {
    cfg.flowRate = Number(opts['flow-rate'] ?? cfg.flowRate);
    cfg.flowBurst = Number(opts['flow-burst'] ?? cfg.flowBurst);
    writeEventConfig(eventDirs(), cfg);
  }
  // The policy in the maps: a denied datagram is a drop, an allowed one is not.
  const probe = () => inNs(`${NS}-c`, [join(dir, 'gen'), S, String(ALLOW[0]), '1', String(DENY[0]), '1', '20', '0.1', '2']);
  await until(() => log.some((l) => l.msg === 'policy datapath updated'), 30_000, 'the policy maps');
  probe();
  await sleep(2500);

  const k0 = kernelLoss();
  const m0 = await metrics();
  const before = await window(2000);
  const gen = spawn('nsenter', [`--net=/var/run/netns/${NS}-c`, join(dir, 'gen'), S, String(ALLOW[0]), String(ALLOW[1] - ALLOW[0] + 1), String(DENY[0]), String(DENY[1] - DENY[0] + 1), String(RATE), String(SECONDS), '10'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(gen);
  const during = await window(SECONDS * 1000, async () => {
    let s = '';
    gen.stdout.on('data', (d) => (s += d));
    await new Promise((res) => gen.on('exit', res));
    if (gen.exitCode !== 0) throw new Error(`the load generator exited with ${gen.exitCode}`);
    return JSON.parse(s);
  });
  // The agent reads what is left in the rings, and polls the kernel's loss every 2 s.
  const after = await window(4500);
  const k1 = kernelLoss();
  const m1 = await metrics();
  const g = during.out;
  const d = (k) => k1[k] - k0[k];
  const kept = sumOf(m1, 'hubble_flows_processed_total') - sumOf(m0, 'hubble_flows_processed_total');
  const keptDrops = sumOf(m1, 'hubble_flows_processed_total', /verdict="DROPPED"/) - sumOf(m0, 'hubble_flows_processed_total', /verdict="DROPPED"/);
  const lostMetric = sumOf(m1, 'hubble_lost_events_total') - sumOf(m0, 'hubble_lost_events_total');
  const offered = g.allowed + g.denied;
  // Both ends check a new tuple, each with its own conntrack entry: the client's egress (no policy: a forwarded flow event) and the server's ingress (a flow event, or a drop event for the denied range).
  const expected = 2 * offered;
  const accounted = kept + d('lost') + d('flowsSuppressed') + d('dropsSuppressed');

  console.log(`# bench/flow-load.mjs on ${machine()}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  console.log(`\n${RATE} tuples/s asked for ${SECONDS} s; the generator sent for ${g.seconds.toFixed(1)} s (a starved generator falls behind, it does not catch up beyond the schedule)`);
  console.log(`\nkernel flow event limits per CPU: flows ${cfg.flowRate}/s burst ${cfg.flowBurst}, drops ${cfg.dropRate}/s burst ${cfg.dropBurst} (0: unlimited); ${possibleCpus()} CPUs\n`);
  console.log('| load                                                   |        count |      per s |');
  console.log('|--------------------------------------------------------|--------------|------------|');
  const row = (what, n) => console.log(`| ${what.padEnd(54)} | ${col(n, 12)} | ${col(n / g.seconds, 10)} |`);
  row('offered: new UDP tuples to the allowed range', g.allowed);
  row('offered: datagrams to the denied range', g.denied);
  row('offered, total', offered);
  row('events expected: 2 per tuple (both ends check it)', expected);
  row('kept: the agent processed (hubble_flows_processed)', kept);
  row('  of which verdict DROPPED', keptDrops);
  row('suppressed by the flow rate limit (kernel)', d('flowsSuppressed'));
  row('suppressed by the drop rate limit (kernel)', d('dropsSuppressed'));
  row('lost, ring full (kernel)', d('lost'));
  row('lost, hubble_lost_events_total (agent metric)', lostMetric);
  row('kept + suppressed + lost', accounted);
  console.log(`\nsendto errors ${g.errors}; kept / offered ${(kept / offered).toFixed(3)}; events kept / expected ${(kept / expected).toFixed(3)}; (kept + suppressed + lost) / expected ${(accounted / expected).toFixed(3)}\n`);
  console.log('| agent          | CPU % of a core | RSS MiB (end) | RSS MiB (peak) |');
  console.log('|----------------|-----------------|---------------|----------------|');
  for (const [what, w] of [['before (2 s)', before], [`during (${SECONDS} s)`, during], ['after (4.5 s)', after]]) console.log(`| ${what.padEnd(14)} | ${col(w.cpu, 15, 1)} | ${col(w.rss, 13, 1)} | ${col(w.peak, 14, 1)} |`);
} finally {
  await cleanup();
}
