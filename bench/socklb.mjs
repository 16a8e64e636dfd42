#!/usr/bin/env node
// The socket load balancer (bpf/sock_lb.c, cgroup connect4) against a
// kube-proxy-faithful iptables ruleset, on the real kernel, in two parts:
//   latency: connect()+close() latency, p50 and p99, at 100, 1,000 and 10,000
//     Services (10 endpoints each), targets drawn uniformly over every
//     Service, with a direct connect to a backend as the floor;
//   change: the cost of one Service change (an endpoint replaced) at 100 to
//     50,000 Services: the agent's own path (ServiceDatapath.apply of the new
//     model: model delta, the changed Service's frontends, map writes), the
//     full walk every change cost before, and kube-proxy's partial sync
//     (iptables-restore --noflush with KUBE-SERVICES and the one Service's chains).
//
//   sudo node bench/socklb.mjs [--part latency,change] [--sizes 100,1000,10000] [--connects 3000] [--warmup 100]
//                              [--rounds 10] [--restore-timeout 30] [--iptables nft|legacy|nft,legacy] [--seed 1]
//                              [--change-sizes 100,1000,10000,50000] [--change-endpoints 4] [--change-runs 100]
//                              [--restore-runs 5] [--full-runs 3] [--change-iptables legacy] [--cell-seconds 10] [--load-timeout 60]
//
// --part change alone runs in about two minutes at its default sizes.
// --iptables defaults to both backends, the system's first. iptables-nft
// 1.8.9's --noflush restore is superlinear (measured: 1,500 Services 13.6 s,
// 3,000 Services 305 s), so above 1,000 Services the nft ruleset is loaded
// without --noflush (same rules, noted in the output), and a restore that
// runs past --restore-timeout is stopped and reported as such.
//
// Everything runs in network namespaces this bench creates (loopback and a
// veth pair with both ends inside, so no packet can leave the machine), with cgroups it
// creates under the cgroup v2 mount and a private bpffs mount; iptables rules
// are only ever installed inside those namespaces. The connecting client is a
// small C program compiled here with gcc, so that the numbers are the kernel's
// path and not Node's per-socket overhead. All of it is removed on exit,
// failure or signal; only the processes started here are ever killed, by PID.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { flags, machine, root } from './lib.mjs';

const CGROUP2 = process.env.SLUICE_CGROUP2 ?? '/sys/fs/cgroup/unified';
const opts = flags({
  part: 'latency,change',
  sizes: '100,1000,10000',
  connects: '3000',
  warmup: '100',
  rounds: '10',
  'restore-timeout': '30',
  iptables: '',
  seed: '1',
  'change-sizes': '100,1000,10000,50000',
  'change-endpoints': '4',
  'change-runs': '100',
  'restore-runs': '5',
  'full-runs': '3',
  'change-iptables': 'legacy',
  'cell-seconds': '10',
  'load-timeout': '60',
});
const parts = opts.part.split(',');
const sizes = opts.sizes.split(',').map(Number);
const CONNECTS = Number(opts.connects);
const WARMUP = Number(opts.warmup);
const ROUNDS = Number(opts.rounds);
const RESTORE_TIMEOUT_MS = Number(opts['restore-timeout']) * 1000;
const NFT_NOFLUSH_MAX = 1000;
const ENDPOINTS = 10;
const BACKEND_PORT = 8080;
const CLUSTER_CIDR = '10.244.0.0/14';
// Pod IPs: 10.244.0.1 onward (an AnyIP local route makes every one of them a local listener address).
const POD_ROUTE = '10.244.0.0/15';
const CLIENT_IP = '10.247.255.254'; // inside the cluster CIDR, like a pod: kube-proxy does not masquerade it
const SPARE_BASE = 120_000; // pod IPs for endpoints that replace others in the change runs

// ---------------------------------------------------------------- preflight

function need(cond, msg) {
  if (!cond) {
    console.error(`bench/socklb: ${msg}`);
    process.exit(2);
  }
}
need(process.getuid?.() === 0, 'needs root (network namespaces, cgroups, BPF, iptables)');
need(
  readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === CGROUP2 && l.split(' ')[2] === 'cgroup2'),
  `no cgroup v2 mount at ${CGROUP2} (set SLUICE_CGROUP2)`,
);
for (const f of ['dist/redirect/datapath.js', 'dist/redirect/apply.js', 'dist/agent/service-datapath.js', 'build/bpf/sock_lb.o', 'native/build/Release/sluice_bpf.node'])
  need(existsSync(join(root, f)), `${f} is missing; run scripts/setup.sh`);
const which = (cmd) => {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};
const sh1 = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8' }).trim();
const systemBackend = /nf_tables/.test(sh1('iptables', ['--version'])) ? 'nft' : 'legacy';
const backends = parts.includes('latency') ? (opts.iptables || [systemBackend, systemBackend === 'nft' ? 'legacy' : 'nft'].join(',')).split(',') : [];
const changeBackends = parts.includes('change') ? opts['change-iptables'].split(',') : [];
for (const b of [...backends, ...changeBackends]) need(['nft', 'legacy'].includes(b) && which(`iptables-${b}-restore`), `iptables-${b}-restore is not available`);
for (const p of parts) need(['latency', 'change'].includes(p), `--part: no part ${p}`);
for (const c of ['gcc', 'nsenter', 'ip', 'bpftool']) need(which(c), `${c} is not installed; run scripts/setup.sh`);

const { SockLb } = await import(join(root, 'dist/redirect/datapath.js'));
const { SockLbApplier } = await import(join(root, 'dist/redirect/apply.js'));
const { StableIds } = await import(join(root, 'dist/ids/stable-ids.js'));
const { ServiceDatapath } = await import(join(root, 'dist/agent/service-datapath.js'));
const { Model } = await import(join(root, 'dist/model/model.js'));
const { desiredServices } = await import(join(root, 'dist/redirect/desired.js'));

