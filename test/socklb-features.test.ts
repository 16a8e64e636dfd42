// Socket LB features on the real kernel, each in its own test netns, cgroup
// and bpffs (test/helpers/netns.ts): Maglev, NodePort/LoadBalancer/externalIPs
// reached from the node itself, the L7 redirect from a pod to the node proxy
// address, dual stack, refusing Services without backends, traffic policies.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StableIds } from '../src/ids/stable-ids.js';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';
import { SockLbApplier } from '../src/redirect/apply.js';
import { SockLb } from '../src/redirect/datapath.js';
import { desiredServices, LB_ALGORITHM_ANNOTATION, maglevTable } from '../src/redirect/desired.js';
import { MAGLEV_M } from '../src/redirect/maps.js';
import type { ServiceRedirect } from '../src/translate/output.js';
import { service } from './helpers/kube.js';
import { netnsWorld } from './helpers/netns.js';
import { addProxyAddresses, DEFAULT_PROXY_ADDRESSES as PROXY } from '../src/redirect/proxy-address.js';

interface SlicePort {
  name: string;
  port: number;
  protocol?: 'TCP' | 'UDP';
}

function slice(svc: string, ports: SlicePort[], ips: string[], family: 'IPv4' | 'IPv6' = 'IPv4'): object {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${svc}-${family.toLowerCase()}`, namespace: 'default', labels: { 'kubernetes.io/service-name': svc } },
    addressType: family,
    ports: ports.map((p) => ({ protocol: 'TCP', ...p })),
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
  };
}

const model = (objs: object[]) => Model.from(objs.map((object) => ({ object: object as ModelObject })));

/** A test world with the socket LB attached to its cgroup and an applier for models. */
async function datapath(t: Parameters<typeof netnsWorld>[0], addresses: string[]) {
  const w = await netnsWorld(t, addresses);
  const state = mkdtempSync(join(tmpdir(), 'sluice-ids-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const ids = { services: new StableIds(join(state, 'svc-ids.json'), [1, 65535]), backends: new StableIds(join(state, 'backend-ids.json'), [1, 1 << 30]) };
  t.teardown(() => SockLb.remove(w.pinDir));
  const lb = SockLb.open({ pinDir: w.pinDir, cgroupDir: w.cgroupDir });
  t.teardown(() => lb.close());
  const applier = new SockLbApplier(lb.maps, ids);
  const desired = (objs: object[], redirects: ServiceRedirect[] = [], nodeIPs: string[] = [], nodeName?: string) => desiredServices(model(objs), redirects, { nodeIPs, nodeName });
  return {
    w,
    lb,
    desired,
    apply: (objs: object[], redirects: ServiceRedirect[] = [], nodeIPs: string[] = [], nodeName?: string) => applier.apply(desired(objs, redirects, nodeIPs, nodeName)),
  };
}

const backendsOf = (res: any[]) => res.map((r) => r.backend ?? `error: ${r.error}`);

t.test('Maglev: a client namespace keeps one backend; removing a backend remaps only what the table moves', async (t) => {
  const MG = ['10.244.2.1', '10.244.2.2', '10.244.2.3', '10.244.2.4'];
  const name = (ip: string) => `m${MG.indexOf(ip) + 1}`;
  const { w, lb, desired, apply } = await datapath(t, MG);
  await w.servers({ tcp: MG.map((ip) => ({ ip, port: 8080, name: name(ip) })) });
  const objs = (ips: string[], maglev = true) => {
    const s = service('mg', [{ port: 80, name: 'p' }], { clusterIP: '10.96.0.20' }) as any;
    if (maglev) s.metadata.annotations = { [LB_ALGORITHM_ANNOTATION]: 'maglev' };
    return [s, slice('mg', [{ name: 'p', port: 8080 }], ips)];
  };
  // What bpf/sock_lb.c computes: the client's netns cookie, times the golden-ratio
  // constant (mod 2^64), top 32 bits, mod MAGLEV_M: an index into the service's table.
  const slot = (cookie: bigint) => Number(((cookie * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn) >> 32n) % MAGLEV_M;
  const tableOf = (ips: string[]) => {
    const [d] = desired(objs(ips)); // the backend order the applier writes the table in
    t.ok(d.maglev, 'the annotation selects Maglev');
    return maglevTable(d.backends.map((b) => `${b.ip}:${b.port}`), MAGLEV_M).map((i) => name(d.backends[i].ip));
  };

  apply(objs(MG));
  t.equal(lb.maps.maglev.entries().length, MAGLEV_M, 'one lookup table of MAGLEV_M entries');
  const clients = [w, ...Array.from({ length: 8 }, () => w.peer())];
  const cookies = clients.map((c) => c.netnsCookie());
  t.equal(new Set(cookies).size, clients.length, 'every client namespace has its own cookie');
  const observe = () => clients.map((c) => backendsOf(c.client([{ op: 'tcp', host: '10.96.0.20', port: 80, count: 6 }])[0]));

  const table1 = tableOf(MG);
  const before = observe();
  before.forEach((got, k) => t.equal(new Set(got).size, 1, `client ${k}: 6 connects from 6 source ports, one backend (${got})`));
  t.same(
    before.map((got) => got[0]),
    cookies.map((c) => table1[slot(c)]),
    'each client is on the backend its netns cookie selects in the Maglev table',
  );
  t.ok(new Set(before.map((got) => got[0])).size >= 2, `clients spread over backends: ${before.map((got) => got[0])}`);

  // Remove the backend client 0 is on, so at least one client has to move.
  const victim = before[0][0];
  const rest = MG.filter((ip) => name(ip) !== victim);
  const stats = apply(objs(rest));
  t.ok(stats.deletes >= 2, `the backend and its slot were deleted (${JSON.stringify(stats)})`);
  const table2 = tableOf(rest);
  const survivorSlots = table1.flatMap((b, i) => (b === victim ? [] : [i]));
  const movedSlots = survivorSlots.filter((i) => table2[i] !== table1[i]);
  t.ok(movedSlots.length <= survivorSlots.length * 0.05, `Maglev moves few of the survivors' slots (${movedSlots.length} of ${survivorSlots.length})`);
  t.notOk(table2.includes(victim), 'the removed backend is gone from the table');

  const after = observe();
  t.same(
    after.map((got) => got[0]),
    cookies.map((c) => table2[slot(c)]),
    'after the removal each client is on the backend the new table gives it',
  );
  after.forEach((got, k) => {
    t.equal(new Set(got).size, 1, `client ${k} still on one backend (${got})`);
    if (before[k][0] === victim) t.not(got[0], victim, `client ${k} was on the removed backend and moved to ${got[0]}`);
    else if (!movedSlots.includes(slot(cookies[k]))) t.equal(got[0], before[k][0], `client ${k} was on a surviving backend and stayed there`);
  });

  // Control: without the annotation the same client spreads at random, and the table is deleted.
  apply(objs(rest, false));
  t.equal(lb.maps.maglev.entries().length, 0, 'turning Maglev off deletes its table');
  const [random] = w.client([{ op: 'tcp', host: '10.96.0.20', port: 80, count: 30 }]);
  t.ok(new Set(backendsOf(random)).size >= 2, `without Maglev one client reaches several backends: ${[...new Set(backendsOf(random))]}`);
});

