import type { ServerDuplexStream } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Node } from '../gen/envoy/config/core/v3/base.js';
import type { Status } from '../gen/google/rpc/status.js';
import type { Logger } from '../log.js';
import { APPLY_ORDER, isServedType, REMOVE_ORDER, waitsForEarlierTypes, type XdsTypeUrl } from '../resources/types.js';
import type { Snapshot } from './snapshot.js';
import type { TypeAck } from './ack-verdict.js';
import type { CacheStream, NackInfo, SnapshotCache, StreamStatus } from './snapshot-cache.js';

export const CONTROL_PLANE_ID = 'sluice';

interface InFlight {
  nonce: string;
  version: number;
  names: string[];
}

export interface TypeState extends TypeAck {
  /** The newest nonce sent for this type. */
  nonce: string | undefined;
  /** The one response of this type sent and not yet answered, if any. */
  inFlight: InFlight | undefined;
  nack: NackInfo | undefined;
  responded: boolean;
  currentThrough: number;
  ackedThrough: number;
}

interface AdsRequest {
  node: Node | undefined;
  typeUrl: string;
  responseNonce: string;
  errorDetail: Status | undefined;
}

/**
 * answer: ACK or NACK of the newest response; stale: answers an older one;
 * request: asks afresh (first request, or a repeat after the newest was answered,
 * as Envoy does when it re-creates a subscription, e.g. for a cluster it rebuilds).
 */
export type RequestKind = 'answer' | 'stale' | 'request';

export function newTypeState(): TypeState {
  return { nonce: undefined, inFlight: undefined, nack: undefined, responded: false, currentThrough: 0, ackedThrough: 0 };
}

/** Sends one response; called only when the stream may send. */
export type Send = (version: number) => void;

/**
 * What SotW and delta ADS share: node identity, nonces, telling ACK from NACK,
 * flow control and the order responses go out in, and reporting to the cache.
 * Subclasses decide what each response carries.
 *
 * Flow control: at most one response per type is in flight (sent, not yet
 * answered), and nothing is written while gRPC asks us to wait for 'drain'.
 * Snapshots that arrive meanwhile are not queued: when the client answers, the
 * stream is reconciled against the newest snapshot, so a client that stops
 * reading costs the agent at most one response per type, and a client that
 * resumes gets the latest state rather than the backlog.
 */
export abstract class AdsStream<Req extends AdsRequest, Res, S extends TypeState> implements CacheStream {
  nodeId: string | undefined;
  protected readonly types = new Map<XdsTypeUrl, S>();
  private nonces = 0;
  private closed = false;
  /** call.write() returned false: nothing more until 'drain'. */
  private blocked = false;
  protected readonly log: Logger;

  constructor(
    private readonly call: ServerDuplexStream<Req, Res>,
    protected readonly cache: SnapshotCache,
    log: Logger,
    protected readonly protocol: 'sotw' | 'delta',
  ) {
    this.log = log.child({ stream: protocol, peer: call.getPeer() });
    call.on('data', (req: Req) => this.onRequest(req));
    call.on('end', () => this.close('client ended the stream'));
    call.on('error', (e: Error) => this.close(e.message));
    call.on('cancelled', () => this.close('cancelled'));
    call.on('close', () => this.close('closed'));
    call.on('drain', () => {
      this.blocked = false;
      this.sync();
    });
  }

  protected abstract newState(): S;
  /** The subscription part of a request, for trace logs. */
  protected abstract describe(req: Req): object;
  /** Applies the request's subscription changes. */
  protected abstract subscribe(req: Req, st: S, fresh: boolean, kind: RequestKind): void;
  /**
   * What the snapshot adds to or changes in what the client holds of a type; for
   * full-state types of SotW, without removing anything yet. Undefined: nothing.
   */
  protected abstract upserts(typeUrl: XdsTypeUrl, st: S, snapshot: Snapshot): Send | undefined;
  /** What the client holds of a type that the snapshot no longer has. Undefined: nothing. */
  protected abstract removals(typeUrl: XdsTypeUrl, st: S, snapshot: Snapshot): Send | undefined;

  status(): StreamStatus {
    return { nodeId: this.nodeId ?? '', types: this.types };
  }

  onSnapshot(): void {
    this.sync();
  }

  private sync(): void {
    if (this.closed || this.nodeId === undefined) return;
    const current = this.cache.getSnapshot(this.nodeId);
    // When nothing could go out, the next answer or 'drain' reconciles against the newest snapshot.
    if (current && !this.blocked && this.someIdle()) this.reconcile(current.version, current.snapshot);
    // The request may have settled an ACK or NACK even when nothing went out.
    this.cache.statusChanged(this);
  }

  /** Some type has no response in flight, so a snapshot may have something to send. */
  private someIdle(): boolean {
    for (const st of this.types.values()) if (!st.inFlight) return true;
    return false;
  }

  private canSend(st: S): boolean {
    return !this.blocked && !st.inFlight;
  }

