// Hubble's Observer gRPC service over the flow ring, so the real `hubble`
// CLI (and `sluice observe`) read sluice's flows: GetFlows with filters,
// last/first N, since/until and follow; ServerStatus; GetNodes and
// GetNamespaces as a one-node Relay would answer them. Served on a unix
// socket, and on TCP when asked.
import { rmSync } from 'node:fs';
import { Server, ServerCredentials, status, type ServerWritableStream } from '@grpc/grpc-js';
import { LostEventSource } from '../gen/hubble/flow/flow.js';
import type { Timestamp } from '../gen/hubble/google/protobuf/timestamp.js';
import { ObserverService, type GetFlowsRequest, type GetFlowsResponse, type ObserverServer } from '../gen/hubble/observer/observer.js';
import { NodeState } from '../gen/hubble/relay/relay.js';
import type { Flow } from './flow.js';
import { compileFieldMask, type FlowMask } from './field-mask.js';
import { compileFilters, FilterError } from './flow-filter.js';
import { timestampOf, toProtoFlow } from './flow-proto.js';
import type { FlowRing, LostSource, RingEvent } from './flow-ring.js';

/** Where the agent serves the Observer API by default: beside its API socket, as Cilium serves hubble.sock. */
export const DEFAULT_OBSERVER_SOCKET = '/var/run/sluice/hubble.sock';

export interface ObserverOptions {
  ring: FlowRing;
  nodeName: string;
  version?: string;
  /** How many live events one slow follower may have queued before they count as lost; bounds memory per client. */
  maxPendingPerClient?: number;
  now?: () => bigint;
}

const nowNs = () => BigInt(Date.now()) * 1_000_000n;
const tsNs = (t: Timestamp | undefined) => (t ? BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nanos) : undefined);

function flowResponse(f: Flow, mask?: FlowMask): GetFlowsResponse {
  const flow = toProtoFlow(f);
  return { flow: mask ? mask(flow) : flow, nodeName: f.nodeName, time: timestampOf(f.timeNs), nodeStatus: undefined, lostEvents: undefined };
}

function lostResponse(source: LostSource, count: number, nodeName: string, at: bigint): GetFlowsResponse {
  return {
    lostEvents: { source: LostEventSource[source], numEventsLost: String(count), cpu: undefined, first: undefined, last: undefined },
    nodeName,
    time: timestampOf(at),
    flow: undefined,
    nodeStatus: undefined,
  };
}

/** The history a request asks for: the window, then the first or last N of what passes the filters. */
export function selectHistory(flows: readonly Flow[], req: GetFlowsRequest, pass: (f: Flow) => boolean, now: bigint): Flow[] {
  const since = tsNs(req.since);
  // Hubble ends a since-query at the time of the request unless told otherwise or following.
  const until = tsNs(req.until) ?? (since !== undefined && !req.follow ? now : undefined);
  const number = BigInt(req.number || '0');
  if (number === 0n && since === undefined && until === undefined) return [];
  const matching = flows.filter((f) => (since === undefined || f.timeNs >= since) && (until === undefined || f.timeNs <= until) && pass(f));
  if (number === 0n || number >= BigInt(matching.length)) return matching;
  return req.first ? matching.slice(0, Number(number)) : matching.slice(matching.length - Number(number));
}

class FlowStream {
  private history: Flow[] = [];
  private next = 0;
  private readonly live: GetFlowsResponse[] = [];
  private waiting = false;
  private done = false;
  private unsubscribe?: () => void;
  private mask?: FlowMask;

  constructor(
    private readonly call: ServerWritableStream<GetFlowsRequest, GetFlowsResponse>,
    private readonly o: Required<ObserverOptions>,
  ) {}

  start(): void {
    try {
      this.begin();
    } catch (e) {
      this.fail(e);
    }
  }

  private begin(): void {
    const req = this.call.request;
    if (req.first && req.follow) throw new FilterError('cannot set both first and follow');
    const pass = compileFilters(req.whitelist, req.blacklist);
    this.mask = compileFieldMask(req.fieldMask);
    const since = tsNs(req.since);
    // History and subscription in one tick: nothing pushed in between is missed.
    this.history = selectHistory(this.o.ring.flows(), req, pass, this.o.now());
    if (req.follow && !req.until) {
      this.unsubscribe = this.o.ring.subscribe((e: RingEvent) => {
        try {
          if ('flow' in e) {
            if ((since === undefined || e.flow.timeNs >= since) && pass(e.flow)) this.enqueue(flowResponse(e.flow, this.mask));
          } else this.enqueue(lostResponse(e.lost.source, e.lost.count, this.o.nodeName, this.o.now()));
        } catch (err) {
          this.fail(err);
        }
      });
      this.call.on('cancelled', () => this.stop());
      this.call.on('close', () => this.stop());
      this.call.on('error', () => this.stop());
    }
    this.pump();
  }

  /** A refused request is the client's error; anything else ends this stream alone, never the agent. */
  private fail(e: unknown): void {
    if (this.done) return;
    this.stop();
    const details = e instanceof Error ? e.message : String(e);
    this.call.emit('error', { code: e instanceof FilterError ? status.INVALID_ARGUMENT : status.INTERNAL, details });
  }