t.test('NodePort, LoadBalancer and externalIPs reached from the node itself', async (t) => {
  const NP = ['10.244.3.1', '10.244.3.2'];
  const NODE_IP = '192.168.50.2'; // an address of the node (the test namespace)
  const { w, apply } = await datapath(t, [...NP, NODE_IP]);
  await w.servers({ tcp: NP.map((ip, i) => ({ ip, port: 8080, name: `n${i + 1}` })) });
  const np = service('np', [{ port: 80, name: 'p' }], { clusterIP: '10.96.0.30' }) as any;
  np.spec.type = 'NodePort';
  np.spec.ports[0].nodePort = 30080;
  np.spec.externalIPs = ['203.0.113.7'];
  const lbs = service('lbs', [{ port: 80, name: 'p' }], { clusterIP: '10.96.0.31' }) as any;
  lbs.spec.type = 'LoadBalancer';
  lbs.spec.ports[0].nodePort = 30090;
  // A ClusterIP Service carrying a nodePort (left over from a type change) must not open it.
  const cip = service('cip', [{ port: 80, name: 'p' }], { clusterIP: '10.96.0.32' }) as any;
  cip.spec.ports[0].nodePort = 30070;
  const objs = [np, lbs, cip, ...['np', 'lbs', 'cip'].map((s) => slice(s, [{ name: 'p', port: 8080 }], NP))];

  const plan = [
    { op: 'tcp', host: '127.0.0.1', port: 30080, count: 20 },
    { op: 'tcp', host: NODE_IP, port: 30080, count: 20 },
    { op: 'tcp', host: '203.0.113.7', port: 80, count: 20 },
    { op: 'tcp', host: '127.0.0.1', port: 30090, count: 10 },
    { op: 'tcp', host: NODE_IP, port: 30070, count: 1 },
  ];
  const unbalanced = w.client(plan);
  t.ok(
    unbalanced.every((res) => res.every((r: any) => r.error)),
    'before the datapath has the Services nothing answers on those addresses (no listener, no route to the externalIP)',
  );

  apply(objs, [], [NODE_IP]);
  const [lo, node, ext, lbPort, cipPort] = w.client(plan);
  const check = (res: any[], host: string, port: number, what: string) => {
    t.same([...new Set(backendsOf(res))].sort(), ['n1', 'n2'], `${what} reaches both backends`);
    t.ok(
      res.every((r) => r.peer?.address === host && r.peer?.port === port),
      `${what}: getpeername shows ${host}:${port}`,
    );
  };
  check(lo, '127.0.0.1', 30080, '127.0.0.1:nodePort');
  check(node, NODE_IP, 30080, 'nodeIP:nodePort');
  check(ext, '203.0.113.7', 80, 'externalIP:port');
  check(lbPort, '127.0.0.1', 30090, 'a LoadBalancer Service at 127.0.0.1:nodePort');
  t.match(cipPort[0].error, /ECONNREFUSED/, "a ClusterIP Service's stray nodePort is not opened");
});

