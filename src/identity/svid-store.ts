// The node's current X.509-SVIDs, one per wanted workload identity, each
// re-issued at half its lifetime. A failed re-issue keeps the old SVID in
// service until it expires and retries with backoff: a CA hiccup must not
// take identities away from running workloads.
import type { Logger } from '../log.js';
import type { X509Svid } from './types.js';

export interface X509Issuer {
  issueX509Svid(spiffeId: string, ttlSeconds: number): Promise<X509Svid>;
}

export interface WorkloadSvidsOptions {
  ca: X509Issuer;
  ttlSeconds?: number;
  log?: Logger;
  now?: () => Date;
  /** First retry delay after a failed issuance; doubles per failure up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
}

interface Entry {
  svid?: X509Svid;
  timer?: NodeJS.Timeout;
  failures: number;
  issuedOnce: boolean;
}

export class WorkloadSvids {
  private readonly ca: X509Issuer;
  private readonly ttlSeconds: number;
  private readonly log?: Logger;
  private readonly now: () => Date;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<(changed: string[]) => void>();
  private readyWaiters: (() => void)[] = [];
  private stopped = false;

  constructor(opts: WorkloadSvidsOptions) {
    this.ca = opts.ca;
    this.ttlSeconds = opts.ttlSeconds ?? 3600;
    this.log = opts.log;
    this.now = opts.now ?? (() => new Date());
    this.retryMs = opts.retryMs ?? 250;
    this.maxRetryMs = opts.maxRetryMs ?? 30_000;
  }

  /** Issues SVIDs for IDs not yet held and drops those no longer wanted. */
  setWanted(spiffeIds: Iterable<string>): void {
    if (this.stopped) return;
    const wanted = new Set(spiffeIds);
    const dropped: string[] = [];
    for (const [id, entry] of this.entries) {
      if (wanted.has(id)) continue;
      clearTimeout(entry.timer);
      this.entries.delete(id);
      if (entry.svid) dropped.push(id);
    }
    for (const id of wanted) {
      if (this.entries.has(id)) continue;
      const entry: Entry = { failures: 0, issuedOnce: false };
      this.entries.set(id, entry);
      void this.issue(id, entry);
    }
    if (dropped.length) this.emit(dropped);
    this.checkReady();
  }

  /** The SVID currently served for `spiffeId`, never an expired one. */
  get(spiffeId: string): X509Svid | undefined {
    const svid = this.entries.get(spiffeId)?.svid;
    return svid && svid.notAfter.getTime() > this.now().getTime() ? svid : undefined;
  }

  wanted(): string[] {
    return [...this.entries.keys()];
  }

  /** `cb` gets the IDs whose SVID was issued, replaced or dropped; returns the unsubscribe. */
  onChange(cb: (changed: string[]) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Resolves once every wanted ID has had an SVID issued (immediately if none are wanted). */
  ready(): Promise<void> {
    return new Promise((resolve) => {
      this.readyWaiters.push(resolve);
      this.checkReady();
    });
  }

  stop(): void {
    this.stopped = true;
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
    this.entries.clear();
    this.listeners.clear();
    this.checkReady();
  }

  private async issue(id: string, entry: Entry): Promise<void> {
    const started = this.now().getTime();
    let svid: X509Svid;
    try {
      svid = await this.ca.issueX509Svid(id, this.ttlSeconds);
    } catch (err) {
      if (this.entries.get(id) !== entry) return;
      this.failed(id, entry, err);
      return;
    }
    // Dropped (or dropped and wanted again) while issuing: that entry has its own issuance.
    if (this.entries.get(id) !== entry) return;
    entry.svid = svid;
    entry.failures = 0;
    entry.issuedOnce = true;
    // Half of what this SVID has left from now, not of notBefore..notAfter: notBefore is backdated for clock skew.
    const halfLife = Math.max(0, (svid.notAfter.getTime() - started) / 2);
    this.schedule(id, entry, halfLife);
    this.log?.debug({ spiffeId: id, serial: svid.serial, notAfter: svid.notAfter.toISOString() }, 'issued X.509-SVID');
    this.emit([id]);
    this.checkReady();
  }

  private failed(id: string, entry: Entry, err: unknown): void {
    entry.failures++;
    const delay = Math.min(this.maxRetryMs, this.retryMs * 2 ** (entry.failures - 1));
    const old = entry.svid;
    const expired = old !== undefined && old.notAfter.getTime() <= this.now().getTime();
    this.log?.warn(
      { spiffeId: id, failures: entry.failures, retryMs: delay, serving: old && !expired ? old.serial : null, err: (err as Error).message },
      'X.509-SVID issuance failed; keeping the current SVID until it expires',
    );
    if (expired) {
      entry.svid = undefined;
      this.emit([id]);
    }
    this.schedule(id, entry, delay);
  }

  private schedule(id: string, entry: Entry, delayMs: number): void {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => void this.issue(id, entry), delayMs);
    entry.timer.unref();
  }

  private emit(changed: string[]): void {
    for (const cb of [...this.listeners]) {
      try {
        cb(changed);
      } catch (err) {
        this.log?.error({ err: (err as Error).message }, 'SVID change listener threw');
      }
    }
  }

  private checkReady(): void {
    // stop() releases waiters too: nothing would ever be issued for them.
    if (!this.stopped && [...this.entries.values()].some((e) => !e.issuedOnce)) return;
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of waiters) w();
  }
}
