// The reconciler's write order, checked after every single map operation: maps
// in memory stand in for the kernel's, and a model of bpf/policy.c's lookups
// judges probe packets. Whatever both the old and the new state decide for a
// probe must hold at every step of the change (so nothing both deny passes and
// nothing both allow drops), a failed write leaves a state that still obeys
// this, and a later apply converges. The kernel itself is exercised by
// policy-datapath.test.ts; this covers the orders a live test cannot catch.
import t from 'tap';
import { ReservedIdentity, type PolicyDatapathState, type PolicyEntry } from '../src/policy/datapath-state.js';
import { MapWriteError } from '../src/redirect/bpf.js';
import { PolicyReconciler } from '../src/redirect/policy-datapath.js';
import { decodeEndpointVal, endpointKey, ipcacheKey, policyKey } from '../src/redirect/policy-maps.js';
import type { PolicyMaps } from '../src/redirect/policy-object.js';

class FakeMap {
  readonly data = new Map<string, Buffer>();
  /** Throw on the write with this number (counted across all maps by the shared counter). */
  constructor(
    readonly name: string,
    private readonly ops: { n: number; failAt: number; after: () => void },
  ) {}
  private step(): void {
    this.ops.n++;
    if (this.ops.n === this.ops.failAt) throw new Error('injected failure');
  }
  update(k: Buffer, v: Buffer): void {
    this.step();
    this.data.set(k.toString('hex'), Buffer.from(v));
    this.ops.after();
  }
  updateMany(entries: [Buffer, Buffer][]): void {
    entries.forEach(([k, v], i) => {
      try {
        this.update(k, v);
      } catch (e) {
        throw new MapWriteError(this.name, i, e as Error);
      }
    });
  }
  delete(k: Buffer): boolean {
    this.step();
    const had = this.data.delete(k.toString('hex'));
    this.ops.after();
    return had;
  }
  lookup(k: Buffer): Buffer | null {
    return this.data.get(k.toString('hex')) ?? null;
  }
  keys(): Buffer[] {
    return [...this.data.keys()].map((k) => Buffer.from(k, 'hex'));
  }
  entries(): [Buffer, Buffer][] {
    return [...this.data].map(([k, v]) => [Buffer.from(k, 'hex'), v]);
  }
}

function fakeMaps(ops: { n: number; failAt: number; after: () => void }) {
  const m = (name: string) => new FakeMap(name, ops);
  const maps = { ipcache: m('ipcache'), endpoints: m('endpoints'), policy: m('policy'), ct: m('ct'), drops: m('drops'), tpcfg: m('tpcfg'), polgen: m('polgen'), mesh: m('mesh'), close() {} };
  return maps;
}

/** Longest-prefix match as the kernel's LPM trie does it. */
function lpm(map: FakeMap, key: Buffer): Buffer | undefined {
  let best: { len: number; v: Buffer } | undefined;
  for (const [hex, v] of map.data) {
    const k = Buffer.from(hex, 'hex');
    const len = k.readUInt32LE(0);
    let match = true;
    for (let bit = 0; bit < len && match; bit++) {
      const byte = 4 + (bit >> 3);
      const mask = 0x80 >> (bit & 7);
      match = (k[byte] & mask) === (key[byte] & mask);
    }
    if (match && (!best || len > best.len)) best = { len, v };
  }
  return best?.v;
}

interface Probe {
  ep: string;
  dir: 'ingress' | 'egress';
  peer: string;
  proto: number;
  port: number;
}

const VERDICT = ['none', 'allow', 'deny', 'redirect'];

/** What sluice_tc_ingress decides for a new flow of the probe, from the maps alone. */
function judge(maps: ReturnType<typeof fakeMaps>, p: Probe): string {
  const set = maps.polgen.lookup(Buffer.alloc(4))?.readUInt32LE(0) ?? 0;
  const ev = maps.endpoints.lookup(endpointKey(p.ep, set));
  if (!ev) return 'allow';
  const ep = decodeEndpointVal(ev);
  const idv = lpm(maps.ipcache, ipcacheKey(p.peer, set));
  const identity = idv ? idv.readUInt32LE(0) : ReservedIdentity.World;
  const look = (id: number) => {
    const v = lpm(maps.policy, policyKey({ endpoint: ep.id, direction: p.dir, identity: id, proto: p.proto, port: p.port, portPrefixLen: 16 }, set));
    return v ? VERDICT[v[0]] : 'none';
  };
  const [a, b] = [look(identity), look(0)];
  if (a === 'deny' || b === 'deny') return 'deny';
  if (a === 'redirect' || b === 'redirect') return 'redirect';
  const verdict = a === 'allow' || b === 'allow' ? 'allow' : ep.flags & (p.dir === 'ingress' ? 1 : 2) ? 'deny' : 'allow';
  // A meshed endpoint's allowed TCP to a meshed pod elsewhere goes to the outbound listener.
  const mesh = lpm(maps.mesh, ipcacheKey(p.peer, set));
  if (verdict === 'allow' && p.dir === 'egress' && ep.flags & 4 && p.proto === 6 && mesh) return `mesh:${mesh.readUInt32LE(0)}`;
  return verdict;
}