t.test("L7 redirect: a pod's TCP to the VIP goes to the node proxy address, UDP of the same Service to its backends", async (t) => {
  const B = '10.244.4.1';
  const { w, lb, apply } = await datapath(t, [B]);
  // The "node" netns holds the proxy (on the proxy addresses, as Envoy) and the backend; the client is a pod.
  t.same(addProxyAddresses(PROXY, (args) => void w.sh('ip', args)), []);
  lb.setProxyAddresses(PROXY.v4, PROXY.v6);
  const pod = w.peer();
  await w.servers({
    tcp: [
      { ip: PROXY.v4, port: 13080, name: 'proxy' },
      { ip: PROXY.v6, port: 13080, name: 'proxy6' },
      { ip: B, port: 8080, name: 'web' },
      { ip: B, port: 8081, name: 'admin' },
    ],
    udp: [{ ip: B, port: 5353, name: 'dns' }],
  });
  const l7 = service(
    'l7',
    [
      { port: 80, name: 'http' },
      { port: 81, name: 'admin' },
    ],
    { clusterIP: '10.96.0.40' },
  ) as any;
  l7.spec.ports.push({ port: 53, name: 'dns', protocol: 'UDP' });
  const l7v6 = service('l7v6', [{ port: 80, name: 'http' }], { clusterIP: 'fd00:96::40' }) as any;
  l7v6.spec.ipFamilies = ['IPv6'];
  const objs = [
    l7,
    l7v6,
    slice(
      'l7',
      [
        { name: 'http', port: 8080 },
        { name: 'admin', port: 8081 },
        { name: 'dns', port: 5353, protocol: 'UDP' },
      ],
      [B],
    ),
  ];
  const redirect = (service: string, port?: number): ServiceRedirect => ({ service, port, listener: `default/cec/${service}`, proxyPort: 13080 });
  const plan = [
    { op: 'tcp', host: '10.96.0.40', port: 80, count: 10 },
    { op: 'tcp', host: '10.96.0.40', port: 81, count: 5 },
    { op: 'udp', host: '10.96.0.40', port: 53, count: 3 },
    { op: 'tcp', host: 'fd00:96::40', port: 80, count: 5 },
  ];

  apply(objs);
  const [http0, admin0, dns0] = pod.client(plan.slice(0, 3));
  t.same(backendsOf(http0), Array(10).fill('web'), 'without a redirect the VIP reaches its backend');
  t.same(backendsOf(admin0), Array(5).fill('admin'));
  t.same(backendsOf(dns0), Array(3).fill('dns'));

  apply(objs, [redirect('default/l7', 80), redirect('default/l7v6')]);
  const [http, admin, dns, http6] = pod.client(plan);
  t.same(backendsOf(http), Array(10).fill('proxy'), `TCP to the redirected port goes to the proxy on ${PROXY.v4}:13080 in the node netns`);
  t.ok(
    http.every((r: any) => r.peer?.address === '10.96.0.40' && r.peer?.port === 80),
    'the application still sees the VIP as its peer',
  );
  t.same(backendsOf(admin), Array(5).fill('admin'), 'a port the redirect does not name still goes to its backend');
  t.same(
    dns.map((r: any) => [r.backend, r.from?.address, r.from?.port]),
    Array(3).fill(['dns', '10.96.0.40', 53]),
    'UDP of the same Service goes to its backend, replies from the VIP',
  );
  t.same(backendsOf(http6), Array(5).fill('proxy6'), `IPv6: TCP to the redirected VIP goes to the proxy on [${PROXY.v6}]:13080`);
  t.ok(
    http6.every((r: any) => r.peer?.address === 'fd00:96::40'),
    'IPv6: the peer is still the VIP',
  );

  apply(objs, [redirect('default/l7')]);
  const [httpAll, adminAll, dnsAll, http6Off] = pod.client(plan);
  t.same(backendsOf(httpAll), Array(10).fill('proxy'), 'a redirect of every port takes port 80...');
  t.same(backendsOf(adminAll), Array(5).fill('proxy'), '...and port 81');
  t.same(backendsOf(dnsAll), Array(3).fill('dns'), 'but never UDP');
  t.same(
    http6Off.map((r: any) => r.code),
    Array(5).fill('ECONNREFUSED'),
    'the IPv6 Service without a redirect or endpoints is refused, not steered to the proxy',
  );

  apply(objs);
  const [httpOff] = pod.client(plan.slice(0, 1));
  t.same(backendsOf(httpOff), Array(10).fill('web'), 'removing the redirect sends the VIP back to its backend');
});

