// Node-local proxy ports for listeners without an address: taken when a
// listener first asks, given back once no listener the node's Envoy is
// served or still holds has that name.
import { IdsExhausted, StableIds } from '../ids/stable-ids.js';

export class ProxyPorts {
  private readonly pool: StableIds;
  /** Listener names in the version the node's Envoy last accepted: their ports may still be bound. */
  private ackedListeners = new Set<string>();
  private published = new Set<string>();
  /** A listener went without a port since the last settle. */
  private short = false;
  /** The latest publish left a listener without a port. */
  private wanting = false;

  constructor(stateFile: string | undefined, range: [number, number]) {
    this.pool = new StableIds(stateFile, range);
  }

  /** The translation context's proxyPort: the key is the Listener's name. */
  readonly port = (listener: string): number => {
    try {
      return this.pool.idFor(listener);
    } catch (e) {
      if (!(e instanceof IdsExhausted)) throw e;
      this.short = true;
      const [lo, hi] = this.pool.range;
      throw new IdsExhausted(`no free node-local proxy port for listener "${listener}": all ${hi - lo + 1} of ${lo}-${hi} are taken; it gets one once another listener goes`);
    }
  };

  /**
   * After a publish, with the names of the Listeners it serves: releases the
   * ports of the rest. `short`: a listener went without a port, so translations
   * that met the shortage must not be reused; `retry`: and a port is now free.
   */
  settle(listeners: Iterable<string>): { short: boolean; retry: boolean } {
    this.published = new Set(listeners);
    const released = this.release();
    this.wanting = this.short;
    this.short = false;
    return { short: this.wanting, retry: this.wanting && released > 0 };
  }

  /**
   * settle() for a publish whose Listeners are those of the last one: nothing
   * more can be released, so the pool need not be walked.
   */
  settleUnchanged(): { short: boolean; retry: boolean } {
    this.wanting = this.short;
    this.short = false;
    return { short: this.wanting, retry: false };
  }

  /** The node's Envoy accepted a version with these Listeners; true when that freed a port a listener waits for. */
  acked(listeners: Set<string>): boolean {
    this.ackedListeners = listeners;
    return this.release() > 0 && this.wanting;
  }

  private release(): number {
    let n = 0;
    for (const key of [...this.pool.keys()])
      if (!this.published.has(key) && !this.ackedListeners.has(key)) {
        this.pool.release(key);
        n++;
      }
    return n;
  }
}
