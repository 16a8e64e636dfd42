// The agent's flow intake: producers (the datapath's event reader, Envoy's
// access log stream) hand their flows here; each is enriched from the model
// and policy in force when it arrives, then held in the ring the Observer API
// serves.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { Model } from '../model/model.js';
import { Counter, type Registry } from 'prom-client';
import { agentEventDirs, BpfEventReader, EVENT_MAPS, type EventLoss } from '../observe/bpf-event-reader.js';
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

/** How often the kernel's loss counters are read and the pinned rings looked for. */
const KERNEL_POLL_MS = 2000;

/**
 * Flows from the datapath's ring buffers into the observer. The rings exist
 * once the datapath objects are loaded (the policy object only once some
 * policy or the mesh needs it), so the reader opens again whenever the set of
 * pinned rings changes; the kernel's losses (ring full) and what its rate
 * limits suppressed are polled and reported, never hidden.
 */
export class KernelFlows {
  private reader?: BpfEventReader;
  private dirs = '';
  private seen: EventLoss = { lost: 0, dropsSuppressed: 0, flowsSuppressed: 0 };
  private readonly timer: NodeJS.Timeout;
  /** What the kernel's rate limits held back: sampling, not loss, but counted all the same. */
  private readonly suppressed: Counter<'kind'>;

  constructor(
    private readonly pinDir: string,
    private readonly nodeName: string,
    private readonly observer: FlowObserver,
    private readonly log: Logger,
    registry: Registry,
  ) {
    this.suppressed = new Counter({
      name: 'sluice_flow_events_suppressed_total',
      help: "Flow events the datapath's per-CPU rate limits held back (kind: flow or drop); ring-full losses are hubble_lost_events_total",
      labelNames: ['kind'],
      registers: [registry],
    });
    this.follow();
    this.timer = setInterval(() => this.follow(), KERNEL_POLL_MS);
    this.timer.unref();
  }

  private follow(): void {
    const dirs = agentEventDirs(this.pinDir).filter((d) => existsSync(join(d, EVENT_MAPS.ring)));
    const key = dirs.join('\n');
    if (key !== this.dirs) {
      this.reader?.close();
      this.reader = undefined;
      this.dirs = key;
      if (dirs.length)
        try {
          this.reader = BpfEventReader.open({ pinDirs: dirs, nodeName: this.nodeName, onFlows: (flows) => flows.forEach((f) => this.observer.record(f, hintsOf(f))) });
          this.seen = this.reader.loss();
          this.log.info({ dirs }, 'reading flow events from the datapath');
        } catch (e) {
          this.dirs = '';
          this.log.warn({ err: (e as Error).message }, 'flow events from the datapath cannot be read yet');
        }
    }
    if (!this.reader) return;
    const now = this.reader.loss();
    if (now.lost > this.seen.lost) this.observer.reportLost('PERF_EVENT_RING_BUFFER', now.lost - this.seen.lost);
    if (now.flowsSuppressed > this.seen.flowsSuppressed) this.suppressed.inc({ kind: 'flow' }, now.flowsSuppressed - this.seen.flowsSuppressed);
    if (now.dropsSuppressed > this.seen.dropsSuppressed) this.suppressed.inc({ kind: 'drop' }, now.dropsSuppressed - this.seen.dropsSuppressed);
    this.seen = now;
  }

  close(): void {
    clearInterval(this.timer);
    this.reader?.close();
    this.reader = undefined;
  }
}

/** A socket-LB translation names the VIP it came from, which names the Service. */
const hintsOf = (f: Flow): EnrichHints => (f.translatedFrom ? { originalDestination: f.translatedFrom } : {});
