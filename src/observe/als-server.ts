// Envoy's Access Log Service (envoy.service.accesslog.v3, StreamAccessLogs):
// each Envoy stream sends its identifier (node, log name) once, then batches
// of entries; each entry becomes a flow in a bounded queue that the agent's
// consumers drain. A burst beyond the queue is dropped and counted, so a busy
// proxy costs the agent bounded memory and never silent loss.
import type { ServerReadableStream, sendUnaryData } from '@grpc/grpc-js';
import { Counter, type Registry } from 'prom-client';
import {
  AccessLogServiceService,
  type StreamAccessLogsMessage,
  type StreamAccessLogsResponse,
} from '../gen/envoy/service/accesslog/v3/als.js';
import type { Logger } from '../log.js';
import { parseAccessLogName, type AccessLogOrigin } from '../translate/access-log.js';
import { httpEntryToFlow, tcpEntryToFlow } from './als-flow.js';
import type { Flow } from './flow.js';

export const DEFAULT_ALS_QUEUE = 8192;

export interface AccessLogReceiverOptions {
  nodeName: string;
  log: Logger;
  /** Flows held for consumers at most; more are dropped and counted. */
  capacity?: number;
}

export interface AccessLogCounts {
  /** Entries Envoy sent. */
  received: number;
  /** Flows dropped because the queue was full. */
  lost: number;
  /** Entries that made no flow (no request or no addresses in them). */
  unmapped: number;
}

type Consumer = (flows: Flow[]) => void;
/** One flow or a count of lost ones: the shape the flow metrics and ring take (FlowEvent in main's flow-metrics.ts). */
export type AccessLogEvent = { flow: Flow } | { lost: { source: string; count: number } };
/** Hubble's LostEventSource for a queue between a producer and the observer. */
const LOST_SOURCE = 'OBSERVER_EVENTS_QUEUE';

export class AccessLogReceiver {
  private queue: Flow[] = [];
  private readonly capacity: number;
  private readonly consumers = new Set<Consumer>();
  private scheduled = false;
  /** Losses since the last drain, for event consumers. */
  private lostPending = 0;
  readonly counts: AccessLogCounts = { received: 0, lost: 0, unmapped: 0 };

  constructor(private readonly opts: AccessLogReceiverOptions) {
    this.capacity = opts.capacity ?? DEFAULT_ALS_QUEUE;
  }

  /** Exposes the counts on a Prometheus registry: entries received, and flows lost to the queue's bound. */
  registerMetrics(registry: Registry): void {
    const counts = this.counts;
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    counter('sluice_observe_access_log_entries_total', "Access log entries the node's Envoy streamed to the agent", () => counts.received);
    counter('sluice_observe_access_log_lost_total', 'Flows from access logs dropped because the queue to the flow consumers was full', () => counts.lost);
  }

  /** The service to add to the agent's gRPC server. */
  service() {
    return {
      definition: AccessLogServiceService,
      implementation: {
        streamAccessLogs: (call: ServerReadableStream<StreamAccessLogsMessage, StreamAccessLogsResponse>, done: sendUnaryData<StreamAccessLogsResponse>) =>
          this.onStream(call, done),
      },
    };
  }

  /** Receives every batch of flows from now on; returns the unsubscribe. */
  subscribe(fn: Consumer): () => void {
    this.consumers.add(fn);
    if (this.queue.length) this.schedule();
    return () => this.consumers.delete(fn);
  }

  /** The same flows one event at a time, with the queue's losses as lost events. */
  subscribeEvents(fn: (e: AccessLogEvent) => void): () => void {
    return this.subscribe((flows) => {
      for (const flow of flows) fn({ flow });
      if (this.lostPending) fn({ lost: { source: LOST_SOURCE, count: this.lostPending } });
    });
  }

  /** Adds flows from elsewhere or from a stream, within the cap. */
  push(flow: Flow): void {
    if (this.queue.length >= this.capacity) {
      this.counts.lost++;
      this.lostPending++;
      this.schedule();
      return;
    }
    this.queue.push(flow);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || !this.consumers.size) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = this.queue;
      this.queue = [];
      for (const c of this.consumers) {
        try {
          c(batch);
        } catch (e) {
          this.opts.log.warn({ err: e }, 'access log consumer failed');
        }
      }
      this.lostPending = 0;
    });
  }

  private onStream(call: ServerReadableStream<StreamAccessLogsMessage, StreamAccessLogsResponse>, done: sendUnaryData<StreamAccessLogsResponse>): void {
    let origin: AccessLogOrigin | undefined;
    let nodeName = this.opts.nodeName;
    call.on('data', (m: StreamAccessLogsMessage) => {
      if (m.identifier) {
        origin = parseAccessLogName(m.identifier.logName);
        nodeName = this.opts.nodeName || m.identifier.node?.id || nodeName;
        this.opts.log.debug({ logName: m.identifier.logName, node: m.identifier.node?.id }, 'access log stream opened');
      }
      const take = (flow: Flow | undefined) => {
        this.counts.received++;
        if (flow) this.push(flow);
        else this.counts.unmapped++;
      };
      for (const e of m.httpLogs?.logEntry ?? []) take(httpEntryToFlow(e, origin, nodeName));
      for (const e of m.tcpLogs?.logEntry ?? []) take(tcpEntryToFlow(e, origin, nodeName));
    });
    // Envoy ends its streams only when it goes; an error is the connection gone, which it reopens.
    call.on('error', () => {});
    call.on('end', () => done(null, {}));
  }
}
