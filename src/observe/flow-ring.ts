// The agent's memory of recent flows: a fixed-size ring (the oldest flow makes
// room for the newest), so a busy node costs a bounded amount of memory, and
// live subscribers for follow mode. Counts what it has seen and what producers
// reported lost, so nothing is dropped without a number to show for it.
import type { Flow } from './flow.js';

/** Where lost events were lost: Hubble's LostEventSource names. */
export type LostSource = 'PERF_EVENT_RING_BUFFER' | 'OBSERVER_EVENTS_QUEUE' | 'HUBBLE_RING_BUFFER';

export type RingEvent = { flow: Flow } | { lost: { source: LostSource; count: number } };

export interface RingStats {
  numFlows: number;
  maxFlows: number;
  /** Flows pushed since start (each counts once, aggregated ones included as one). */
  seenFlows: number;
  /** Events producers or slow readers lost, by source. */
  lost: Record<LostSource, number>;
}

export class FlowRing {
  private readonly slots: (Flow | undefined)[];
  private next = 0;
  private seen = 0;
  private readonly lostBy: Record<LostSource, number> = { PERF_EVENT_RING_BUFFER: 0, OBSERVER_EVENTS_QUEUE: 0, HUBBLE_RING_BUFFER: 0 };
  private readonly listeners = new Set<(e: RingEvent) => void>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`flow ring capacity must be a positive integer, got ${capacity}`);
    this.slots = new Array(capacity);
  }

  push(flow: Flow): void {
    this.slots[this.next % this.capacity] = flow;
    this.next++;
    this.seen++;
    this.tell({ flow });
  }

  /** A producer (the BPF ring buffer reader, say) lost `count` events; followers hear of it too. */
  reportLost(source: LostSource, count: number): void {
    if (count <= 0) return;
    this.lostBy[source] += count;
    this.tell({ lost: { source, count } });
  }

  /** A subscriber that throws is dropped: it must not fail the producer's push or the other subscribers. */
  private tell(e: RingEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        this.listeners.delete(l);
      }
    }
  }

  /** The flows held, oldest first. */
  flows(): Flow[] {
    const n = Math.min(this.next, this.capacity);
    const out = new Array<Flow>(n);
    const start = this.next - n;
    for (let i = 0; i < n; i++) out[i] = this.slots[(start + i) % this.capacity]!;
    return out;
  }

  /**
   * Every event from now on. Take flows() and subscribe in the same tick and
   * a follower misses nothing between history and live.
   */
  subscribe(listener: (e: RingEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  stats(): RingStats {
    return { numFlows: Math.min(this.next, this.capacity), maxFlows: this.capacity, seenFlows: this.seen, lost: { ...this.lostBy } };
  }
}