  /**
   * Make-before-break with one response per type in flight. Upserts go in
   * APPLY_ORDER; a type that has news but cannot send it yet (its previous
   * response is unanswered, or the transport is full) is "held", and from then
   * on listeners and routes wait too, so they never name a cluster the client
   * has not been sent. A response in flight is as good as delivered for this:
   * the client applies one stream's responses in the order they were sent.
   * Removals (REMOVE_ORDER) wait until every upsert of the snapshot has been
   * sent, so nothing is removed while something sent earlier may still point
   * at it; a full-state SotW type first gets the union of old and new and only
   * after the client answered that, the final set. Under a churn that adds
   * clusters faster than the client answers, the union keeps the old ones
   * a little longer, which costs memory in Envoy but never traffic.
   */
  private reconcile(version: number, snapshot: Snapshot): void {
    const dirty = new Set<XdsTypeUrl>();
    let held = false;
    for (const typeUrl of APPLY_ORDER) {
      const st = this.types.get(typeUrl);
      const send = st && this.upserts(typeUrl, st, snapshot);
      if (!send) continue;
      if (!this.canSend(st) || (held && waitsForEarlierTypes(typeUrl))) {
        held = true;
        dirty.add(typeUrl);
      } else send(version);
    }
    for (const typeUrl of REMOVE_ORDER) {
      const st = this.types.get(typeUrl);
      const send = st && !dirty.has(typeUrl) && this.removals(typeUrl, st, snapshot);
      if (!send) continue;
      if (held || !this.canSend(st)) {
        held = true;
        dirty.add(typeUrl);
      } else send(version);
    }
    // A type with nothing left to send is current for this version; if the
    // client has ACKed its newest response, it holds this version of it.
    for (const [typeUrl, st] of this.types) {
      if (dirty.has(typeUrl)) continue;
      st.currentThrough = version;
      if (!st.inFlight && !st.nack && st.responded) st.ackedThrough = version;
    }
  }

  private onRequest(req: Req): void {
    try {
      if (this.nodeId === undefined) {
        const id = req.node?.id;
        if (!id) {
          this.log.warn('ADS stream opened without node.id; closing it');
          this.call.emit('error', { code: GrpcStatus.INVALID_ARGUMENT, details: 'node.id is required' });
          return;
        }
        this.nodeId = id;
        this.log.info({ node: id, client: req.node?.userAgentName, version: req.node?.userAgentVersion }, 'ADS stream connected');
        this.cache.attach(this);
      }
      if (!isServedType(req.typeUrl)) {
        this.log.warn({ node: this.nodeId, type: req.typeUrl }, 'request for a type sluice does not serve');
        return;
      }
      this.log.trace({ node: this.nodeId, type: req.typeUrl, nonce: req.responseNonce, request: this.describe(req) }, 'request');
      const fresh = !this.types.has(req.typeUrl);
      const st = this.types.get(req.typeUrl) ?? this.newState();
      this.types.set(req.typeUrl, st);
      this.subscribe(req, st, fresh, this.handleAck(req, st));
      this.sync();
    } catch (e) {
      this.log.error({ err: e, node: this.nodeId }, 'failed to handle ADS request');
    }
  }

  private handleAck(req: Req, st: S): RequestKind {
    // A nonce this stream never sent for the type (a client reusing one from an
    // earlier stream) answers nothing here: the request asks afresh.
    if (!req.responseNonce || st.nonce === undefined) return 'request';
    const sent = st.inFlight?.nonce === req.responseNonce ? st.inFlight : undefined;
    if (sent) this.settle(req, st, sent);
    if (req.responseNonce !== st.nonce) return 'stale';
    return sent ? 'answer' : 'request';
  }

  private settle(req: Req, st: S, sent: InFlight): void {
    st.inFlight = undefined;
    const nodeId = this.nodeId!;
    const { version, names } = sent;
    if (req.errorDetail && (req.errorDetail.code !== 0 || req.errorDetail.message)) {
      st.nack = { nodeId, typeUrl: req.typeUrl, version, nonce: req.responseNonce, message: req.errorDetail.message, resourceNames: names };
      this.log.warn(
        { node: nodeId, type: req.typeUrl, version, resources: names, error: req.errorDetail.message },
        'NACK: Envoy rejected the config; it keeps its last accepted one',
      );
      this.cache.recordNack(st.nack);
    } else {
      st.nack = undefined;
      st.ackedThrough = st.currentThrough;
      this.log.debug({ node: nodeId, type: req.typeUrl, version }, 'ACK');
      this.cache.recordAck({ nodeId, typeUrl: req.typeUrl, version, nonce: req.responseNonce });
    }
  }

  protected send(st: S, version: number, names: string[], build: (nonce: string) => Res): void {
    const nonce = String(++this.nonces);
    st.nonce = nonce;
    st.inFlight = { nonce, version, names };
    st.responded = true;
    // A new response supersedes the rejected one; its own answer decides from here.
    st.nack = undefined;
    if (!this.call.write(build(nonce))) this.blocked = true;
  }

  private close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.nodeId !== undefined) {
      this.log.info({ node: this.nodeId, reason }, 'ADS stream closed');
      this.cache.detach(this);
    }
  }
}
