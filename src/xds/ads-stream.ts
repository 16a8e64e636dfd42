import type { ServerDuplexStream } from '@grpc/grpc-js';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { Node } from '../gen/envoy/config/core/v3/base.js';
import type { Status } from '../gen/google/rpc/status.js';
import type { Logger } from '../log.js';
import { isServedType, type XdsTypeUrl } from './resource-types.js';
import type { Snapshot } from './snapshot.js';
import type { CacheStream, NackInfo, SnapshotCache, StreamStatus } from './snapshot-cache.js';

export const CONTROL_PLANE_ID = 'sluice';

interface Outstanding {
  version: number;
  names: string[];
}

export interface TypeState {
  /** The newest nonce sent for this type. */
  nonce: string | undefined;
  /** Responses sent and not yet answered, by nonce: each delta response is applied on its own. */
  outstanding: Map<string, Outstanding>;
  nack: NackInfo | undefined;
  responded: boolean;
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
  return { nonce: undefined, outstanding: new Map(), nack: undefined, responded: false };
}

/**
 * What SotW and delta ADS share: node identity, nonces, telling ACK from NACK,
 * and reporting to the cache. Subclasses decide what to send.
 */
export abstract class AdsStream<Req extends AdsRequest, Res, S extends TypeState> implements CacheStream {
  nodeId: string | undefined;
  protected readonly types = new Map<XdsTypeUrl, S>();
  private reconciled = 0;
  private nonces = 0;
  private closed = false;
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
  }

  protected abstract newState(): S;
  /** The subscription part of a request, for trace logs. */
  protected abstract describe(req: Req): object;
  /** Applies the request's subscription changes. */
  protected abstract subscribe(req: Req, st: S, fresh: boolean, kind: RequestKind): void;
  /** Sends whatever the snapshot has that the client lacks. */
  protected abstract reconcile(current: { version: number; snapshot: Snapshot }): void;

  status(): StreamStatus {
    let pending = false;
    let nack: NackInfo | undefined;
    for (const st of this.types.values()) {
      pending ||= st.outstanding.size > 0;
      nack ??= st.nack;
    }
    return { nodeId: this.nodeId ?? '', reconciledVersion: this.reconciled, pending, nack };
  }

  onSnapshot(): void {
    this.sync();
  }

  private sync(): void {
    if (this.closed || this.nodeId === undefined) return;
    const current = this.cache.getSnapshot(this.nodeId);
    if (!current) return;
    this.reconcile(current);
    this.reconciled = current.version;
    this.cache.statusChanged();
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
    if (!req.responseNonce) return 'request';
    const sent = st.outstanding.get(req.responseNonce);
    if (sent) this.settle(req, st, sent);
    if (req.responseNonce !== st.nonce) return 'stale';
    return sent ? 'answer' : 'request';
  }

  private settle(req: Req, st: S, sent: Outstanding): void {
    st.outstanding.delete(req.responseNonce);
    // A client answers in order, so anything older is settled by this answer too.
    for (const n of st.outstanding.keys()) if (Number(n) < Number(req.responseNonce)) st.outstanding.delete(n);
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
      this.log.debug({ node: nodeId, type: req.typeUrl, version }, 'ACK');
      this.cache.recordAck({ nodeId, typeUrl: req.typeUrl, version, nonce: req.responseNonce });
    }
  }

  protected send(st: S, version: number, names: string[], build: (nonce: string) => Res): void {
    const nonce = String(++this.nonces);
    st.nonce = nonce;
    st.outstanding.set(nonce, { version, names });
    st.responded = true;
    // A new response supersedes the rejected one; its own answer decides from here.
    st.nack = undefined;
    this.call.write(build(nonce));
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
