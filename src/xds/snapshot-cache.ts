import { EventEmitter } from 'node:events';
import { nodeVerdict, streamVerdict, type TypeAck } from './ack-verdict.js';
import { isFullStateType, SERVED_TYPES, TypeUrl } from './resource-types.js';
import { Snapshot } from './snapshot.js';

/** Where one ADS stream stands against the snapshots it has been given. */
export interface StreamStatus {
  readonly nodeId: string;
  /** Per type the stream subscribed to. */
  readonly types: ReadonlyMap<string, TypeAck>;
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
  /** A stream of this node came or went. */
  streams: [string];
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
    if (stream.nodeId !== undefined) this.emit('streams', stream.nodeId);
  }

  detach(stream: CacheStream): void {
    this.streams.delete(stream);
    this.checkWaiters();
    if (stream.nodeId !== undefined) this.emit('streams', stream.nodeId);
  }

  /** Some live stream of the node has ACKed listeners: it can take traffic steered to them. */
  holdsListeners(nodeId: string): boolean {
    return this.statusesOf(nodeId).some((s) => (s.types.get(TypeUrl.Listener)?.ackedThrough ?? 0) > 0);
  }

  private statusesOf(nodeId: string): StreamStatus[] {
    return [...this.streams].filter((s) => s.nodeId === nodeId).map((s) => s.status());
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
   * Resolves once some stream of `nodeId` has ACKed `version` (or a later one
   * with the same content) of every type it subscribed to, listeners and
   * clusters included when the snapshot has any. Rejects with NackError once
   * every stream of the node has rejected it, or at `timeoutMs` if some stream
   * rejected it and none accepted it; otherwise rejects with a timeout.
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
        const nack = this.verdicts(nodeId, version).find((v) => v.kind === 'rejected');
        reject(nack?.kind === 'rejected' ? new NackError(nack.nack) : new Error(`node ${nodeId} did not ACK version ${version} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      this.waiters.add(waiter);
      this.checkWaiters();
    });
  }

  /**
   * Listeners and clusters are what every Envoy subscribes to as a whole; a
   * stream that has not taken them has not taken the snapshot.
   */
  private requiredTypes(nodeId: string): string[] {
    const snapshot = this.getSnapshot(nodeId)?.snapshot;
    return snapshot ? SERVED_TYPES.filter((t) => isFullStateType(t) && snapshot.get(t).size > 0) : [];
  }

  private verdicts(nodeId: string, version: number) {
    const required = this.requiredTypes(nodeId);
    return this.statusesOf(nodeId).map((s) => streamVerdict(s.types, version, required));
  }

  private checkWaiters(): void {
    for (const w of this.waiters) {
      const verdict = nodeVerdict(this.verdicts(w.nodeId, w.version));
      if (verdict.kind === 'accepted') {
        this.waiters.delete(w);
        w.resolve();
      } else if (verdict.kind === 'rejected') {
        this.waiters.delete(w);
        w.reject(new NackError(verdict.nack));
      }
    }
  }
}