// ---------------------------------------------------------------- cleanup

const id = `${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
const made = { netns: [], cgroups: [], children: [], bpffs: undefined, pinDirs: [], tmp: undefined, lbs: [] };
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  const attempt = (what, fn) => {
    try {
      fn();
    } catch (e) {
      console.error(`bench/socklb: cleanup: ${what}: ${e.message.split('\n')[0]}`);
    }
  };
  for (const c of made.children) if (c.exitCode === null && c.signalCode === null) attempt(`kill ${c.pid}`, () => process.kill(c.pid, 'SIGKILL'));
  for (const lb of made.lbs) attempt('close the BPF object', () => lb.close());
  for (const dir of made.pinDirs) attempt(`remove pins in ${dir}`, () => SockLb.remove(dir));
  if (made.bpffs) {
    attempt('umount bpffs', () => execFileSync('umount', [made.bpffs]));
    attempt('remove bpffs dir', () => rmSync(made.bpffs, { recursive: true, force: true }));
  }
  // Killed children leave their cgroup asynchronously; give them a moment.
  for (const cg of made.cgroups)
    attempt(`rmdir ${cg}`, () => {
      for (let i = 0; ; i++) {
        try {
          if (existsSync(cg)) rmdirSync(cg);
          return;
        } catch (e) {
          if (i >= 50) throw e;
          execFileSync('sleep', ['0.1']);
        }
      }
    });
  for (const ns of made.netns) attempt(`ip netns delete ${ns}`, () => execFileSync('ip', ['netns', 'delete', ns]));
  if (made.tmp) attempt('remove tmp dir', () => rmSync(made.tmp, { recursive: true, force: true }));
}
process.on('exit', cleanup);
for (const [sig, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
])
  process.on(sig, () => {
    console.error(`bench/socklb: ${sig}, cleaning up`);
    cleanup();
    process.exit(code);
  });

// ---------------------------------------------------------------- the C client and server

const C_SOURCE = String.raw`
// serve PORT: accept on 0.0.0.0:PORT, answer with the local address, close.
// client FILE WARMUP COUNT [verify]: connect()+close() to each "ip port" line
// of FILE in turn; prints the nanoseconds of each measured connect+close, or
// in verify mode what each server answered.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }

static int serve(int port) {
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY) };
	if (bind(l, (void *)&a, sizeof a) || listen(l, 4096)) { perror("serve: listen"); return 1; }
	printf("ready\n"); fflush(stdout);
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0) { if (errno == EINTR || errno == ECONNABORTED) continue; perror("serve: accept"); return 1; }
		struct sockaddr_in me; socklen_t ml = sizeof me; char buf[64];
		if (!getsockname(c, (void *)&me, &ml)) {
			int n = snprintf(buf, sizeof buf, "%s:%d", inet_ntoa(me.sin_addr), ntohs(me.sin_port));
			send(c, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		close(c);
	}
}

static int client(const char *file, long warmup, long count, int verify) {
	FILE *f = fopen(file, "r");
	if (!f) { perror(file); return 1; }
	struct sockaddr_in *t = NULL; size_t n = 0, cap = 0; char ip[64]; int port;
	while (fscanf(f, "%63s %d", ip, &port) == 2) {
		if (n == cap) t = realloc(t, (cap = cap ? cap * 2 : 1024) * sizeof *t);
		memset(&t[n], 0, sizeof *t);
		t[n].sin_family = AF_INET; t[n].sin_port = htons(port);
		if (inet_pton(AF_INET, ip, &t[n].sin_addr) != 1) { fprintf(stderr, "bad address %s\n", ip); return 1; }
		n++;
	}
	fclose(f);
	if (!n) { fprintf(stderr, "no targets\n"); return 1; }
	long long *ns = calloc(count, sizeof *ns);
	struct linger lg = { 1, 0 };          /* close() sends RST: no TIME_WAIT piling up across cells */
	struct timeval tv = { 2, 0 };         /* an untranslated VIP would hang on the black-hole route: fail instead */
	for (long i = 0; i < warmup + count; i++) {
		struct sockaddr_in *d = &t[i % n];
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s < 0) { perror("socket"); return 1; }
		setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		long long t0 = now_ns();
		if (connect(s, (void *)d, sizeof *d)) {
			inet_ntop(AF_INET, &d->sin_addr, ip, sizeof ip);
			fprintf(stderr, "connect %s:%d: %s\n", ip, ntohs(d->sin_port), strerror(errno));
			return 3;
		}
		if (verify) {
			char buf[64] = { 0 };
			ssize_t r = recv(s, buf, sizeof buf - 1, 0);
			inet_ntop(AF_INET, &d->sin_addr, ip, sizeof ip);
			printf("%s:%d %s\n", ip, ntohs(d->sin_port), r > 0 ? buf : "-");
		}
		close(s);
		long long t1 = now_ns();
		if (i >= warmup) ns[i - warmup] = t1 - t0;
	}
	if (!verify)
		for (long i = 0; i < count; i++) printf("%lld\n", ns[i]);
	return 0;
}

