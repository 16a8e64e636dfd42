// Applies a PolicyDatapathState to the maps of bpf/policy.c by diff, against a
// mirror of what the kernel holds (read back at start, so a restarted agent
// adopts the pinned state and rewrites nothing that is already right).
//
// Make-before-break: ipcache, endpoints and policy entries each hold two sets,
// and one word (sluice_polgen) says which is live. A change is written into
// the idle set, only what differs there, and then one write switches the node
// to it. A packet reads the
// word once, so it meets either the whole old state or the whole new one:
// nothing both deny ever passes, nothing both allow ever drops. A write that
// fails leaves the live set untouched; it is reported and retried later.
import type { BpfMap } from './bpf.js';
import { MapWriteError } from './bpf.js';
import type { EndpointEntry, PolicyDatapathState, PolicyEntry } from '../policy/datapath-state.js';
import {
  addrString,
  ctAddresses,
  decodeEndpointVal,
  DROP_REASONS,
  type DropReason,
  endpointKey,
  endpointVal,
  EP_EGRESS_ENFORCED,
  EP_INGRESS_ENFORCED,
  EP_MESHED,
  ipcacheKey,
  keySet,
  policyKey,
  policyVal,
  tpcfg,
  type TproxyConfig,
  u32le,
} from './policy-maps.js';
import { openPolicyMaps, type PolicyMaps } from './policy-object.js';

export interface PolicyApplyResult {
  written: number;
  deleted: number;
  /** What could not be applied, each naming the object; the rest was applied. */
  errors: string[];
}

export interface PolicyReconcilerOptions {
  /** How long after a failed apply to try the same state again; 0 disables. Default 1000 ms. */
  retryMs?: number;
  onError?(message: string): void;
}

type Mirror = Map<string, string>;
const IDLE_COPY_DELAY_MS = 100;
type Kind = keyof typeof keySet;
const KINDS: Kind[] = ['ipcache', 'endpoints', 'policy', 'mesh'];

const hex = (b: Buffer) => b.toString('hex');
const buf = (h: string) => Buffer.from(h, 'hex');

function readMirror(map: BpfMap): Mirror {
  return new Map(map.entries().map(([k, v]) => [hex(k), hex(v)]));
}

/** Where, in a key's hex form, the digit holding its set sits (see keySet); bit 1 of it for policy, bit 0 otherwise. */
const SET_DIGIT: Record<Kind, { at: number; bit: number }> = { ipcache: { at: 9, bit: 1 }, endpoints: { at: 33, bit: 1 }, policy: { at: 13, bit: 2 }, mesh: { at: 9, bit: 1 } };

function setOf(kind: Kind, key: string): number {
  const { at, bit } = SET_DIGIT[kind];
  return parseInt(key[at], 16) & bit ? 1 : 0;
}

/** A key of the other set: the same entry, moved. */
function otherSet(kind: Kind, key: string): string {
  const { at, bit } = SET_DIGIT[kind];
  return key.slice(0, at) + (parseInt(key[at], 16) ^ bit).toString(16) + key.slice(at + 1);
}

export class PolicyReconciler {
  private readonly mirrors: Record<Kind, Mirror>;
  private live: number;
  private desired?: PolicyDatapathState;
  private retry?: NodeJS.Timeout;
  private mirror?: NodeJS.Timeout;
  private result: PolicyApplyResult = { written: 0, deleted: 0, errors: [] };
  /** A write failed (worth retrying), as opposed to input that cannot be encoded (reported, not retried). */
  private writeFailed = false;

  constructor(
    readonly maps: PolicyMaps,
    private readonly opts: PolicyReconcilerOptions = {},
  ) {
    this.mirrors = { ipcache: readMirror(maps.ipcache), endpoints: readMirror(maps.endpoints), policy: readMirror(maps.policy), mesh: readMirror(maps.mesh) };
    this.live = (maps.polgen.lookup(u32le(0))?.readUInt32LE(0) ?? 0) & 1;
  }