const IPS = { x: '10.244.0.11', y: '10.244.0.12', s: '10.244.0.13', u: '10.244.0.14', far: '192.0.2.10', other: '10.244.9.9' };
const IDS = { x: 256, y: 257, s: 258, u: 259, net: 1 << 24 };
const EPN = { x: 1, y: 2, s: 3, u: 4 };
const e = (endpoint: number, direction: 'ingress' | 'egress', identity: number, proto: number, port: number, verdict: PolicyEntry['verdict'], portPrefixLen = proto ? 16 : 0): PolicyEntry => ({
  endpoint,
  direction,
  identity,
  proto,
  port,
  portPrefixLen,
  verdict,
  proxyPort: verdict === 'redirect' ? 15001 : undefined,
});

function state(enforce: Record<string, string[]>, entries: PolicyEntry[], opts: { without?: string[]; extraIpcache?: boolean; moved?: boolean; meshed?: string[]; meshDestinations?: string[] } = {}): PolicyDatapathState {
  const pods = (['x', 'y', 's', 'u'] as const).filter((p) => !opts.without?.includes(p));
  return {
    ipcache: [
      { prefix: '0.0.0.0/0', identity: ReservedIdentity.World },
      { prefix: '192.0.2.0/24', identity: IDS.net },
      ...pods.map((p) => ({ prefix: `${IPS[p]}/32`, identity: p === 'y' && opts.moved ? IDS.x : IDS[p] })),
      ...(opts.extraIpcache ? [{ prefix: '10.244.9.0/24', identity: IDS.y }] : []),
    ],
    endpoints: pods.map((p) => ({
      pod: `default/${p}`,
      ip: IPS[p],
      endpoint: EPN[p],
      identity: IDS[p],
      ingressEnforced: enforce[p]?.includes('ingress') ?? false,
      egressEnforced: enforce[p]?.includes('egress') ?? false,
      ...(opts.meshed?.includes(p) ? { meshed: true } : {}),
    })),
    ...(opts.meshDestinations ? { meshDestinations: opts.meshDestinations.map((prefix) => ({ prefix, proxyPort: 15001 })) } : {}),
    entries,
  };
}

const STATES: Record<string, PolicyDatapathState> = {
  open: state({}, []),
  allowX80: state({ s: ['ingress'] }, [e(3, 'ingress', IDS.x, 6, 80, 'allow')]),
  allowXY: state({ s: ['ingress'] }, [e(3, 'ingress', IDS.x, 6, 80, 'allow'), e(3, 'ingress', IDS.y, 6, 8080, 'allow'), e(3, 'ingress', IDS.u, 0, 0, 'deny')]),
  denyOnly: state({}, [e(3, 'ingress', IDS.y, 6, 8080, 'deny'), e(1, 'egress', IDS.net, 0, 0, 'deny')]),
  anyButY: state({ s: ['ingress', 'egress'] }, [e(3, 'ingress', 0, 6, 80, 'allow'), e(3, 'ingress', IDS.y, 6, 80, 'deny')], { extraIpcache: true }),
  redirect: state({ s: ['ingress'], x: ['egress'] }, [e(3, 'ingress', IDS.x, 6, 80, 'redirect'), e(1, 'egress', IDS.s, 6, 80, 'allow')]),
  range: state({ s: ['ingress'] }, [e(3, 'ingress', IDS.x, 6, 0, 'allow', 6), e(3, 'ingress', IDS.x, 6, 80, 'deny'), e(3, 'ingress', IDS.y, 6, 8080, 'allow')]),
  noS: state({ x: ['egress'] }, [e(1, 'egress', 0, 6, 80, 'allow')], { without: ['s'] }),
  moved: state({ s: ['ingress'] }, [e(3, 'ingress', IDS.x, 6, 80, 'allow')], { moved: true }),
  meshed: state({ s: ['ingress'] }, [e(3, 'ingress', IDS.x, 6, 80, 'allow')], { meshed: ['x', 's'], meshDestinations: ['10.244.9.9/32', '192.0.2.0/24'] }),
  meshMoved: state({ x: ['egress'] }, [e(1, 'egress', 0, 6, 80, 'allow')], { meshed: ['x'], meshDestinations: ['10.244.9.9/32'] }),
};

const PROBES: Probe[] = [];
for (const ep of [IPS.s, IPS.x])
  for (const dir of ['ingress', 'egress'] as const)
    for (const peer of [IPS.x, IPS.y, IPS.u, IPS.s, IPS.far, IPS.other])
      for (const [proto, port] of [[6, 80], [6, 8080], [6, 443], [6, 1000], [17, 53]]) PROBES.push({ ep, dir, peer, proto, port });

function judgeAll(maps: ReturnType<typeof fakeMaps>): string[] {
  return PROBES.map((p) => judge(maps, p));
}