int main(int argc, char **argv) {
	if (argc >= 3 && !strcmp(argv[1], "serve")) return serve(atoi(argv[2]));
	if (argc >= 5 && !strcmp(argv[1], "client")) return client(argv[2], atol(argv[3]), atol(argv[4]), argc > 5);
	fprintf(stderr, "usage: serve PORT | client FILE WARMUP COUNT [verify]\n");
	return 2;
}
`;

// ---------------------------------------------------------------- addresses, services, PRNG

const ipOf = (n) => `${Math.floor(n / 2 ** 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
const POD_BASE = 10 * 2 ** 24 + 244 * 2 ** 16;
const VIP_BASE = 10 * 2 ** 24 + 96 * 2 ** 16;
const vip = (i) => ipOf(VIP_BASE + i + 1);
const podIP = (k) => ipOf(POD_BASE + k + 1);
const svcName = (i) => `bench/svc-${i}:http`; // kube-proxy's ServicePortName string

/** The endpoints (pod IPs) of Service i; `changed` replaces endpoint 0 of one Service with a spare pod. */
function endpointsOf(i, changed) {
  const eps = Array.from({ length: ENDPOINTS }, (_, j) => podIP(i * ENDPOINTS + j));
  if (changed && changed.svc === i) eps[0] = podIP(SPARE_BASE + changed.n);
  return eps;
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the agent's desiredServices() would produce for these Services. */
function desired(n, changed) {
  return Array.from({ length: n }, (_, i) => ({
    frontend: { vip: vip(i), port: 80, proto: 'TCP' },
    serviceKey: `${svcName(i)}/TCP`,
    backends: endpointsOf(i, changed).map((ip) => ({ ip, port: BACKEND_PORT })),
    maglev: false,
  }));
}

// ---------------------------------------------------------------- kube-proxy's iptables ruleset

// kube-proxy (pkg/proxy/iptables/proxier.go, 1.28): chain names are the prefix
// plus the first 16 base32 characters of sha256(servicePortName + protocol [+ endpoint]).
function base32(buf) {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let val = 0;
  let out = '';
  for (const byte of buf) {
    val = ((val << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += A[(val >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out;
}
const hash16 = (s) => base32(createHash('sha256').update(s).digest().subarray(0, 10)).slice(0, 16);
const svcChain = (i) => `KUBE-SVC-${hash16(`${svcName(i)}tcp`)}`;
const sepChain = (i, ep) => `KUBE-SEP-${hash16(`${svcName(i)}tcp${ep}:${BACKEND_PORT}`)}`;
const MARK = '0x4000';

/** The jump rules kube-proxy ensures with `iptables -I` on a full sync (not part of its restore input). */
const JUMPS = `*filter
-I INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-I INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-I INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-I OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-I FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-I INPUT -j KUBE-FIREWALL
-I OUTPUT -j KUBE-FIREWALL
COMMIT
*nat
-I PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-I POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
COMMIT
`;

/**
 * The iptables-restore input of one kube-proxy sync (restored with --noflush).
 * A full sync writes every Service's chains; a partial sync (kube-proxy 1.27+,
 * MinimizeIPTablesRestore) rewrites the top-level chains, KUBE-SERVICES with a
 * rule for every Service included, but only the changed Services' own chains.
 */
function kubeProxyRestore(n, { changed, partial = false, eps: epsOf = (i) => endpointsOf(i, changed), gone = [] } = {}) {
  const large = n * epsOf(0).length > 1000; // kube-proxy's largeClusterMode drops per-endpoint comments
  const chains = [];
  const rules = [];
  for (const c of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ']) chains.push(`:${c} - [0:0]`);
  rules.push(`-A KUBE-POSTROUTING -m mark ! --mark ${MARK}/${MARK} -j RETURN`);
  rules.push(`-A KUBE-POSTROUTING -j MARK --xor-mark ${MARK}`);
  rules.push(`-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully`);
  rules.push(`-A KUBE-MARK-MASQ -j MARK --or-mark ${MARK}`);
  let written = 0;
  for (let i = 0; i < n; i++) {
    const name = svcName(i);
    const svc = svcChain(i);
    const match = `-m comment --comment "${name} cluster IP" -m tcp -p tcp -d ${vip(i)} --dport 80`;
    rules.push(`-A KUBE-SERVICES ${match} -j ${svc}`);
    if (partial && changed?.svc !== i) continue;
    written++;
    const eps = epsOf(i);
    chains.push(`:${svc} - [0:0]`);
    rules.push(`-A ${svc} ${match} ! -s ${CLUSTER_CIDR} -j KUBE-MARK-MASQ`);
    eps.forEach((ep, j) => {
      const comment = large ? '' : ` -m comment --comment "${name} -> ${ep}:${BACKEND_PORT}"`;
      const stat = j < eps.length - 1 ? ` -m statistic --mode random --probability ${(1 / (eps.length - j)).toFixed(10)}` : '';
      rules.push(`-A ${svc}${comment}${stat} -j ${sepChain(i, ep)}`);
    });
    for (const ep of eps) {
      const sep = sepChain(i, ep);
      const comment = large ? '' : ` -m comment --comment ${name}`;
      chains.push(`:${sep} - [0:0]`);
      rules.push(`-A ${sep}${comment} -s ${ep} -j KUBE-MARK-MASQ`);
      rules.push(`-A ${sep}${comment} -m tcp -p tcp -j DNAT --to-destination ${ep}:${BACKEND_PORT}`);
    }
  }
  rules.push(`-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`);
  // Chains of endpoints that went away: flushed by their declaration, then deleted, as kube-proxy does.
  for (const c of gone) {
    chains.push(`:${c} - [0:0]`);
    rules.push(`-X ${c}`);
  }
  const filter = [
    '*filter',
    ...['KUBE-SERVICES', 'KUBE-EXTERNAL-SERVICES', 'KUBE-FORWARD', 'KUBE-NODEPORTS', 'KUBE-PROXY-FIREWALL', 'KUBE-FIREWALL'].map((c) => `:${c} - [0:0]`),
    `-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
    '-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP',
    `-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark ${MARK}/${MARK} -j ACCEPT`,
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    'COMMIT',
  ];
  const text = [...filter, '*nat', ...chains, ...rules, 'COMMIT', ''].join('\n');
  return { text, natRules: rules.length, servicesWritten: written };
}

// ---------------------------------------------------------------- the world

const ms = (a, b) => b - a;
const now = () => performance.now();

made.tmp = mkdtempSync(join(tmpdir(), 'sluice-bench-socklb-'));
const bin = join(made.tmp, 'connbench');
writeFileSync(join(made.tmp, 'connbench.c'), C_SOURCE);
execFileSync('gcc', ['-O2', '-Wall', '-o', bin, join(made.tmp, 'connbench.c')]);

function netns(name) {
  execFileSync('ip', ['netns', 'add', name]);
  made.netns.push(name);
  // nsenter enters only the network namespace; `ip netns exec` would also remount /sys and hide the cgroup tree.
  const enter = [`--net=/var/run/netns/${name}`];
  const run = (cmd, args, input, timeout = 600_000) =>
    execFileSync('nsenter', [...enter, cmd, ...args], { encoding: 'utf8', input, timeout, killSignal: 'SIGKILL', maxBuffer: 1 << 28 });
  run('ip', ['link', 'set', 'lo', 'up']);
  // A veth pair with both ends in this namespace: the default route (which
  // Service VIPs need before iptables can DNAT them) goes out v0 into v1,
  // where an untranslated packet is dropped (no forwarding): a black hole.
  run('ip', ['link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1']);
  run('ip', ['link', 'set', 'v0', 'up']);
  run('ip', ['link', 'set', 'v1', 'up']);
  run('ip', ['addr', 'add', `${CLIENT_IP}/32`, 'dev', 'v0']);
  run('ip', ['route', 'add', 'default', 'dev', 'v0', 'src', CLIENT_IP]);
  // Every pod IP is local: one wildcard listener is every backend.
  run('ip', ['route', 'add', 'local', POD_ROUTE, 'dev', 'lo']);
  return {
    name,
    run,
    async serve() {
      const c = spawn('nsenter', [...enter, bin, 'serve', String(BACKEND_PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
      made.children.push(c);
      await new Promise((resolve, reject) => {
        c.stdout.on('data', (d) => String(d).includes('ready') && resolve());
        c.on('exit', (code) => reject(new Error(`server in ${name} exited with ${code}`)));
      });
    },
    /**
     * Feeds `text` to iptables-restore of `backend` in this namespace; returns
     * its wall time in ms, or Infinity when it ran past the timeout and was
     * killed (a restore is all-or-nothing, so the tables are then unchanged).
     */
    restore(backend, text, { noflush = true, timeout = RESTORE_TIMEOUT_MS } = {}) {
      const t0 = performance.now();
      try {
        run(`iptables-${backend}-restore`, ['-w', '5', ...(noflush ? ['--noflush'] : []), '--counters'], text, timeout);
      } catch (e) {
        if (e.code === 'ETIMEDOUT' || e.signal === 'SIGKILL') return Infinity;
        throw e;
      }
      return performance.now() - t0;
    },
    /** Runs the C client in this namespace and `cgroup`; returns its stdout lines. */
    client(cgroup, targets, warmup, count, verify = false) {
      const file = join(made.tmp, 'targets.txt');
      writeFileSync(file, targets.map((t) => `${t.ip} ${t.port}`).join('\n') + '\n');
      const script = `echo $$ > ${cgroup}/cgroup.procs && exec ${bin} client ${file} ${warmup} ${count}${verify ? ' verify' : ''}`;
      return run('sh', ['-c', script], undefined, 300_000).trim().split('\n');
    },
  };
}

function cgroup(suffix) {
  const dir = join(CGROUP2, `sluice-bench-${id}-${suffix}`);
  mkdirSync(dir);
  made.cgroups.push(dir);
  return dir;
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
const median = (xs) => pct([...xs].sort((a, b) => a - b), 0.5);

// ---------------------------------------------------------------- run

const command = `node bench/socklb.mjs ${process.argv.slice(2).join(' ')}`.trim();
const header = [];
header.push('# sluice socket LB vs kube-proxy iptables');
header.push(`command:  ${command}`);
header.push(`date:     ${new Date().toISOString()}`);
header.push(`kernel:   ${sh1('uname', ['-r'])}`);
for (const b of new Set([...backends, ...changeBackends])) header.push(`iptables: ${sh1(`iptables-${b}`, ['--version'])}${b === systemBackend ? '  (the system default)' : ''}`);
header.push(`machine:  ${machine()}`);
if (parts.includes('latency')) header.push(
  `setup:    each Service is ClusterIP TCP :80 with ${ENDPOINTS} endpoints (distinct pod IPs :${BACKEND_PORT}); every pod IP is a local address in the bench netns (AnyIP route ${POD_ROUTE} on lo, one wildcard listener)`,
);
if (parts.includes('latency')) header.push(
  `client:   C, blocking connect() then close() with SO_LINGER{1,0} (RST, no TIME_WAIT), CLOCK_MONOTONIC around connect+close (socket() not timed); ${CONNECTS} timed connects per cell in ${ROUNDS} interleaved rounds (rotating order), each round after ${WARMUP} untimed; targets uniform over all N Services (seed ${opts.seed})`,
);
if (parts.includes('latency')) header.push(
  `paths:    socket LB = client in a cgroup with sluice's cgroup/connect4 program, in a netns with no iptables rules (no conntrack); iptables = client in a cgroup with no BPF program, netns with kube-proxy 1.28's filter+nat ruleset; floor = direct connect to a pod IP, no LB`,
);
if (backends.includes('nft'))
  header.push(
    `note:     iptables-nft-restore --noflush is superlinear in this iptables (1,500 Services: 13.6 s, 3,000: 305 s when we measured), so above ${NFT_NOFLUSH_MAX} Services the nft ruleset is loaded without --noflush (the same rules); kube-proxy's own syncs use --noflush`,
  );
if (changeBackends.length && !changeBackends.includes('nft'))
  header.push(
    `note:     the change curve's kube-proxy baseline is iptables-legacy by default (--change-iptables): iptables-nft-restore --noflush is superlinear in the ruleset's size here (1,500 Services: 13.6 s, 3,000: 305 s to load when we measured), so nft is measured only when asked for`,
  );
console.log(header.join('\n'));
const started = now();

made.bpffs = mkdtempSync(join(tmpdir(), 'sluice-bench-bpffs-'));
execFileSync('mount', ['-t', 'bpf', 'bpf', made.bpffs]);
const effective = (cg) => execFileSync('bpftool', ['cgroup', 'show', cg, 'effective'], { encoding: 'utf8' });
const rand = mulberry32(Number(opts.seed));
const f = (x, d = 1) => (x >= 100 ? x.toFixed(0) : x.toFixed(d));
const pad = (s, w) => String(s).padEnd(w);
const lpad = (s, w) => String(s).padStart(w);

if (parts.includes('latency')) await latencyPart();
if (parts.includes('change')) await changePart();

async function latencyPart() {
  const lbNs = netns(`sluice-bench-${id}-lb`);
  const iptNs = Object.fromEntries(backends.map((b) => [b, netns(`sluice-bench-${id}-${b}`)]));
  await lbNs.serve();
  for (const ns of Object.values(iptNs)) await ns.serve();

  const pinDir = join(made.bpffs, 'sluice');
  mkdirSync(pinDir);
  made.pinDirs.push(pinDir);
  const lbCg = cgroup('lb');
  const plainCg = cgroup('plain');
  const lb = SockLb.open({ pinDir, cgroupDir: lbCg });
  made.lbs.push(lb);
  need(/sluice_connect4/.test(effective(lbCg)), `the socket LB program is not attached to ${lbCg}`);
  need(!/sluice_/.test(effective(plainCg)), `${plainCg} must not run the socket LB (it measures iptables and the floor)`);
  const applier = new SockLbApplier(lb.maps, { services: new StableIds(undefined, [1, 65535]), backends: new StableIds(undefined, [1, 2 ** 30]) });

  const lat = []; // { n, path, p50, p99 }
  const loads = []; // { n, what, ms }

  /** Checks that connects through a path land on one of the target Service's endpoints. */
  function verify(ns, cg, n, label) {
    const targets = Array.from({ length: 40 }, () => Math.floor(rand() * n));
    const lines = ns.client(
      cg,
      targets.map((i) => ({ ip: vip(i), port: 80 })),
      0,
      targets.length,
      true,
    );
    lines.forEach((l, k) => {
      const got = l.split(' ')[1];
      const want = endpointsOf(targets[k]).map((ep) => `${ep}:${BACKEND_PORT}`);
      need(want.includes(got), `${label}: a connect to ${vip(targets[k])}:80 reached ${got}, not an endpoint of svc-${targets[k]}`);
    });
  }

  for (const n of sizes) {
    process.stderr.write(`bench: ${n} services: loading...\n`);
    let t0 = now();
    const stats = applier.apply(desired(n));
    loads.push({ n, what: 'socket LB: SockLbApplier.apply (initial fill)', ms: ms(t0, now()), note: `${stats.upserts} entries` });
    for (const [b, ns] of Object.entries(iptNs)) {
      const { text, natRules } = kubeProxyRestore(n);
      const noflush = !(b === 'nft' && n > NFT_NOFLUSH_MAX);
      const took = ns.restore(b, text, { noflush, timeout: 600_000 });
      need(took !== Infinity, `loading ${n} services into iptables-${b} took over 10 minutes`);
      loads.push({ n, what: `iptables (${b}): full sync, iptables-restore ${noflush ? '--noflush' : '(no --noflush: see header)'}`, ms: took, note: `${natRules} nat rules` });
      // kube-proxy's jump rules from the built-in chains; a restore without --noflush flushed them.
      if (n === sizes[0] || !noflush) ns.restore(b, JUMPS);
    }
    verify(lbNs, lbCg, n, 'socket LB');
    for (const [b, ns] of Object.entries(iptNs)) verify(ns, plainCg, n, `iptables (${b})`);

    const vipTargets = Array.from({ length: WARMUP + CONNECTS }, () => ({ ip: vip(Math.floor(rand() * n)), port: 80 }));
    const podTargets = Array.from({ length: WARMUP + CONNECTS }, () => ({ ip: podIP(Math.floor(rand() * n * ENDPOINTS)), port: BACKEND_PORT }));
    const cells = [
      { path: 'floor: direct to a pod IP, no LB', ns: lbNs, cg: plainCg, targets: podTargets },
      { path: 'socket LB: VIP via cgroup/connect4', ns: lbNs, cg: lbCg, targets: vipTargets },
      { path: 'socket LB attached, direct to a pod IP', ns: lbNs, cg: lbCg, targets: podTargets },
      ...Object.entries(iptNs).flatMap(([b, ns]) => [
        { path: `iptables (${b}): VIP via KUBE-SERVICES`, ns, cg: plainCg, targets: vipTargets, backend: b },
        { path: `iptables (${b}) loaded, direct to a pod IP`, ns, cg: plainCg, targets: podTargets, backend: b },
      ]),
    ];
    const samples = new Map(cells.map((c) => [c.path, []]));
    const roundP50 = new Map(cells.map((c) => [c.path, []]));
    const per = Math.ceil(CONNECTS / ROUNDS);
    // Interleaved rounds in a rotating order: this VM's speed drifts by +-15% between
    // runs of the same cell, and the drift should fall on every path alike.
    for (let r = 0; r < ROUNDS; r++)
      for (const c of [...cells.slice(r % cells.length), ...cells.slice(0, r % cells.length)]) {
        const slice = c.targets.slice(WARMUP + r * per, WARMUP + (r + 1) * per);
        const warm = c.targets.slice(0, WARMUP);
        const got = c.ns.client(c.cg, [...warm, ...slice], warm.length, slice.length).map(Number);
        samples.get(c.path).push(...got);
        roundP50.get(c.path).push(median(got) / 1000);
      }
    for (const c of cells) {
      const s = samples.get(c.path).sort((a, b) => a - b);
      const rp = roundP50.get(c.path);
      lat.push({ n, path: c.path, backend: c.backend, p50: pct(s, 0.5) / 1000, p99: pct(s, 0.99) / 1000, count: s.length, lo: Math.min(...rp), hi: Math.max(...rp) });
    }
  }

  // ---------------------------------------------------------------- report

  console.log('\nconnect()+close() latency, microseconds (round p50s: the lowest and highest p50 of the rounds, i.e. the noise on this machine)');
  console.log(`${lpad('services', 8)}  ${pad('path', 44)} ${lpad('p50', 8)} ${lpad('p99', 8)} ${lpad('n', 6)}  ${pad('round p50s', 14)}`);
  for (const r of lat) console.log(`${lpad(r.n, 8)}  ${pad(r.path, 44)} ${lpad(f(r.p50), 8)} ${lpad(f(r.p99), 8)} ${lpad(r.count, 6)}  ${f(r.lo)}-${f(r.hi)}`);

  console.log('\nratios of latency (p50 / p99); floor = direct connect with no LB');
  const cell = (n, path) => lat.find((r) => r.n === n && r.path === path);
  const ratio = (a, b) => `${(a.p50 / b.p50).toFixed(2)} / ${(a.p99 / b.p99).toFixed(2)}`;
  const rcols = ['iptables/socketLB', 'socketLB/floor', 'iptables/floor', 'ipt-loaded-direct/floor', 'LB-attached-direct/floor'];
  console.log(`${lpad('services', 8)}  ${pad('iptables', 8)} ${rcols.map((c) => lpad(c, 24)).join(' ')}`);
  for (const n of sizes)
    for (const b of backends) {
      const floor = cell(n, 'floor: direct to a pod IP, no LB');
      const lb = cell(n, 'socket LB: VIP via cgroup/connect4');
      const lbDirect = cell(n, 'socket LB attached, direct to a pod IP');
      const ipt = cell(n, `iptables (${b}): VIP via KUBE-SERVICES`);
      const iptDirect = cell(n, `iptables (${b}) loaded, direct to a pod IP`);
      console.log(
        `${lpad(n, 8)}  ${pad(b, 8)} ${[ratio(ipt, lb), ratio(lb, floor), ratio(ipt, floor), ratio(iptDirect, floor), ratio(lbDirect, floor)].map((c) => lpad(c, 24)).join(' ')}`,
      );
    }

  console.log('\nloading all Services (informational; one run each)');
  for (const l of loads) console.log(`${lpad(l.n, 8)}  ${pad(l.what, 52)} ${lpad(f(l.ms), 9)} ms  ${l.note}`);
}

// ---------------------------------------------------------------- one Service change: the scaling curve

/**
 * At each size: N Services (ClusterIP TCP :80, --change-endpoints endpoints
 * each, one EndpointSlice) as model objects, filled once; then changes, each
 * replacing the oldest endpoint of a random Service with a new pod, applied
 * the way the agent applies a new model; then the same for kube-proxy.
 */
async function changePart() {
  const SIZES = opts['change-sizes'].split(',').map(Number);
  const EPS = Number(opts['change-endpoints']);
  const RUNS = Number(opts['change-runs']);
  const RESTORE_RUNS = Number(opts['restore-runs']);
  const FULL_RUNS = Number(opts['full-runs']);
  const NODE = 'bench-node';
  const WARM = 10;
  // Each measured loop stops at its run count or, past a minimum, at this many seconds: the runtime stays bounded at 50,000.
  const BUDGET_MS = Number(opts['cell-seconds']) * 1000;
  const MIN_RUNS = 30;
  const LOAD_TIMEOUT_MS = Number(opts['load-timeout']) * 1000;
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc');
  // Pods of this part: 172.16.0.0/12 (a million addresses), all local in the LB namespace.
  const POD_BASE_C = 172 * 2 ** 24 + 16 * 2 ** 16;
  const pod = (k) => ipOf(POD_BASE_C + k + 1);
  const ns = netns(`sluice-bench-${id}-chg`);
  ns.run('ip', ['route', 'add', 'local', '172.16.0.0/12', 'dev', 'lo']);
  await ns.serve();
  const ipt = Object.fromEntries(changeBackends.map((b) => [b, netns(`sluice-bench-${id}-chg-${b}`)]));
  const cg = cgroup('change');
  const fullCg = cgroup('change-full');

  const service = (i) => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: 'bench', name: `svc-${i}` },
    spec: { type: 'ClusterIP', clusterIP: vip(i), ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: BACKEND_PORT }] },
  });
  const slice = (i, eps) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: 'bench', name: `svc-${i}-a`, labels: { 'kubernetes.io/service-name': `svc-${i}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', protocol: 'TCP', port: BACKEND_PORT }],
    endpoints: eps.map((ip) => ({ addresses: [ip], nodeName: NODE, conditions: { ready: true } })),
  });
  const pct99 = (xs) => pct([...xs].sort((a, b) => a - b), 0.99);
  const rows = [];
  for (const n of SIZES) {
    process.stderr.write(`bench: change curve at ${n} services...\n`);
    const eps = Array.from({ length: n }, (_, i) => Array.from({ length: EPS }, (_, j) => pod(i * EPS + j)));
    let spare = n * EPS;
    const services = Array.from({ length: n }, (_, i) => service(i));
    const slices = eps.map((e, i) => slice(i, e));
    // A source hands out the same object while it is unchanged; the model is rebuilt around them.
    const modelOf = () => Model.from([...services, ...slices].map((object) => ({ object })));
    const row = { n };

    // sluice, the agent's path: ServiceDatapath over its own pins and cgroup.
    const pinDir = join(made.bpffs, `change-${n}`);
    mkdirSync(pinDir);
    made.pinDirs.push(pinDir);
    const dp = new ServiceDatapath({ pinDir, cgroupDir: cg });
    made.lbs.push(dp);
    let model = modelOf();
    let t0 = now();
    let r = dp.apply(model, [], NODE);
    row.loadLb = ms(t0, now());
    process.stderr.write(`bench:   sluice first apply ${f(row.loadLb)} ms; changes...\n`);
    need(!r.failed && !r.unplaced.length && r.services === n, `${n} services: the first apply did not place every Service: ${JSON.stringify(r).slice(0, 300)}`);
    const times = [];
    const delta = [];
    const applier = [];
    const changed = [];
    const sluiceStart = now();
    for (let c = -WARM; c < RUNS && !(c >= MIN_RUNS && now() - sluiceStart > BUDGET_MS); c++) {
      const i = Math.floor(rand() * n);
      eps[i] = [...eps[i].slice(1), pod(spare++)];
      slices[i] = slice(i, eps[i]);
      changed.push(i);
      // As a source hands the agent a change: the old model with the one changed object.
      const next = model.withEdits([{ object: slices[i] }]);
      gc({ type: 'minor' });
      t0 = now();
      r = dp.apply(next, [], NODE);
      const took = ms(t0, now());
      need(!r.failed && !r.undeleted && r.upserts >= 1 && r.deletes >= 1, `${n} services, change ${c}: ${JSON.stringify(r).slice(0, 300)}`);
      need(!dp.lastApply.full && dp.lastApply.services === 1, `${n} services: a change looked at ${dp.lastApply.services} Services (full walk: ${dp.lastApply.full})`);
      model = next;
      if (c < 0) continue;
      times.push(took);
      delta.push(dp.lastApply.deltaMs);
      applier.push(took - dp.lastApply.deltaMs);
    }
    // Connects through the LB reach the changed Services' new endpoints, and others' too.
    const targets = [...changed.slice(-20), ...Array.from({ length: 20 }, () => Math.floor(rand() * n))];
    ns.client(cg, targets.map((i) => ({ ip: vip(i), port: 80 })), 0, targets.length, true).forEach((l, k) => {
      const got = l.split(' ')[1];
      need(eps[targets[k]].some((ip) => `${ip}:${BACKEND_PORT}` === got), `socket LB at ${n}: ${vip(targets[k])}:80 reached ${got}, not an endpoint of svc-${targets[k]}`);
    });
    row.lb = { p50: median(times), p99: pct99(times), runs: times.length };
    row.applier = { p50: median(applier), p99: pct99(applier) };
    row.delta = median(delta);
    dp.close();
    made.lbs.splice(made.lbs.indexOf(dp), 1);
    SockLb.remove(pinDir);

    // What every change cost before this branch: the desired state of every Service, and a full walk of it.
    const fullPins = join(made.bpffs, `change-full-${n}`);
    mkdirSync(fullPins);
    made.pinDirs.push(fullPins);
    const lb = SockLb.open({ pinDir: fullPins, cgroupDir: fullCg });
    made.lbs.push(lb);
    const walker = new SockLbApplier(lb.maps, { services: new StableIds(undefined, [1, 65535]), backends: new StableIds(undefined, [1, 2 ** 30]) });
    walker.apply(desiredServices(model, [], { nodeIPs: [], nodeName: NODE }));
    const full = [];
    const fullStart = now();
    for (let c = -1; c < FULL_RUNS && !(c >= 1 && now() - fullStart > BUDGET_MS); c++) {
      const i = Math.floor(rand() * n);
      eps[i] = [...eps[i].slice(1), pod(spare++)];
      slices[i] = slice(i, eps[i]);
      model = modelOf();
      gc({ type: 'minor' });
      t0 = now();
      r = walker.apply(desiredServices(model, [], { nodeIPs: [], nodeName: NODE }));
      if (c >= 0) full.push(ms(t0, now()));
      need(!r.failed && r.upserts >= 1, `${n} services, full walk ${c}: ${JSON.stringify(r).slice(0, 300)}`);
    }
    row.full = { p50: median(full), p99: pct99(full), runs: full.length };
    process.stderr.write(`bench:   full walks done; iptables...\n`);
    lb.close();
    made.lbs.splice(made.lbs.indexOf(lb), 1);
    SockLb.remove(fullPins);

    // kube-proxy: the whole ruleset, then partial syncs of one changed Service each.
    row.ipt = {};
    for (const [b, ins] of Object.entries(ipt)) {
      const { text } = kubeProxyRestore(n, { eps: (i) => eps[i] });
      // Without --noflush the restore replaces the tables whole: the previous size's rules go.
      row.ipt[b] = { load: ins.restore(b, text, { noflush: false, timeout: LOAD_TIMEOUT_MS }) };
      if (row.ipt[b].load === Infinity) {
        // Stopped: a restore is all or nothing, so the previous size's rules are still there; this size goes unmeasured.
        Object.assign(row.ipt[b], { p50: NaN, p99: NaN, runs: 0 });
        continue;
      }
      ins.restore(b, JUMPS);
      process.stderr.write(`bench:   iptables-${b} full load ${f(row.ipt[b].load)} ms; partial syncs...\n`);
      const t = [];
      let rules = 0;
      const iptStart = now();
      for (let c = 0; c < RESTORE_RUNS && !(c >= 1 && now() - iptStart > BUDGET_MS); c++) {
        const i = Math.floor(rand() * n);
        const old = eps[i][0];
        eps[i] = [...eps[i].slice(1), pod(spare++)];
        const info = kubeProxyRestore(n, { eps: (k) => eps[k], partial: true, changed: { svc: i }, gone: [sepChain(i, old)] });
        rules = info.natRules;
        t.push(ins.restore(b, info.text));
        if (t.at(-1) === Infinity) break;
      }
      Object.assign(row.ipt[b], { p50: median(t), p99: pct99(t), runs: t.length, rules });
      // The partial syncs left exactly one SVC chain per Service and one SEP chain per endpoint.
      const saved = ins.run(`iptables-${b}-save`, ['-t', 'nat']);
      const count = (re) => (saved.match(re) ?? []).length;
      need(count(/^:KUBE-SVC-/gm) === n && count(/^:KUBE-SEP-/gm) === n * EPS, `iptables-${b} at ${n}: the partial syncs left ${count(/^:KUBE-SVC-/gm)} SVC and ${count(/^:KUBE-SEP-/gm)} SEP chains`);
    }
    rows.push(row);
  }

  const ratio = (a, b) => (a === Infinity ? `>${(RESTORE_TIMEOUT_MS / b).toFixed(0)}` : (a / b).toFixed(0));
  console.log(`\none Service change (its oldest endpoint replaced by a new pod IP), milliseconds per change; ${EPS} endpoints per Service`);
  console.log('  sluice = ServiceDatapath.apply(new model): the model delta (Model.changesSince), the changed Service\'s frontends, BPF map writes (as the agent applies a new model)');
  console.log('  before = what each change cost before this branch: desiredServices() of every Service and SockLbApplier.apply() walking every frontend');
  console.log('  kube-proxy = iptables-restore -w 5 --noflush --counters of a partial sync (KUBE-SERVICES whole, the changed Service\'s SVC/SEP chains, -X of the gone SEP chain), in its own netns');
  const bcols = changeBackends.map((b) => `${lpad(`ipt-${b} p50`, 14)} ${lpad('p99', 8)} ${lpad(`ipt/sluice p50`, 15)}`).join(' ');
  console.log(
    `${lpad('services', 9)} ${lpad('sluice p50', 11)} ${lpad('p99', 7)} ${lpad('delta p50', 10)} ${lpad('applier p50', 12)} ${lpad('p99', 7)} ${lpad('before p50', 11)} ${lpad('before/sluice', 14)} ${bcols}`,
  );
  for (const r of rows)
    console.log(
      `${lpad(r.n, 9)} ${lpad(r.lb.p50.toFixed(3), 11)} ${lpad(r.lb.p99.toFixed(3), 7)} ${lpad(r.delta.toFixed(3), 10)} ${lpad(r.applier.p50.toFixed(3), 12)} ${lpad(r.applier.p99.toFixed(3), 7)} ${lpad(f(r.full.p50, 2), 11)} ${lpad((r.full.p50 / r.lb.p50).toFixed(0), 14)} ${changeBackends
        .map((b) => `${lpad(r.ipt[b].runs === 0 ? `load >${LOAD_TIMEOUT_MS / 1000}s` : r.ipt[b].p50 === Infinity ? `>${RESTORE_TIMEOUT_MS / 1000}s` : f(r.ipt[b].p50, 2), 14)} ${lpad(r.ipt[b].runs === 0 || r.ipt[b].p99 === Infinity ? '-' : f(r.ipt[b].p99, 2), 8)} ${lpad(r.ipt[b].runs === 0 ? '-' : ratio(r.ipt[b].p50, r.lb.p50), 15)}`)
        .join(' ')}`,
    );
  console.log(
    `  runs (after ${WARM} untimed for sluice, 1 for before; each loop stops at --change-runs ${RUNS} / --full-runs ${FULL_RUNS} / --restore-runs ${RESTORE_RUNS} or after --cell-seconds past a minimum): ${rows
      .map((r) => `${r.n}: ${r.lb.runs}/${r.full.runs}/${changeBackends.map((b) => r.ipt[b].runs).join('/')}`)
      .join(', ')}`,
  );
  console.log('  delta = Model.changesSince(previous model), inside the sluice column; applier = sluice minus delta (finding the changed Services, their frontends, map writes)');
  for (const [what, pick] of [
    ['sluice', (r) => r.lb.p50],
    ['applier', (r) => r.applier.p50],
  ]) {
    const lo = Math.min(...rows.map(pick));
    const hi = Math.max(...rows.map(pick));
    console.log(`  ${what} p50 from ${rows[0].n} to ${rows.at(-1).n} Services: ${lo.toFixed(3)}-${hi.toFixed(3)} ms, ${(hi / lo).toFixed(2)}x apart (${hi / lo <= 2 ? 'flat within 2x' : 'NOT flat within 2x'})`);
  }
  console.log('\n  loading all Services (one run each), ms');
  for (const r of rows)
    console.log(
      `${lpad(r.n, 9)}  sluice first apply ${lpad(f(r.loadLb), 8)}   ${changeBackends.map((b) => `iptables-${b}-restore (full) ${lpad(r.ipt[b].load === Infinity ? `>${LOAD_TIMEOUT_MS / 1000} s, stopped (--load-timeout)` : f(r.ipt[b].load), 8)}`).join('   ')}`,
    );
}
console.log(`\nelapsed: ${((now() - started) / 1000).toFixed(0)} s`);
cleanup();
const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`sluice-bench-${id}`));
need(left.length === 0, `netns left behind: ${left.join(', ')}`);
