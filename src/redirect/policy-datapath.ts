// Applies a PolicyDatapathState to the maps of bpf/policy.c by diff, against a
// mirror of what the kernel holds (read back at start, so a restarted agent
// adopts the pinned state and rewrites nothing that is already right).
//
// Make-before-break: each endpoint has two sets of policy entries and its
// endpoints value names the live one. A changed endpoint gets its new entries
// in the idle set first; one write of its value then switches entries and
// enforcement flags together, and only then does the old set go. A packet thus
// meets either the whole old or the whole new policy of an endpoint, never a
// mix. Identity mappings that are new come before the policies that name them,
// the ones that go after; a removed endpoint's value goes before its entries.
// A write that fails leaves the endpoint on its old set; it is reported and
// the whole state retried later, and nothing that works is withdrawn.
import { addon } from './bpf.js';
import type { BpfMap } from './bpf.js';
import { MapWriteError } from './bpf.js';
import type { EndpointEntry, PolicyDatapathState, PolicyEntry } from '../policy/datapath-state.js';
import {
  addr16,
  addrString,
  ctAddresses,
  decodeEndpointVal,
  DROP_REASONS,
  type DropReason,
  endpointVal,
  EP_EGRESS_ENFORCED,
  EP_INGRESS_ENFORCED,
  ipcacheKey,
  policyKey,
  policyKeyOwner,
  policyVal,
  POLICY_SIZES,
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

const hex = (b: Buffer) => b.toString('hex');
const buf = (h: string) => Buffer.from(h, 'hex');

function readMirror(map: BpfMap): Mirror {
  return new Map(map.entries().map(([k, v]) => [hex(k), hex(v)]));
}

export class PolicyReconciler {
  private readonly ipcache: Mirror;
  private readonly endpoints: Mirror;
  private readonly policy: Mirror;
  private desired?: PolicyDatapathState;
  private retry?: NodeJS.Timeout;
  private result: PolicyApplyResult = { written: 0, deleted: 0, errors: [] };

  constructor(
    readonly maps: PolicyMaps,
    private readonly opts: PolicyReconcilerOptions = {},
  ) {
    this.ipcache = readMirror(maps.ipcache);
    this.endpoints = readMirror(maps.endpoints);
    this.policy = readMirror(maps.policy);
  }

  /** From the pins in pinDir (creating the maps when none are pinned yet). */
  static open(pinDir: string, opts: PolicyReconcilerOptions = {}, objectPath?: string): PolicyReconciler {
    return new PolicyReconciler(openPolicyMaps(pinDir, objectPath), opts);
  }

  /** How many entries each map holds, as this reconciler knows them. */
  get sizes(): { ipcache: number; endpoints: number; policy: number } {
    return { ipcache: this.ipcache.size, endpoints: this.endpoints.size, policy: this.policy.size };
  }

  apply(state: PolicyDatapathState): PolicyApplyResult {
    this.desired = state;
    clearTimeout(this.retry);
    this.result = { written: 0, deleted: 0, errors: [] };
    this.reconcile(state);
    const out = this.result;
    for (const e of out.errors) this.opts.onError?.(e);
    const retryMs = this.opts.retryMs ?? 1000;
    if (out.errors.length && retryMs > 0) {
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
    this.maps.close();
  }

  private error(message: string): void {
    this.result.errors.push(message);
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
        this.error(`deleting from ${map.name}: ${(e as Error).message}`);
      }
    }
    return ok;
  }

  private reconcile(state: PolicyDatapathState): void {
    const ipcache = this.encodeIpcache(state);
    const { endpoints, byId } = this.encodeEndpoints(state.endpoints);
    const entries = this.encodeEntries(state.entries);

    // 1. Identity mappings that are new or changed, before policies naming them.
    this.put(this.maps.ipcache, this.ipcache, [...ipcache]);

    // 2. Per endpoint: fill the idle set, then switch its addresses to it.
    const keep = new Map<number, number>(); // endpoint id -> the set it now uses (or will, once it has addresses)
    const ids = new Set<number>([...byId.keys(), ...entries.keys()]);
    const owned = this.policyByOwner();
    const liveNow = this.liveGensById();
    for (const id of ids) {
      const want = entries.get(id);
      if (want === null) continue; // invalid: reported; the endpoint keeps what it has
      const gens = [...(liveNow.get(id) ?? [])];
      const live = gens[0];
      // A switch cut short: both sets are whole policies; settle on one before filling the other.
      if (gens.length > 1 && !this.switchTo(id, live, this.addrsOf(id))) continue;
      const wantIn = (gen: number) => new Map((want ?? []).map((e) => [hex(policyKey(e, gen)), hex(policyVal(e.verdict, e.proxyPort))]));
      let target: number;
      const entriesOf = (gen: number) => owned.get(`${id}:${gen}`) ?? new Map<string, string>();
      if (live !== undefined && sameEntries(entriesOf(live), wantIn(live))) target = live;
      else {
        target = live === undefined ? 0 : 1 - live;
        const fill = wantIn(target);
        const stale = [...entriesOf(target).keys()].filter((k) => !fill.has(k));
        if (!this.remove(this.maps.policy, this.policy, stale) || !this.put(this.maps.policy, this.policy, [...fill])) continue;
      }
      const values = (byId.get(id) ?? []).map((ep) => [hex(addr16(ep.ip)), hex(endpointVal(ep.identity, id, flagsOf(ep), target))] as [string, string]);
      if (this.put(this.maps.endpoints, this.endpoints, values)) keep.set(id, target);
    }

    // 3. Addresses no longer endpoints.
    const gone = [...this.endpoints.keys()].filter((k) => !endpoints.has(k));
    const goneIps = gone.map((k) => buf(k));
    this.remove(this.maps.endpoints, this.endpoints, gone);

    // 4. Entry sets nobody uses any more: the old set of a switched endpoint, every set of one gone.
    //    An endpoint whose update failed keeps its sets, the idle one included, for the retry.
    const stale: string[] = [];
    const liveAfter = this.liveGensById();
    for (const k of this.policy.keys()) {
      const { endpoint, gen } = policyKeyOwner(buf(k));
      if (liveAfter.get(endpoint)?.has(gen) || keep.get(endpoint) === gen) continue;
      if (keep.has(endpoint) || !ids.has(endpoint)) stale.push(k);
    }
    this.remove(this.maps.policy, this.policy, stale);

    // 5. Identity mappings that went, once no policy needs them.
    this.remove(
      this.maps.ipcache,
      this.ipcache,
      [...this.ipcache.keys()].filter((k) => !ipcache.has(k)),
    );

    // 6. A removed pod's flows: its address may come back as another pod, which must not inherit them.
    if (goneIps.length) this.flushConntrack(goneIps);
  }

  private encodeIpcache(state: PolicyDatapathState): Map<string, string> {
    const out = new Map<string, string>();
    for (const e of state.ipcache) {
      try {
        out.set(hex(ipcacheKey(e.prefix)), hex(u32le(e.identity)));
      } catch (err) {
        this.error(`ipcache entry ${e.prefix}: ${(err as Error).message}`);
      }
    }
    return out;
  }

  private encodeEndpoints(list: EndpointEntry[]): { endpoints: Set<string>; byId: Map<number, EndpointEntry[]> } {
    const endpoints = new Set<string>();
    const byId = new Map<number, EndpointEntry[]>();
    for (const ep of list) {
      let key: string;
      try {
        if (!Number.isInteger(ep.endpoint) || ep.endpoint < 0 || ep.endpoint > 0xffff) throw new Error(`endpoint number ${ep.endpoint} is not 0..65535`);
        key = hex(addr16(ep.ip));
      } catch (err) {
        this.error(`endpoint ${ep.pod}: ${(err as Error).message}`);
        continue;
      }
      if (endpoints.has(key)) {
        this.error(`endpoint ${ep.pod}: address ${ep.ip} is listed twice; the first one holds it`);
        continue;
      }
      endpoints.add(key);
      byId.set(ep.endpoint, [...(byId.get(ep.endpoint) ?? []), ep]);
    }
    return { endpoints, byId };
  }

  /** Per endpoint id, its entries; null for an endpoint with an entry that cannot be encoded (then none of its are). */
  private encodeEntries(list: PolicyEntry[]): Map<number, PolicyEntry[] | null> {
    const out = new Map<number, PolicyEntry[] | null>();
    for (const e of list) {
      if (out.get(e.endpoint) === null) continue;
      const problem = entryProblem(e);
      if (problem) {
        this.error(`policy entry of endpoint ${e.endpoint} (${e.direction}, identity ${e.identity}, proto ${e.proto}, port ${e.port}/${e.portPrefixLen}): ${problem}`);
        out.set(e.endpoint, null);
        continue;
      }
      out.set(e.endpoint, [...(out.get(e.endpoint) ?? []), e]);
    }
    return out;
  }

  private addrsOf(id: number): string[] {
    return [...this.endpoints].filter(([, v]) => decodeEndpointVal(buf(v)).id === id).map(([k]) => k);
  }

  /** Per endpoint id, the entry sets its addresses use now. */
  private liveGensById(): Map<number, Set<number>> {
    const out = new Map<number, Set<number>>();
    for (const v of this.endpoints.values()) {
      const d = decodeEndpointVal(buf(v));
      out.set(d.id, (out.get(d.id) ?? new Set()).add(d.gen));
    }
    return out;
  }

  /** The policy mirror split by "endpoint:set". */
  private policyByOwner(): Map<string, Mirror> {
    const out = new Map<string, Mirror>();
    for (const [k, v] of this.policy) {
      const o = policyKeyOwner(buf(k));
      const key = `${o.endpoint}:${o.gen}`;
      if (!out.has(key)) out.set(key, new Map());
      out.get(key)!.set(k, v);
    }
    return out;
  }

  private switchTo(id: number, gen: number, addrs: string[]): boolean {
    const values = addrs.map((k) => {
      const d = decodeEndpointVal(buf(this.endpoints.get(k)!));
      return [k, hex(endpointVal(d.identity, id, d.flags, gen))] as [string, string];
    });
    return this.put(this.maps.endpoints, this.endpoints, values);
  }

  private flushConntrack(ips: Buffer[]): void {
    try {
      const keys = addon().mapKeys(this.maps.ct.fd, POLICY_SIZES.ctKey);
      for (let o = 0; o < keys.length; o += POLICY_SIZES.ctKey) {
        const key = keys.subarray(o, o + POLICY_SIZES.ctKey);
        const [src, dst] = ctAddresses(key);
        if (ips.some((ip) => ip.equals(src) || ip.equals(dst))) this.maps.ct.delete(Buffer.from(key));
      }
    } catch (e) {
      this.error(`flushing conntrack of ${ips.map(addrString).join(', ')}: ${(e as Error).message}`);
    }
  }
}

function flagsOf(ep: EndpointEntry): number {
  return (ep.ingressEnforced ? EP_INGRESS_ENFORCED : 0) | (ep.egressEnforced ? EP_EGRESS_ENFORCED : 0);
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
  if (!['allow', 'deny', 'redirect'].includes(e.verdict)) return `verdict ${String(e.verdict)} is unknown`;
  if (e.verdict === 'redirect' && !(Number.isInteger(e.proxyPort) && e.proxyPort! > 0 && e.proxyPort! <= 0xffff))
    return `redirect to listener ${e.listener ?? '(unnamed)'} has no proxy port yet`;
  return undefined;
}