t.test('dual stack: v4-mapped IPv6 is load balanced; v4 and v6 frontends keep their own Maglev tables and affinity', async (t) => {
  const B4 = ['10.244.6.1', '10.244.6.2', '10.244.6.3'];
  const B6 = ['fd00:244::6:1', 'fd00:244::6:2', 'fd00:244::6:3'];
  const { w, lb, desired, apply } = await datapath(t, [...B4, ...B6]);
  const pod = w.peer();
  await w.servers({
    tcp: [...B4.map((ip, i) => ({ ip, port: 8080, name: `v4-${i + 1}` })), ...B6.map((ip, i) => ({ ip, port: 8080, name: `v6-${i + 1}` }))],
    udp: [{ ip: B4[0], port: 5353, name: 'u4' }],
  });
  const dual = (name: string, v4: string, v6: string, opts: { maglev?: boolean; affinity?: boolean } = {}) => {
    const s = service(name, [{ port: 80, name: 'p' }], { clusterIP: v4 }) as any;
    s.spec.clusterIPs = [v4, v6];
    s.spec.ipFamilies = ['IPv4', 'IPv6'];
    if (opts.maglev) s.metadata.annotations = { [LB_ALGORITHM_ANNOTATION]: 'maglev' };
    if (opts.affinity) s.spec.sessionAffinity = 'ClientIP';
    return [s, { ...slice(name, [{ name: 'p', port: 8080 }], B4), metadata: { name: `${name}-v4`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } } }, { ...slice(name, [{ name: 'p', port: 8080 }], B6, 'IPv6'), metadata: { name: `${name}-v6`, namespace: 'default', labels: { 'kubernetes.io/service-name': name } } }];
  };
  const dns = service('dns4', [{ port: 53, name: 'd', protocol: 'UDP' } as any], { clusterIP: '10.96.0.63' });
  const objs = [...dual('mg', '10.96.0.60', 'fd00:96::60', { maglev: true }), ...dual('aff', '10.96.0.61', 'fd00:96::61', { affinity: true }), dns, slice('dns4', [{ name: 'd', port: 5353, protocol: 'UDP' }], [B4[0]])];

  const d = desired(objs);
  const keys = (svc: string) => d.filter((x) => x.serviceKey.startsWith(`default/${svc}:`)).map((x) => [x.frontend.vip, x.serviceKey]);
  t.same(keys('mg'), [['10.96.0.60', 'default/mg:80/TCP/v4'], ['fd00:96::60', 'default/mg:80/TCP/v6']], "a Service's v4 and v6 frontends have their own rev-NAT identity");
  apply(objs);
  t.equal(lb.maps.maglev.entries().length, 2 * MAGLEV_M, 'two Maglev tables, one a family');

  const [mg4, mg6, mapped, mappedUdp, aff4, aff6] = pod.client([
    { op: 'tcp', host: '10.96.0.60', port: 80, count: 5 },
    { op: 'tcp', host: 'fd00:96::60', port: 80, count: 5 },
    { op: 'tcp', host: '::ffff:10.96.0.60', port: 80, count: 5 },
    { op: 'udp6', host: '::ffff:10.96.0.63', port: 53, count: 3 },
    { op: 'tcp', host: '10.96.0.61', port: 80, count: 5 },
    { op: 'tcp', host: 'fd00:96::61', port: 80, count: 5 },
  ]);
  t.ok(backendsOf(mg4).every((b) => /^v4-/.test(b)) && new Set(backendsOf(mg4)).size === 1, `Maglev over IPv4: one v4 backend (${backendsOf(mg4)})`);
  t.ok(backendsOf(mg6).every((b) => /^v6-/.test(b)) && new Set(backendsOf(mg6)).size === 1, `Maglev over IPv6: one v6 backend (${backendsOf(mg6)})`);
  t.same(backendsOf(mapped), backendsOf(mg4), 'a v4-mapped connect on an IPv6 socket is the IPv4 Service: the same Maglev backend');
  t.ok(mapped.every((r: any) => r.peer?.address === '::ffff:10.96.0.60' && r.peer?.port === 80), 'getpeername on the IPv6 socket shows the v4-mapped VIP');
  t.same(
    mappedUdp.map((r: any) => [r.backend ?? r.error, r.from?.address, r.from?.port]),
    Array(3).fill(['u4', '::ffff:10.96.0.63', 53]),
    'UDP from a dual-stack socket to a v4-mapped VIP reaches the backend; replies come from the mapped VIP',
  );
  t.ok(backendsOf(aff4).every((b) => b === backendsOf(aff4)[0] && /^v4-/.test(b)), `affinity over IPv4 holds one v4 backend (${backendsOf(aff4)})`);
  t.ok(backendsOf(aff6).every((b) => b === backendsOf(aff6)[0] && /^v6-/.test(b)), `affinity over IPv6, after IPv4 from the same pod, holds one v6 backend (${backendsOf(aff6)})`);
});

