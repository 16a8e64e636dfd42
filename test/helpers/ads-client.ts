import * as grpc from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceClient } from '../../src/gen/envoy/service/discovery/v3/ads.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse } from '../../src/gen/envoy/service/discovery/v3/discovery.js';
import { DeltaDiscoveryRequest as DeltaReq, DiscoveryRequest as Req } from '../../src/gen/envoy/service/discovery/v3/discovery.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A bare ADS client: tests drive the protocol by hand and read every response in order. */
export class RawAds<Q, R> {
  readonly received: R[] = [];
  private waiters: (() => void)[] = [];
  private readonly listeners: ((r: R) => void)[] = [];
  constructor(private readonly stream: grpc.ClientDuplexStream<Q, R>) {
    stream.on('data', (r: R) => {
      this.received.push(r);
      for (const l of this.listeners) l(r);
      for (const w of this.waiters.splice(0)) w();
    });
    stream.on('error', () => undefined);
  }
  send(req: Q): void {
    this.stream.write(req);
  }
  /** Waits for the response number `n` (counting from 1) and returns it. */
  async nth(n: number, timeoutMs = 5000): Promise<R> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.received.length} responses, wanted ${n}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    return this.received[n - 1];
  }
  /** Calls `fn` with every response from now on, in order. */
  each(fn: (r: R) => void): void {
    this.listeners.push(fn);
  }
  /** Stops reading: gRPC flow control then holds the server's writes back. */
  pause(): void {
    this.stream.pause();
  }
  resume(): void {
    this.stream.resume();
  }
  close(): void {
    this.stream.cancel();
  }
}

export function adsClient(t: Teardown, socketPath: string): AggregatedDiscoveryServiceClient {
  const client = new AggregatedDiscoveryServiceClient(`unix:${socketPath}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  return client;
}

export function sotw(t: Teardown, client: AggregatedDiscoveryServiceClient): RawAds<DiscoveryRequest, DiscoveryResponse> {
  const s = new RawAds(client.streamAggregatedResources());
  t.teardown(() => s.close());
  return s;
}

export function delta(t: Teardown, client: AggregatedDiscoveryServiceClient): RawAds<DeltaDiscoveryRequest, DeltaDiscoveryResponse> {
  const s = new RawAds(client.deltaAggregatedResources());
  t.teardown(() => s.close());
  return s;
}

export const request = (p: Partial<DiscoveryRequest>): DiscoveryRequest => Req.fromPartial(p);
export const deltaRequest = (p: Partial<DeltaDiscoveryRequest>): DeltaDiscoveryRequest => DeltaReq.fromPartial(p);
