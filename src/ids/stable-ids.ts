import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const DEFAULT_PROXY_PORT_RANGE: [number, number] = [13000, 13999];

/**
 * The kernel hands out ports in net.ipv4.ip_local_port_range to outgoing
 * connections; a proxy port in there can be taken by any client socket and
 * Envoy then fails to bind (seen in bench/cec-scale.mjs).
 */
export function ephemeralOverlap([lo, hi]: [number, number]): [number, number] | undefined {
  let eph: [number, number];
  try {
    const [a, b] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    eph = [a, b];
  } catch {
    return undefined;
  }
  return lo <= eph[1] && hi >= eph[0] ? eph : undefined;
}

/** No number of the range is free: the caller reports the object that asked and leaves it out. */
export class IdsExhausted extends Error {}

/**
 * Numbers from a range handed out by key, kept in a state file: node-local
 * proxy ports for listeners without an address, and the datapath's service
 * and backend ids. A key keeps its number until released, and across restarts
 * through the file, so Envoy's listeners and the BPF maps survive restarts.
 *
 * New numbers come from a cursor that only moves forward and wraps at the end
 * of the range. A released number therefore comes back as late as the range
 * allows, not at once: a number can outlive its key in places the owner does
 * not control (an LRU map entry naming a rev-NAT id, a listener Envoy is still
 * draining), and quick reuse would hand those to a stranger.
 */
export class StableIds {
  private readonly byKey = new Map<string, number>();
  private readonly used = new Set<number>();
  private cursor: number;

  constructor(
    private readonly stateFile: string | undefined,
    readonly range: [number, number] = DEFAULT_PROXY_PORT_RANGE,
  ) {
    this.cursor = range[0];
    if (!stateFile) return;
    let saved: Record<string, number> = {};
    try {
      saved = JSON.parse(readFileSync(stateFile, 'utf8'));
    } catch {
      /* first start, or unreadable: start afresh */
    }
    for (const [k, p] of Object.entries(saved)) if (Number.isInteger(p) && p >= range[0] && p <= range[1] && !this.used.has(p)) this.remember(k, p);
    // Without the cursor in the file, resume past the highest number held: released ones are still not first in line.
    let highest: number | undefined;
    for (const id of this.used) if (highest === undefined || id > highest) highest = id;
    if (highest !== undefined) this.cursor = this.step(highest);
  }

  private step(id: number): number {
    return id >= this.range[1] ? this.range[0] : id + 1;
  }

  private remember(key: string, id: number): void {
    this.byKey.set(key, id);
    this.used.add(id);
  }

  /** The key's number, if it has one, without taking a new one. */
  peek(key: string): number | undefined {
    return this.byKey.get(key);
  }

  keys(): IterableIterator<string> {
    return this.byKey.keys();
  }

  get size(): number {
    return this.byKey.size;
  }

  idFor(key: string): number {
    const known = this.byKey.get(key);
    if (known !== undefined) return known;
    const [lo, hi] = this.range;
    if (this.used.size >= hi - lo + 1) throw new IdsExhausted(`range ${lo}-${hi} is exhausted: all ${hi - lo + 1} numbers are in use`);
    let id = this.cursor;
    while (this.used.has(id)) id = this.step(id);
    this.cursor = this.step(id);
    this.remember(key, id);
    this.scheduleSave();
    return id;
  }

  /** Gives the key's number back; the caller has made sure nothing uses it any more. */
  release(key: string): number | undefined {
    const id = this.byKey.get(key);
    if (id === undefined) return undefined;
    this.byKey.delete(key);
    this.used.delete(id);
    this.scheduleSave();
    return id;
  }

  private saveQueued = false;

  /** One write per burst: a 10,000-service apply asks for ids 100,000 times in one go. */
  private scheduleSave(): void {
    if (!this.stateFile || this.saveQueued) return;
    this.saveQueued = true;
    queueMicrotask(() => this.save());
  }

  private save(): void {
    this.saveQueued = false;
    if (!this.stateFile) return;
    mkdirSync(dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.byKey), null, 1));
    renameSync(tmp, this.stateFile);
  }
}
