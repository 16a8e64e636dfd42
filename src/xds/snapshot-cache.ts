import { EventEmitter } from 'node:events';
import { Snapshot } from './snapshot.js';

/** Where one ADS stream stands against the snapshots it has been given. */
export interface StreamStatus {
  readonly nodeId: string;
  /** The newest snapshot version the stream has sent everything for. */
  readonly reconciledVersion: number;
  /** Some response has been sent and neither ACKed nor NACKed yet. */
  readonly pending: boolean;
  /** The latest rejection still standing for some type (a later ACK of that type clears it). */
  readonly nack: NackInfo | undefined;
}

export interface NackInfo {
  readonly nodeId: string;
  readonly typeUrl: string;
  readonly version: number;
  readonly nonce: string;
  readonly message: string;
  readonly resourceNames: readonly string[];
}

export interface AckInfo {
  readonly nodeId: string;
  readonly typeUrl: string;
  readonly version: number;
  readonly nonce: string;
}

export interface CacheStream {
  readonly nodeId: string | undefined;
  status(): StreamStatus;
  onSnapshot(): void;
}

export class NackError extends Error {
  constructor(readonly nack: NackInfo) {
    super(`node ${nack.nodeId} rejected ${nack.typeUrl} version ${nack.version} (${nack.resourceNames.join(', ')}): ${nack.message}`);
    this.name = 'NackError';
  }
}

interface Waiter {
  nodeId: string;
  version: number;
  resolve(): void;
  reject(e: Error): void;
}

export interface SnapshotCacheEvents {
  ack: [AckInfo];
  nack: [NackInfo];
  snapshot: [string, number];
}

/** The key for the snapshot served to nodes that have none of their own. */
export const ANY_NODE = '*';

/**
 * Per-node snapshots with monotonic versions, the streams serving them, and
 * waiters for a node to ACK a version (BPF redirects are gated on that).
 */
export class SnapshotCache extends EventEmitter<SnapshotCacheEvents> {
  private readonly entries = new Map<string, { version: number; snapshot: Snapshot }>();
  private readonly streams = new Set<CacheStream>();
  private readonly waiters = new Set<Waiter>();
  private lastVersion = 0;

  /** Sets the snapshot for `nodeId` (or for every node without one: ANY_NODE) and returns its version. */
  setSnapshot(nodeId: string, snapshot: Snapshot): number {
    const version = ++this.lastVersion;
    this.entries.set(nodeId, { version, snapshot });
    this.emit('snapshot', nodeId, version);
    for (const s of this.streams) if (s.nodeId !== undefined && this.serves(nodeId, s.nodeId)) s.onSnapshot();
    this.checkWaiters();
    return version;
  }

  getSnapshot(nodeId: string): { version: number; snapshot: Snapshot } | undefined {
    return this.entries.get(nodeId) ?? this.entries.get(ANY_NODE);
  }

  private serves(entryNode: string, streamNode: string): boolean {
    return entryNode === streamNode || (entryNode === ANY_NODE && !this.entries.has(streamNode));
  }

  attach(stream: CacheStream): void {
    this.streams.add(stream);
  }

  detach(stream: CacheStream): void {
    this.streams.delete(stream);
    this.checkWaiters();
  }

  connectedNodes(): string[] {
    return [...new Set([...this.streams].map((s) => s.nodeId).filter((n): n is string => n !== undefined))];
  }

  /** Streams call this after every ACK, NACK or send. */
  statusChanged(): void {
    this.checkWaiters();
  }

  recordAck(info: AckInfo): void {
    this.emit('ack', info);
  }

  recordNack(info: NackInfo): void {
    this.emit('nack', info);
  }

  /**
   * Resolves once every stream of `nodeId` (at least one) has sent and had
   * ACKed all it has for `version` or later. Rejects with NackError if the node
   * rejects that config, or after `timeoutMs`.
   */
  waitForAck(nodeId: string, version: number, timeoutMs = 30_000): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        nodeId,
        version,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`node ${nodeId} did not ACK version ${version} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      this.waiters.add(waiter);
      this.checkWaiters();
    });
  }

  private checkWaiters(): void {
    for (const w of this.waiters) {
      const statuses = [...this.streams].filter((s) => s.nodeId === w.nodeId).map((s) => s.status());
      if (statuses.length === 0) continue;
      const reconciled = statuses.filter((s) => s.reconciledVersion >= w.version);
      const nack = reconciled.find((s) => s.nack)?.nack;
      if (nack) {
        this.waiters.delete(w);
        w.reject(new NackError(nack));
      } else if (reconciled.length === statuses.length && statuses.every((s) => !s.pending)) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }
}