  /** From the pins in pinDir (creating the maps when none are pinned yet). */
  static open(pinDir: string, opts: PolicyReconcilerOptions = {}, objectPath?: string): PolicyReconciler {
    return new PolicyReconciler(openPolicyMaps(pinDir, objectPath), opts);
  }

  /** Which set of entries the programs use now (0 or 1). */
  get liveSet(): number {
    return this.live;
  }

  /** How many entries the live set holds in each map. */
  get sizes(): Record<Kind, number> {
    const count = (kind: Kind) => [...this.mirrors[kind].keys()].filter((k) => setOf(kind, k) === this.live).length;
    return { ipcache: count('ipcache'), endpoints: count('endpoints'), policy: count('policy'), mesh: count('mesh') };
  }

  apply(state: PolicyDatapathState): PolicyApplyResult {
    this.desired = state;
    clearTimeout(this.retry);
    clearTimeout(this.mirror);
    this.result = { written: 0, deleted: 0, errors: [] };
    this.writeFailed = false;
    this.reconcile(state);
    const out = this.result;
    for (const e of out.errors) this.opts.onError?.(e);
    const retryMs = this.opts.retryMs ?? 1000;
    if (this.writeFailed && retryMs > 0) {
      this.retry = setTimeout(() => this.desired === state && this.apply(state), retryMs);
      this.retry.unref();
    }
    return out;
  }

  /** Packets dropped since the maps were created, by reason, summed over CPUs. */
  dropCounters(): Record<DropReason, number> {
    const out = {} as Record<DropReason, number>;
    DROP_REASONS.forEach((reason, i) => {
      const v = this.maps.drops.lookup(u32le(i));
      let n = 0n;
      if (v) for (let o = 0; o < v.length; o += 8) n += v.readBigUInt64LE(o);
      out[reason] = Number(n);
    });
    return out;
  }

  /** Where redirected flows go and the mark that routes them locally. */
  setTproxy(cfg: TproxyConfig): void {
    this.maps.tpcfg.update(u32le(0), tpcfg(cfg));
  }

  close(): void {
    clearTimeout(this.retry);
    clearTimeout(this.mirror);
    this.maps.close();
  }

  private error(message: string): void {
    this.result.errors.push(message);
  }

  private inSet(kind: Kind, set: number): Mirror {
    return new Map([...this.mirrors[kind]].filter(([k]) => setOf(kind, k) === set));
  }

  private reconcile(state: PolicyDatapathState): void {
    const live = this.live;
    const idle = 1 - live;
    const current = Object.fromEntries(KINDS.map((k) => [k, this.inSet(k, live)])) as Record<Kind, Mirror>;
    const wantLive = this.encode(state, live, current);
    if (KINDS.every((k) => sameEntries(current[k], wantLive[k]))) return;
    // The idle set holds an earlier state (usually the live one, copied): write only what differs from the new one.
    const want = Object.fromEntries(KINDS.map((k) => [k, new Map([...wantLive[k]].map(([key, v]) => [otherSet(k, key), v]))])) as Record<Kind, Mirror>;
    for (const kind of KINDS) {
      const map = this.maps[kind];
      const mirror = this.mirrors[kind];
      const stale = [...this.inSet(kind, idle).keys()].filter((k) => !want[kind].has(k));
      if (!this.remove(map, mirror, stale) || !this.put(map, mirror, [...want[kind]])) return;
    }
    try {
      this.maps.polgen.update(u32le(0), u32le(idle));
      this.result.written++;
    } catch (e) {
      this.error(`switching ${this.maps.polgen.name} to set ${idle}: ${(e as Error).message}`);
      this.writeFailed = true;
      return;
    }
    this.live = idle;
    // Once no packet can still be reading the old set (a program runs for microseconds), bring it up to the new
    // state too, so that the next change writes only what it changes.
    this.mirror = setTimeout(() => this.copyLiveToIdle(), IDLE_COPY_DELAY_MS);
    this.mirror.unref();
    // A removed pod's flows: its address may come back as another pod, which must not inherit them.
    const addrOf = (k: string) => k.slice(0, 32);
    const now = new Set([...wantLive.endpoints.keys()].map(addrOf));
    const gone = [...current.endpoints.keys()].map(addrOf).filter((a) => !now.has(a));
    if (gone.length) this.flushConntrack(gone.map(buf));
  }