t.test('a Service with no backends refuses connections (ECONNREFUSED), as kube-proxy does', async (t) => {
  const { w, apply } = await datapath(t, []);
  const pod = w.peer();
  const empty = service('empty', [{ port: 80, name: 'p' }], { clusterIP: '10.96.0.70' }) as any;
  const empty6 = service('empty6', [{ port: 80, name: 'p' }], { clusterIP: 'fd00:96::70' }) as any;
  const emptyUdp = service('emptyudp', [{ port: 53, name: 'p', protocol: 'UDP' } as any], { clusterIP: '10.96.0.71' });
  const plan = [
    { op: 'tcp', host: '10.96.0.70', port: 80, count: 3 },
    { op: 'tcp', host: 'fd00:96::70', port: 80, count: 3 },
    { op: 'tcp', host: '::ffff:10.96.0.70', port: 80, count: 3 },
    { op: 'udp', host: '10.96.0.71', port: 53, count: 3 },
  ];
  const [before] = pod.client([{ ...plan[0], count: 1 }]);
  t.ok(before[0].error && before[0].code !== 'ECONNREFUSED', `control: before the Service exists the connect is not refused (${before[0].error})`);
  apply([empty, empty6, emptyUdp]);
  const [v4, v6, mapped, udp] = pod.client(plan);
  t.same(v4.map((r: any) => r.code), Array(3).fill('ECONNREFUSED'), 'IPv4 connect()');
  t.same(v6.map((r: any) => r.code), Array(3).fill('ECONNREFUSED'), 'IPv6 connect()');
  t.same(mapped.map((r: any) => r.code), Array(3).fill('ECONNREFUSED'), 'v4-mapped connect() on an IPv6 socket');
  t.same(udp.map((r: any) => r.code), Array(3).fill('ECONNREFUSED'), 'UDP sendmsg()');
});

