// The agent's flow intake: producers (the datapath's event reader, Envoy's
// access log stream) hand their flows here; each is enriched from the model
// and policy in force when it arrives, then held in the ring the Observer API
// serves.
import type { Model } from '../model/model.js';
import type { PolicyResult } from '../policy/index.js';
import { enrichContext, enrichFlow, type EnrichContext, type EnrichHints } from '../observe/enrich.js';
import type { Flow } from '../observe/flow.js';
import { FlowRing, type LostSource } from '../observe/flow-ring.js';

/** Hubble's default ring size (its --hubble-event-buffer-capacity). */
export const DEFAULT_FLOW_RING_SIZE = 4095;

export class FlowObserver {
  readonly ring: FlowRing;
  private ctx?: { model: Model; policy: PolicyResult; value: EnrichContext };

  constructor(
    capacity: number,
    private readonly inputs: () => { model: Model; policy: PolicyResult | undefined },
  ) {
    this.ring = new FlowRing(capacity);
  }

  /** Until the first policy is computed flows go in as the producer gave them. */
  record(flow: Flow, hints?: EnrichHints): void {
    const ctx = this.context();
    this.ring.push(ctx ? enrichFlow(flow, ctx, hints) : flow);
  }

  reportLost(source: LostSource, count: number): void {
    this.ring.reportLost(source, count);
  }

  private context(): EnrichContext | undefined {
    const { model, policy } = this.inputs();
    if (!policy) return undefined;
    if (this.ctx?.model !== model || this.ctx.policy !== policy) this.ctx = { model, policy, value: enrichContext(model, policy) };
    return this.ctx.value;
  }
}