  private copyLiveToIdle(): void {
    const saved = this.result;
    this.result = { written: 0, deleted: 0, errors: [] };
    for (const kind of KINDS) {
      const want = new Map([...this.inSet(kind, this.live)].map(([k, v]) => [otherSet(kind, k), v]));
      const stale = [...this.inSet(kind, 1 - this.live).keys()].filter((k) => !want.has(k));
      if (!this.remove(this.maps[kind], this.mirrors[kind], stale) || !this.put(this.maps[kind], this.mirrors[kind], [...want])) break;
    }
    // Nothing depends on this copy; the next change writes whatever it missed.
    for (const e of this.result.errors) this.opts.onError?.(`copying the live set to the idle one: ${e}`);
    this.result = saved;
  }

  /**
   * The state as map entries of one set. An endpoint with an entry that cannot
   * be encoded keeps what it has now, entries and enforcement alike: a policy
   * is enforced whole or not changed, never half.
   */
  private encode(state: PolicyDatapathState, set: number, current: Record<Kind, Mirror>): Record<Kind, Mirror> {
    const out: Record<Kind, Mirror> = { ipcache: new Map(), endpoints: new Map(), policy: new Map(), mesh: new Map() };
    for (const e of state.ipcache) {
      try {
        out.ipcache.set(hex(ipcacheKey(e.prefix, set)), hex(u32le(e.identity)));
      } catch (err) {
        this.error(`ipcache entry ${e.prefix}: ${(err as Error).message}`);
      }
    }
    for (const d of state.meshDestinations ?? []) {
      try {
        if (!Number.isInteger(d.proxyPort) || d.proxyPort <= 0 || d.proxyPort > 0xffff) throw new Error(`proxy port ${d.proxyPort} is not 1..65535`);
        out.mesh.set(hex(ipcacheKey(d.prefix, set)), hex(u32le(d.proxyPort)));
      } catch (err) {
        this.error(`mesh destination ${d.prefix}: ${(err as Error).message}`);
      }
    }
    const invalid = new Set<number>();
    for (const e of state.entries) {
      const problem = entryProblem(e);
      if (!problem) continue;
      invalid.add(e.endpoint);
      this.error(`policy entry of endpoint ${e.endpoint} (${e.direction}, identity ${e.identity}, proto ${e.proto}, port ${e.port}/${e.portPrefixLen}): ${problem}`);
    }
    for (const e of state.entries)
      if (!invalid.has(e.endpoint)) out.policy.set(hex(policyKey(e, set)), hex(policyVal(e.verdict, e.proxyPort)));
    for (const ep of state.endpoints) {
      let key: string;
      try {
        if (!Number.isInteger(ep.endpoint) || ep.endpoint < 0 || ep.endpoint > 0xffff) throw new Error(`endpoint number ${ep.endpoint} is not 0..65535`);
        key = hex(endpointKey(ep.ip, set));
      } catch (err) {
        this.error(`endpoint ${ep.pod}: ${(err as Error).message}`);
        continue;
      }
      if (out.endpoints.has(key)) {
        this.error(`endpoint ${ep.pod}: address ${ep.ip} is listed twice; the first one holds it`);
        continue;
      }
      if (!invalid.has(ep.endpoint)) out.endpoints.set(key, hex(endpointVal(ep.identity, ep.endpoint, flagsOf(ep))));
    }
    // What the invalid endpoints have now, carried over unchanged.
    for (const [k, v] of current.endpoints) if (invalid.has(decodeEndpointVal(buf(v)).id)) out.endpoints.set(k, v);
    for (const [k, v] of current.policy) if (invalid.has(buf(k).readUInt16BE(4))) out.policy.set(k, v);
    return out;
  }

