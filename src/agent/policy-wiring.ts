// Policy in the agent: computes it from each model, hands its L7 listeners to
// assembly as translation units, and keeps two datapath states: the desired
// one, and the one the datapath may apply now, where a flow is steered into a
// listener only once the node's Envoy has accepted that listener (traffic
// never meets a closed port). Until then such an entry drops rather than
// allows: an L7 rule is never bypassed, only late.
import { join } from 'node:path';
import type { Model, ModelChanges } from '../model/model.js';
import type { Kind } from '../model/objects.js';
import { computePolicy, identityAllocators, type PolicyDatapathState, type PolicyEntry, type PolicyResult } from '../policy/index.js';
import type { TranslateContext } from '../translate/context.js';
import type { ObjectTranslation } from '../translate/output.js';
import type { Any } from '../proto/any.js';
import { translatePolicyListeners } from '../translate/policy-l7.js';
import { meshWorkloads } from '../mesh/membership.js';
import { meshDatapath, withMesh } from '../mesh/datapath.js';

export interface PolicyView {
  /** The latest computation; undefined before the first model. */
  result?: PolicyResult;
  /** Every redirect with the proxy port of its listener; one whose listener could not be served drops. */
  desired: PolicyDatapathState;
  /** What the datapath may apply: redirects only into listeners the node's Envoy has ACKed, the rest drop for now. */
  acked: PolicyDatapathState;
  /**
   * Whether the node's Envoy has ACKed (or gone) since this agent started. Until then,
   * `acked` drops every redirect; a restarted agent's reconciler should keep
   * the redirect entries it adopted from the pinned maps meanwhile (Envoy kept
   * its listeners across the restart), so L7 flows see no gap.
   */
  ackSeen: boolean;
}

/** The kinds computePolicy and the L7 translator read. */
const POLICY_INPUTS: readonly Kind[] = ['Pod', 'Namespace', 'Node', 'CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'];

function touchesPolicy(changes: ModelChanges): boolean {
  return POLICY_INPUTS.some((k) => changes.has(k));
}

const EMPTY: PolicyDatapathState = { ipcache: [], endpoints: [], entries: [] };

/** A redirect that cannot go to its listener (yet) drops: never allowed past its L7 rules. */
const drop = ({ listener: _l, proxyPort: _p, ...e }: PolicyEntry): PolicyEntry => ({ ...e, verdict: 'deny' });

export class PolicyWiring {
  private readonly allocators: ReturnType<typeof identityAllocators>;
  private result: PolicyResult | undefined;
  /** The model the current result was computed from, or a later one that changed nothing policy reads. */
  private model: Model | undefined;
  private units: ObjectTranslation[] = [];
  /** Listeners as encoded last time, so a publish that changes none of them encodes nothing. */
  private readonly encoded = new Map<string, Any[]>();
  private desired = EMPTY;
  private gated = EMPTY;
  private ackedListeners = new Set<string>();
  private ackSeen = false;
  private readonly subscribers = new Set<(view: PolicyView) => void>();

  /**
   * With `mesh`, meshed pods' flows to meshed pods on other nodes are steered
   * into the node's outbound listener. That steering is not ACK-gated like L7
   * redirects: before Envoy holds the listener, the kernel finds no socket
   * and drops (DROP_NO_PROXY), so a meshed flow is late, never in plaintext.
   */
  constructor(
    stateDir: string | undefined,
    private readonly opts: { mesh?: { trustDomain: string } } = {},
  ) {
    const file = (name: string) => (stateDir ? join(stateDir, name) : undefined);
    this.allocators = identityAllocators({ identities: file('policy-identities.json'), cidrs: file('policy-cidr-identities.json'), endpoints: file('policy-endpoints.json') });
  }

  /**
   * Computes policy for the node and returns its units for assembly. Should
   * that throw (a bug, not bad input: policies' problems are issues), the
   * previous units and states stay, and the rest of the config still goes out.
   */
  translate(model: Model, ctx: TranslateContext): ObjectTranslation[] {
    // Policy reads only these kinds: a change elsewhere (a CEC among thousands) costs nothing here.
    if (this.result && this.model && !touchesPolicy(model.changesSince(this.model))) {
      this.model = model;
      return this.units;
    }
    this.model = model;
    let result: PolicyResult;
    let translated: ReturnType<typeof translatePolicyListeners>;
    try {
      result = computePolicy(model, { nodeName: ctx.nodeName, ...this.allocators });
      const origins = new Map(result.compiled.ruleSets.flatMap((rs) => (rs.origin ? [[rs.policy, rs.origin] as const] : [])));
      translated = translatePolicyListeners(result.l7, ctx, result.issues, origins, this.encoded);
    } catch (e) {
      this.model = undefined;
      const message = `policy computation failed, the previous policy stays in force: ${(e as Error).message}`;
      return [...this.units.map((u) => ({ ...u, issues: [] })), { object: 'policy', resources: [], redirects: [], issues: [{ object: 'policy', field: '', message }] }];
    }
    const { units, ports } = translated;
    this.units = units;
    const entries = result.state.entries.map((e) => (e.verdict !== 'redirect' ? e : ports.has(e.listener!) ? { ...e, proxyPort: ports.get(e.listener!)! } : drop(e)));
    this.result = result;
    const state = { ...result.state, entries };
    this.desired = this.opts.mesh ? withMesh(state, meshDatapath(meshWorkloads(model, this.opts.mesh.trustDomain), ctx.nodeName)) : state;
    this.regate();
    return units;
  }

  /** The next translate computes afresh, e.g. once proxy ports a translation lacked have freed. */
  forget(): void {
    this.model = undefined;
  }

  /** The node's Envoy accepted a version with these listeners (an empty set: it has none any more). */
  acked(listeners: ReadonlySet<string>): void {
    this.ackedListeners = new Set(listeners);
    this.ackSeen = true;
    this.regate();
  }

  /** Whether some redirect currently steers into Envoy. */
  get redirecting(): boolean {
    return this.gated.entries.some((e) => e.verdict === 'redirect');
  }

  get view(): PolicyView {
    return { ...(this.result ? { result: this.result } : {}), desired: this.desired, acked: this.gated, ackSeen: this.ackSeen };
  }

  /** Calls `fn` with every new view (the datapath reconciler's hook); returns the unsubscribe. */
  subscribe(fn: (view: PolicyView) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  private regate(): void {
    const entries = this.desired.entries.map((e) => (e.verdict === 'redirect' && !this.ackedListeners.has(e.listener!) ? drop(e) : e));
    this.gated = { ...this.desired, entries };
    const view = this.view;
    for (const fn of this.subscribers) fn(view);
  }
}