t.test('internalTrafficPolicy Local keeps ClusterIP traffic on this node; externalTrafficPolicy gives node traffic every endpoint', async (t) => {
  const LOCAL = '10.244.8.1';
  const REMOTE = '10.244.8.2'; // an endpoint the slice places on another node (served here so a wrong pick is seen)
  const NODE_IP = '192.168.50.8';
  const { w, apply } = await datapath(t, [LOCAL, REMOTE, NODE_IP]);
  const pod = w.peer();
  await w.servers({ tcp: [{ ip: LOCAL, port: 8080, name: 'local' }, { ip: REMOTE, port: 8080, name: 'remote' }] });
  const svc = (name: string, clusterIP: string, nodePort: number, policy: { internal?: 'Local'; external?: 'Local' }) => {
    const s = service(name, [{ port: 80, name: 'p' }], { clusterIP }) as any;
    s.spec.type = 'NodePort';
    s.spec.ports[0].nodePort = nodePort;
    if (policy.internal) s.spec.internalTrafficPolicy = policy.internal;
    if (policy.external) s.spec.externalTrafficPolicy = policy.external;
    return s;
  };
  const placed = (name: string, eps: [string, string][]) => ({
    ...slice(name, [{ name: 'p', port: 8080 }], []),
    endpoints: eps.map(([ip, nodeName]) => ({ addresses: [ip], conditions: { ready: true }, nodeName })),
  });
  const objs = [
    svc('itp', '10.96.0.80', 30180, { internal: 'Local' }),
    placed('itp', [[LOCAL, 'this-node'], [REMOTE, 'other-node']]),
    svc('etp', '10.96.0.81', 30181, { external: 'Local' }),
    placed('etp', [[LOCAL, 'this-node'], [REMOTE, 'other-node']]),
    svc('away', '10.96.0.82', 30182, { internal: 'Local', external: 'Local' }),
    placed('away', [[REMOTE, 'other-node']]),
    svc('plain', '10.96.0.83', 30183, {}),
    placed('plain', [[LOCAL, 'this-node'], [REMOTE, 'other-node']]),
  ];
  const d = desiredServices(model(objs), [], { nodeIPs: [NODE_IP], nodeName: 'this-node' });
  const keyOf = (vip: string, port: number) => d.find((x) => x.frontend.vip === vip && x.frontend.port === port)?.serviceKey;
  t.equal(keyOf('10.96.0.80', 80), 'default/itp:80/TCP/v4/local', 'a node-local backend set has its own rev-NAT id...');
  t.equal(keyOf(NODE_IP, 30180), 'default/itp:80/TCP/v4', '...apart from the same port picking from every endpoint');
  apply(objs, [], [NODE_IP], 'this-node');
  const [itp, itpNode, etp, etpNode, away, awayNode, plain] = pod.client([
    { op: 'tcp', host: '10.96.0.80', port: 80, count: 20 },
    { op: 'tcp', host: NODE_IP, port: 30180, count: 20 },
    { op: 'tcp', host: '10.96.0.81', port: 80, count: 20 },
    { op: 'tcp', host: NODE_IP, port: 30181, count: 20 },
    { op: 'tcp', host: '10.96.0.82', port: 80, count: 3 },
    { op: 'tcp', host: NODE_IP, port: 30182, count: 20 },
    { op: 'tcp', host: '10.96.0.83', port: 80, count: 20 },
  ]);
  const spread = (res: any[]) => [...new Set(backendsOf(res))].sort();
  t.same(spread(itp), ['local'], 'internalTrafficPolicy Local: the ClusterIP uses only this node\'s endpoint');
  t.same(spread(itpNode), ['local', 'remote'], '...its NodePort, reached from the node, every endpoint');
  t.same(spread(etp), ['local', 'remote'], 'externalTrafficPolicy Local: the ClusterIP uses every endpoint');
  t.same(spread(etpNode), ['local', 'remote'], "...and so does its NodePort from the node's own pods, as kube-proxy does");
  t.same(away.map((r: any) => r.code), Array(3).fill('ECONNREFUSED'), 'internalTrafficPolicy Local with no endpoint on this node: refused');
  t.same(spread(awayNode), ['remote'], '...while its NodePort from the node still reaches the remote endpoint');
  t.same(spread(plain), ['local', 'remote'], 'control: no policy, every endpoint');
});
