import { createHash } from 'node:crypto';
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

/**
 * Numbers from a range handed out by key, kept in a state file: node-local
 * proxy ports for listeners without an address, and the datapath's service
 * and backend ids. A key keeps its number for as long as the file lives, so
 * Envoy's listeners and the BPF maps survive agent restarts unchanged.
 */
export class StableIds {
  private readonly byKey = new Map<string, number>();
  private readonly used = new Set<number>();

  constructor(
    private readonly stateFile: string | undefined,
    private readonly range: [number, number] = DEFAULT_PROXY_PORT_RANGE,
  ) {
    if (!stateFile) return;
    let saved: Record<string, number> = {};
    try {
      saved = JSON.parse(readFileSync(stateFile, 'utf8'));
    } catch {
      /* first start, or unreadable: start afresh */
    }
    for (const [k, p] of Object.entries(saved)) if (Number.isInteger(p) && p >= range[0] && p <= range[1] && !this.used.has(p)) this.remember(k, p);
  }

  private remember(key: string, id: number): void {
    this.byKey.set(key, id);
    this.used.add(id);
  }

  idFor(key: string): number {
    const known = this.byKey.get(key);
    if (known !== undefined) return known;
    const [lo, hi] = this.range;
    const size = hi - lo + 1;
    if (this.used.size >= size) throw new Error(`range ${lo}-${hi} is exhausted`);
    // Start from a hash of the key so that, even without the state file, ports rarely move.
    let id = lo + (createHash('sha256').update(key).digest().readUInt32BE(0) % size);
    while (this.used.has(id)) id = id === hi ? lo : id + 1;
    this.remember(key, id);
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