/** Applies `from`, then `to`, checking after every operation of the second apply. */
function transition(from: PolicyDatapathState, to: PolicyDatapathState, failAt = 0) {
  const violations: string[] = [];
  let expect: { old: string[]; next: string[] } | undefined;
  const ops = { n: 0, failAt: 0, after: () => {} };
  const maps = fakeMaps(ops);
  const r = new PolicyReconciler(maps as unknown as PolicyMaps, { retryMs: 0 });
  r.apply(from);
  const old = judgeAll(maps);
  const reference = fakeMaps({ n: 0, failAt: 0, after: () => {} });
  new PolicyReconciler(reference as unknown as PolicyMaps, { retryMs: 0 }).apply(to);
  expect = { old, next: judgeAll(reference) };
  ops.n = 0;
  ops.failAt = failAt;
  ops.after = () => {
    const now = judgeAll(maps);
    now.forEach((v, i) => {
      const { old: o, next: n } = expect!;
      if (v !== o[i] && v !== n[i]) violations.push(`op ${ops.n}: ${JSON.stringify(PROBES[i])} is ${v}; old ${o[i]}, new ${n[i]}`);
    });
  };
  const result = r.apply(to);
  const writes = ops.n;
  ops.failAt = 0;
  return { violations, result, writes, maps, r, expect };
}

t.test('every operation of every change keeps each probe at its old or its new verdict', async (t) => {
  let checked = 0;
  for (const [a, from] of Object.entries(STATES))
    for (const [b, to] of Object.entries(STATES)) {
      if (a === b) continue;
      const { violations, result, maps, expect } = transition(from, to);
      t.same(result.errors, [], `${a} -> ${b}: no errors`);
      t.same(violations.slice(0, 3), [], `${a} -> ${b}: no probe left both verdicts`);
      t.same(judgeAll(maps), expect!.next, `${a} -> ${b}: ends at the new verdicts`);
      checked++;
    }
  t.equal(checked, 110);
});

t.test('a write failing at any point leaves old-or-new verdicts, reports it, and the next apply converges', async (t) => {
  for (const [a, b] of [['allowX80', 'allowXY'], ['open', 'redirect'], ['anyButY', 'range'], ['allowXY', 'noS'], ['denyOnly', 'moved'], ['allowX80', 'meshed'], ['meshed', 'meshMoved']]) {
    const { writes } = transition(STATES[a], STATES[b]);
    t.ok(writes > 1, `${a} -> ${b} takes ${writes} operations`);
    for (let failAt = 1; failAt <= writes; failAt++) {
      const { violations, result, maps, r, expect } = transition(STATES[a], STATES[b], failAt);
      t.same(violations.slice(0, 3), [], `${a} -> ${b}, failing at op ${failAt}: no probe left both verdicts`);
      t.ok(result.errors.length > 0, `${a} -> ${b}, failing at op ${failAt}: the failure is reported`);
      r.apply(STATES[b]);
      t.same(judgeAll(maps), expect!.next, `${a} -> ${b}, failing at op ${failAt}: the retry converges`);
    }
  }
});

t.test('adopting maps that already hold the state writes nothing; invalid entries keep the endpoint as it was', async (t) => {
  const { maps } = transition(STATES.open, STATES.allowXY);
  const adopted = new PolicyReconciler(maps as unknown as PolicyMaps, { retryMs: 0 });
  t.same(adopted.apply(STATES.allowXY), { written: 0, deleted: 0, errors: [] });
  const before = judgeAll(maps);
  const bad = structuredClone(STATES.allowX80);
  bad.entries.push({ ...e(3, 'ingress', IDS.y, 6, 80, 'redirect'), proxyPort: undefined, listener: 'l7/default/rule1' });
  const res = adopted.apply(bad);
  t.match(res.errors, [/endpoint 3 .*redirect to listener l7\/default\/rule1 has no proxy port yet/]);
  t.same(judgeAll(maps), before, "endpoint 3 keeps its old policy whole, not the valid half of the new one");
  const fixed = structuredClone(bad);
  fixed.entries[1].proxyPort = 15002;
  t.same(adopted.apply(fixed).errors, []);
  t.equal(judge(maps, { ep: IPS.s, dir: 'ingress', peer: IPS.y, proto: 6, port: 80 }), 'redirect');
});

t.test('a moment after a switch the idle set catches up, so the next change writes only its difference', async (t) => {
  const maps = fakeMaps({ n: 0, failAt: 0, after: () => {} });
  const r = new PolicyReconciler(maps as unknown as PolicyMaps, { retryMs: 0 });
  t.teardown(() => r.close());
  const first = r.apply(STATES.allowXY);
  t.ok(first.written > 10, `the first state is written whole (${first.written} writes)`);
  await new Promise((res) => setTimeout(res, 300));
  const next = structuredClone(STATES.allowXY);
  next.entries.push(e(3, 'ingress', IDS.y, 6, 443, 'allow'));
  t.same(r.apply(next), { written: 2, deleted: 0, errors: [] }, 'one entry into the idle set, one switch');
  t.equal(judge(maps, { ep: IPS.s, dir: 'ingress', peer: IPS.y, proto: 6, port: 443 }), 'allow');
});