  /** Writes in order; records exactly what made it. False when something did not. */
  private put(map: BpfMap, mirror: Mirror, entries: [string, string][]): boolean {
    const todo = entries.filter(([k, v]) => mirror.get(k) !== v);
    if (!todo.length) return true;
    try {
      map.updateMany(todo.map(([k, v]) => [buf(k), buf(v)]));
    } catch (e) {
      const written = e instanceof MapWriteError ? e.written : 0;
      for (const [k, v] of todo.slice(0, written)) mirror.set(k, v);
      this.result.written += written;
      this.error(`writing ${map.name}: ${(e as Error).message}`);
      this.writeFailed = true;
      return false;
    }
    for (const [k, v] of todo) mirror.set(k, v);
    this.result.written += todo.length;
    return true;
  }

  private remove(map: BpfMap, mirror: Mirror, keys: string[]): boolean {
    let ok = true;
    for (const k of keys) {
      try {
        map.delete(buf(k));
        mirror.delete(k);
        this.result.deleted++;
      } catch (e) {
        ok = false;
        this.writeFailed = true;
        this.error(`deleting from ${map.name}: ${(e as Error).message}`);
      }
    }
    return ok;
  }

  private flushConntrack(ips: Buffer[]): void {
    try {
      for (const key of this.maps.ct.keys()) {
        const [src, dst] = ctAddresses(key);
        if (ips.some((ip) => ip.equals(src) || ip.equals(dst))) this.maps.ct.delete(key);
      }
    } catch (e) {
      this.error(`flushing conntrack of ${ips.map(addrString).join(', ')}: ${(e as Error).message}`);
    }
  }
}

function flagsOf(ep: EndpointEntry): number {
  return (ep.ingressEnforced ? EP_INGRESS_ENFORCED : 0) | (ep.egressEnforced ? EP_EGRESS_ENFORCED : 0) | (ep.meshed ? EP_MESHED : 0);
}

function sameEntries(a: Mirror, b: Mirror): boolean {
  return a.size === b.size && [...b].every(([k, v]) => a.get(k) === v);
}

function entryProblem(e: PolicyEntry): string | undefined {
  if (!Number.isInteger(e.endpoint) || e.endpoint < 0 || e.endpoint > 0xffff) return 'endpoint number is not 0..65535';
  if (e.direction !== 'ingress' && e.direction !== 'egress') return `direction ${String(e.direction)} is neither ingress nor egress`;
  if (!Number.isInteger(e.identity) || e.identity < 0 || e.identity > 0xffffffff) return 'identity is not a 32-bit number';
  if (!Number.isInteger(e.proto) || e.proto < 0 || e.proto > 255) return 'protocol is not 0..255';
  if (!Number.isInteger(e.port) || e.port < 0 || e.port > 0xffff) return 'port is not 0..65535';
  if (!Number.isInteger(e.portPrefixLen) || e.portPrefixLen < 0 || e.portPrefixLen > 16) return 'port prefix length is not 0..16';
  if (e.proto === 0 && e.portPrefixLen !== 0) return 'any protocol (0) needs a wildcard port';
  if (!['allow', 'deny', 'redirect', 'mesh'].includes(e.verdict)) return `verdict ${String(e.verdict)} is unknown`;
  if (e.verdict === 'mesh' && e.direction !== 'egress') return 'verdict mesh is for egress only';
  if (e.verdict === 'redirect' && !(Number.isInteger(e.proxyPort) && e.proxyPort! > 0 && e.proxyPort! <= 0xffff))
    return `redirect to listener ${e.listener ?? '(unnamed)'} has no proxy port yet`;
  return undefined;
}