  private stop(): void {
    this.done = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  private enqueue(r: GetFlowsResponse): void {
    if (this.done) return;
    if (this.live.length >= this.o.maxPendingPerClient) {
      // One lost-events notice where the gap is, counting up while the reader stays behind.
      const last = this.live[this.live.length - 1].lostEvents;
      if (last?.source === LostEventSource.HUBBLE_RING_BUFFER) last.numEventsLost = String(BigInt(last.numEventsLost) + 1n);
      else this.live.push(lostResponse('HUBBLE_RING_BUFFER', 1, this.o.nodeName, this.o.now()));
      return;
    }
    this.live.push(r);
    if (!this.waiting) this.pump();
  }

  /** Writes until grpc-js asks us to wait; 'drain' resumes. Memory stays bounded by the live queue's cap. */
  private pump(): void {
    try {
      this.write();
    } catch (e) {
      this.fail(e);
    }
  }

  private write(): void {
    while (!this.done) {
      let r: GetFlowsResponse | undefined;
      if (this.next < this.history.length) r = flowResponse(this.history[this.next++], this.mask);
      else r = this.live.shift();
      if (!r) break;
      if (!this.call.write(r)) {
        this.waiting = true;
        this.call.once('drain', () => {
          this.waiting = false;
          this.pump();
        });
        return;
      }
    }
    if (!this.unsubscribe && !this.done && this.next >= this.history.length) {
      this.done = true;
      this.call.end();
    }
  }
}

const unimplemented = (what: string) => (call: { emit(e: 'error', err: object): void }) =>
  call.emit('error', { code: status.UNIMPLEMENTED, details: `${what} is not served by sluice; it serves flows` });

export function observerService(opts: ObserverOptions): ObserverServer {
  const o: Required<ObserverOptions> = { version: 'sluice', maxPendingPerClient: 4096, now: nowNs, ...opts };
  const startedAt = o.now();
  const counts = () => {
    const s = o.ring.stats();
    return { numFlows: String(s.numFlows), maxFlows: String(s.maxFlows), seenFlows: String(s.seenFlows), uptimeNs: String(o.now() - startedAt) };
  };
  return {
    getFlows: (call) => new FlowStream(call, o).start(),
    getAgentEvents: unimplemented('GetAgentEvents'),
    getDebugEvents: unimplemented('GetDebugEvents'),
    serverStatus: (_call, cb) => {
      const now = o.now();
      const lastMinute = o.ring.flows().filter((f) => f.timeNs > now - 60_000_000_000n).length;
      cb(null, { ...counts(), numConnectedNodes: 1, numUnavailableNodes: 0, unavailableNodes: [], version: o.version, flowsRate: lastMinute / 60 });
    },
    getNodes: (_call, cb) => {
      cb(null, { nodes: [{ name: o.nodeName, version: o.version, address: '', state: NodeState.NODE_CONNECTED, tls: undefined, ...counts() }] });
    },
    getNamespaces: (_call, cb) => {
      const seen = new Set<string>();
      for (const f of o.ring.flows()) for (const ep of [f.source, f.destination]) if (ep?.namespace) seen.add(ep.namespace);
      cb(null, { namespaces: [...seen].sort().map((namespace) => ({ cluster: '', namespace })) });
    },
  };
}

/**
 * gRPC's standard health check, which `hubble status` asks before
 * ServerStatus. Its one-field messages are encoded by hand rather than
 * generated: the request's service name is ignored, and the answer is always
 * SERVING (field 1, varint 1) while the server is up.
 */
const HealthService = {
  check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (v: Buffer) => v,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (v: Buffer) => v,
    responseDeserialize: (b: Buffer) => b,
  },
} as const;
const SERVING = Buffer.from([0x08, 0x01]);

export interface ObserverServerHandle {
  /** "unix:///path" and, when asked, "host:port" with the port bound. */
  addresses: string[];
  close(): Promise<void>;
}

/** Serves the Observer API on a unix socket (a stale one is replaced) and optionally on TCP ("127.0.0.1:4245"). */
export async function startObserverServer(opts: ObserverOptions & { socket: string; tcp?: string }): Promise<ObserverServerHandle> {
  const server = new Server();
  server.addService(ObserverService, observerService(opts));
  server.addService(HealthService, { check: (_call: unknown, cb: (e: null, v: Buffer) => void) => cb(null, SERVING) });
  rmSync(opts.socket, { force: true });
  const bind = (addr: string) =>
    new Promise<number>((resolve, reject) => server.bindAsync(addr, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  const addresses = [`unix://${opts.socket}`];
  await bind(`unix://${opts.socket}`);
  if (opts.tcp) {
    const port = await bind(opts.tcp);
    addresses.push(`${opts.tcp.slice(0, opts.tcp.lastIndexOf(':'))}:${port}`);
  }
  return {
    addresses,
    close: () =>
      new Promise<void>((resolve) => {
        // Followers never end by themselves: give them a moment, then cut them off.
        const t = setTimeout(() => server.forceShutdown(), 1000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}
