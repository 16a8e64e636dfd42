// The agent's side of the policy datapath: the TC programs on every interface
// of the node's namespace, and their maps kept equal to the ACK-gated policy
// state (a redirect only into a listener the node's Envoy has accepted).
//
// Nothing is loaded until some policy selects a pod on this node, so a node
// without policies carries no TC programs; pins a previous agent left are
// adopted at once, so enforcement never lapses across a restart.
//
// When Envoy is gone (or has not accepted a listener yet) its redirects drop
// rather than pass: allowing them would let through requests the L7 rules
// deny, and Cilium drops too. Only flows that need Envoy stop; everything the
// kernel decides alone keeps working.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { PolicyDatapathState, PolicyEntry } from '../policy/datapath-state.js';
import { PolicyReconciler } from '../redirect/policy-datapath.js';
import { policyPinDir } from '../redirect/policy-object.js';
import { POLICY_MAPS, policyKey, policyVal } from '../redirect/policy-maps.js';
import type { DropReason } from '../redirect/policy-maps.js';
import type { ProxyAddresses } from '../redirect/proxy-address.js';
import { TcAttacher } from '../redirect/tc-attach.js';
import { ensureTproxyRoute, tproxyConfig, type IpRunner } from '../redirect/tproxy-route.js';
import type { PolicyView } from './policy-wiring.js';

export interface PolicyDatapathOptions {
  /** The agent's pin directory; the policy object pins under its policy/ folder. */
  pinDir: string;
  /** Where the policy listeners listen: the redirect hands flows to these addresses. */
  proxyAddresses: ProxyAddresses;
  log: Logger;
  objectPath?: string;
  /** How often the attacher looks for new interfaces. */
  attachIntervalMs?: number;
  ip?: IpRunner;
}

const runIp: IpRunner = (args) => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const hex = (b: Buffer) => b.toString('hex');
/** An entry's policy key in one set, or '' for one that cannot be encoded (the reconciler reports those). */
function keyOf(e: PolicyEntry, set: number): string {
  try {
    return hex(policyKey(e, set));
  } catch {
    return '';
  }
}

/** Whether a view asks anything of the kernel: some pod on this node is enforced, has entries or is meshed. */
const enforcing = (s: PolicyDatapathState) => s.entries.length > 0 || s.endpoints.some((e) => e.ingressEnforced || e.egressEnforced || e.meshed);

export class PolicyDatapath {
  private reconciler?: PolicyReconciler;
  private attacher?: TcAttacher;
  private latest?: PolicyView;
  private retry: { timer?: NodeJS.Timeout; failures: number } = { failures: 0 };
  /**
   * Redirects the kernel held when this agent started (policy key of the live
   * set to value): a restarted agent keeps steering those flows into the same
   * proxy port until the node's Envoy has ACKed this agent (or gone), instead
   * of dropping them for the moment between its first publish and that ACK.
   */
  private inherited?: { set: number; redirects: Map<string, string> };
  private closed = false;

  constructor(private readonly opts: PolicyDatapathOptions) {
    const dir = policyPinDir(opts.pinDir);
    if (existsSync(join(dir, POLICY_MAPS.polgen))) {
      this.open();
      const r = this.reconciler!;
      const redirect = 3;
      const redirects = new Map(r.maps.policy.entries().filter(([, v]) => v.readUInt8(0) === redirect).map(([k, v]) => [hex(k), hex(v)]));
      this.inherited = { set: r.liveSet, redirects };
      opts.log.info({ pinDir: dir, redirects: redirects.size, links: this.links() }, 'adopted the policy datapath a previous agent left pinned');
    }
  }

  /** Called with each new policy view; applies what the datapath may enforce now. */
  update(view: PolicyView): void {
    this.latest = view;
    this.apply();
  }

  /** Packets dropped by policy since the maps were created, by reason; undefined before anything was loaded. */
  dropCounters(): Record<DropReason, number> | undefined {
    return this.reconciler?.dropCounters();
  }

  /** Lets go; the pinned programs, links and maps keep enforcing while no agent runs. */
  async stop(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry.timer);
    await this.attacher?.stop();
    this.reconciler?.close();
  }

  private links(): number {
    const tc = join(policyPinDir(this.opts.pinDir), 'tc');
    return existsSync(tc) ? readdirSync(tc).length : 0;
  }

  /** Loads (or adopts) the object, pins the maps, puts the programs on the interfaces and the steering route in place. */
  private open(): void {
    const { opts } = this;
    const dir = policyPinDir(opts.pinDir);
    const onError = (message: string) => opts.log.error({ error: message }, `policy datapath: ${message}`);
    if (!this.reconciler) {
      const reconciler = PolicyReconciler.open(dir, { retryMs: 0 }, opts.objectPath);
      try {
        ensureTproxyRoute(opts.ip ?? runIp);
        reconciler.setTproxy(tproxyConfig(undefined, opts.proxyAddresses.v4, opts.proxyAddresses.v6));
      } catch (e) {
        reconciler.close();
        throw e;
      }
      this.reconciler = reconciler;
    }
    if (!this.attacher) {
      const attacher = new TcAttacher({ pinDir: dir, objectPath: opts.objectPath, intervalMs: opts.attachIntervalMs, onError });
      this.attacher = attacher;
      void attacher.start().catch((e: unknown) => onError(`attaching: ${(e as Error).message}`));
    }
  }

  private apply(): void {
    const view = this.latest;
    if (!view || this.closed) return;
    clearTimeout(this.retry.timer);
    this.retry.timer = undefined;
    const { log } = this.opts;
    if (!this.reconciler && !enforcing(view.desired)) return;
    try {
      this.open();
    } catch (e) {
      const retryInMs = this.scheduleRetry();
      log.error({ err: e, retryInMs }, 'policy datapath could not be loaded: policies are not enforced on this node yet; retrying');
      return;
    }
    if (view.ackSeen) this.inherited = undefined;
    const state = this.withInherited(view.acked, view.desired);
    const r = this.reconciler!.apply(state);
    const stats = { written: r.written, deleted: r.deleted, entries: state.entries.length, endpoints: state.endpoints.length, redirects: state.entries.filter((e) => e.verdict === 'redirect').length };
    if (r.errors.length) {
      const retryInMs = this.scheduleRetry();
      log.error({ ...stats, errors: r.errors, retryInMs }, 'policy datapath partly updated: the node keeps enforcing its previous policy where a write failed; retrying');
      return;
    }
    this.retry.failures = 0;
    if (r.written || r.deleted) log.info(stats, 'policy datapath updated');
  }

  /** The gated state, but a redirect this agent inherited stays a redirect while it is still desired into the same port. */
  private withInherited(acked: PolicyDatapathState, desired: PolicyDatapathState): PolicyDatapathState {
    const inh = this.inherited;
    if (!inh || !inh.redirects.size) return acked;
    const held = (e: PolicyEntry) => e.verdict === 'redirect' && inh.redirects.get(keyOf(e, inh.set)) === hex(policyVal('redirect', e.proxyPort));
    const keep = new Map(desired.entries.filter(held).map((e) => [keyOf(e, 0), e]));
    if (!keep.size) return acked;
    return { ...acked, entries: acked.entries.map((e) => (e.verdict !== 'redirect' && keep.get(keyOf(e, 0))) || e) };
  }

  /** Another apply after a backoff from 1 s to a minute, even if nothing changes. */
  private scheduleRetry(): number {
    const delay = Math.min(60_000, 1000 * 2 ** this.retry.failures++);
    this.retry.timer = setTimeout(() => this.apply(), delay);
    this.retry.timer.unref();
    return delay;
  }
}
