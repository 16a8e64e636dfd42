import { EventEmitter } from 'node:events';
import { streamVerdict, VerdictTally, type TypeAck } from './ack-verdict.js';
import { isFullStateType, SERVED_TYPES, TypeUrl } from '../resources/types.js';
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
  /** Each stream's verdict as of its last status change, so one stream's change costs one verdict. */
  verdicts: VerdictTally<CacheStream>;
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
  private readonly streamsByNode = new Map<string, Set<CacheStream>>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** Per node, its streams that have ACKed listeners: asked on every stream that comes or goes. */
  private readonly listenerHolders = new Map<string, Set<CacheStream>>();
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
    if (stream.nodeId === undefined) return;
    const of = this.streamsByNode.get(stream.nodeId) ?? new Set();
    this.streamsByNode.set(stream.nodeId, of.add(stream));
    this.statusChanged(stream);
    this.emit('streams', stream.nodeId);
  }

  detach(stream: CacheStream): void {
    this.streams.delete(stream);
    if (stream.nodeId === undefined) return;
    const of = this.streamsByNode.get(stream.nodeId);
    of?.delete(stream);
    if (of?.size === 0) this.streamsByNode.delete(stream.nodeId);
    this.setHoldsListeners(stream.nodeId, stream, false);
    for (const w of this.waiters.get(stream.nodeId) ?? []) {
      w.verdicts.delete(stream);
      this.decide(w);
    }
    this.emit('streams', stream.nodeId);
  }

  /** Some live stream of the node has ACKed listeners: it can take traffic steered to them. */
  holdsListeners(nodeId: string): boolean {
    return (this.listenerHolders.get(nodeId)?.size ?? 0) > 0;
  }

  private setHoldsListeners(nodeId: string, stream: CacheStream, holds: boolean): void {
    let of = this.listenerHolders.get(nodeId);
    if (holds) {
      if (!of) this.listenerHolders.set(nodeId, (of = new Set()));
      of.add(stream);
    } else if (of?.delete(stream) && of.size === 0) this.listenerHolders.delete(nodeId);
  }

  private statusesOf(nodeId: string): StreamStatus[] {
    return [...(this.streamsByNode.get(nodeId) ?? [])].map((s) => s.status());
  }

  connectedNodes(): string[] {
    return [...this.streamsByNode.keys()];
  }

  /**
   * A stream calls this after every request it handled and every send. Only the
   * waiters of its node can be affected, and only through its own verdict.
   */
  statusChanged(stream: CacheStream): void {
    if (stream.nodeId === undefined || !this.streams.has(stream)) return;
    const { types } = stream.status();
    this.setHoldsListeners(stream.nodeId, stream, (types.get(TypeUrl.Listener)?.ackedThrough ?? 0) > 0);
    const waiters = this.waiters.get(stream.nodeId);
    if (!waiters?.size) return;
    const required = this.requiredTypes(stream.nodeId);
    for (const w of waiters) {
      w.verdicts.set(stream, streamVerdict(types, w.version, required));
      this.decide(w);
    }
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
        verdicts: new VerdictTally(),
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
        this.dropWaiter(waiter);
        const nack = this.verdicts(nodeId, version).find((v) => v.kind === 'rejected');
        reject(nack?.kind === 'rejected' ? new NackError(nack.nack) : new Error(`node ${nodeId} did not ACK version ${version} within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref?.();
      const of = this.waiters.get(nodeId) ?? new Set();
      this.waiters.set(nodeId, of.add(waiter));
      this.recheck(waiter);
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

  /** After a snapshot, which may change what every stream of a node must hold. */
  private checkWaiters(): void {
    for (const of of this.waiters.values()) for (const w of of) this.recheck(w);
  }

  private recheck(w: Waiter): void {
    const required = this.requiredTypes(w.nodeId);
    w.verdicts.clear();
    for (const s of this.streamsByNode.get(w.nodeId) ?? []) {
      w.verdicts.set(s, streamVerdict(s.status().types, w.version, required));
      // One stream's acceptance decides: the others need not be looked at (a node may have a thousand).
      if (w.verdicts.verdict().kind === 'accepted') break;
    }
    this.decide(w);
  }

  private decide(w: Waiter): void {
    const verdict = w.verdicts.verdict();
    if (verdict.kind === 'accepted') {
      this.dropWaiter(w);
      w.resolve();
    } else if (verdict.kind === 'rejected') {
      this.dropWaiter(w);
      w.reject(new NackError(verdict.nack));
    }
  }

  private dropWaiter(w: Waiter): void {
    const of = this.waiters.get(w.nodeId);
    of?.delete(w);
    if (of?.size === 0) this.waiters.delete(w.nodeId);
  }
}
