import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { dirname } from 'node:path';
import { Server, ServerCredentials, type ServerDuplexStream, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceService } from '../gen/envoy/service/discovery/v3/ads.js';
import type {
  DeltaDiscoveryRequest,
  DeltaDiscoveryResponse,
  DiscoveryRequest,
  DiscoveryResponse,
} from '../gen/envoy/service/discovery/v3/discovery.js';
import type { Logger } from '../log.js';
import { DeltaStream } from './delta-stream.js';
import type { SnapshotCache } from './snapshot-cache.js';
import { SotwStream } from './sotw-stream.js';
import { serializeDeltaDiscoveryResponse, serializeDiscoveryResponse } from './encoded-resources.js';

const ADS = AggregatedDiscoveryServiceService;
/** Responses carry their resources pre-encoded (see encoded-resources.ts). */
const ADS_SHARED_ENCODING = {
  ...ADS,
  streamAggregatedResources: { ...ADS.streamAggregatedResources, responseSerialize: serializeDiscoveryResponse },
  deltaAggregatedResources: { ...ADS.deltaAggregatedResources, responseSerialize: serializeDeltaDiscoveryResponse },
};

export const DEFAULT_SOCKET_PATH = '/var/run/sluice/xds.sock';
const SOCKET_MODE = 0o660;
/**
 * Connections the kernel queues for the unix socket until the agent accepts
 * them. A node's proxies reconnecting at once (an agent restart, 1,000 of
 * them sharing a node) overflow Node's default of 511, and each refused proxy
 * backs off for a second or more; the kernel still caps this at somaxconn.
 */
const SOCKET_BACKLOG = 4096;

export interface XdsServerOptions {
  cache: SnapshotCache;
  log: Logger;
  /** Unix socket to serve on; undefined serves none. */
  socketPath?: string;
  /** host:port to also serve on over TCP, e.g. 127.0.0.1:0. */
  tcpAddress?: string;
  /**
   * More services on the same sockets: what Envoy sends back to the agent
   * (access logs) reaches it over the cluster the bootstrap already has.
   */
  services?: { definition: ServiceDefinition; implementation: UntypedServiceImplementation }[];
}

export interface XdsServerAddresses {
  socketPath?: string;
  tcpPort?: number;
}

/** Refuses to delete anything but a stale socket at the path we are about to bind. */
export function clearStaleSocket(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  unlinkSync(path);
}

function bind(server: Server, address: string): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
}

/** ADS over gRPC, state-of-the-world and delta, on a unix socket and optionally TCP. */
export class XdsServer {
  private readonly server = new Server({ 'grpc.max_receive_message_length': 16 << 20 });
  private addresses: XdsServerAddresses = {};
  private socketListener: NetServer | undefined;

  constructor(private readonly opts: XdsServerOptions) {
    const { cache, log } = opts;
    this.server.addService(ADS_SHARED_ENCODING, {
      streamAggregatedResources: (call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) =>
        void new SotwStream(call, cache, log, 'sotw'),
      deltaAggregatedResources: (call: ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) =>
        void new DeltaStream(call, cache, log, 'delta'),
    });
    for (const s of opts.services ?? []) this.server.addService(s.definition, s.implementation);
  }

  async start(): Promise<XdsServerAddresses> {
    const { socketPath, tcpAddress, log } = this.opts;
    if (socketPath) {
      mkdirSync(dirname(socketPath), { recursive: true, mode: 0o750 });
      clearStaleSocket(socketPath);
      await this.listenUnix(socketPath);
      chmodSync(socketPath, SOCKET_MODE);
      this.addresses.socketPath = socketPath;
    }
    if (tcpAddress) this.addresses.tcpPort = await bind(this.server, tcpAddress);
    if (!socketPath && !tcpAddress) throw new Error('xDS server needs a unix socket path or a TCP address');
    log.info(this.addresses, 'xDS server listening');
    return this.addresses;
  }

  /** grpc-js binds without a backlog, so the socket is ours and its connections are handed over. */
  private async listenUnix(path: string): Promise<void> {
    const injector = this.server.createConnectionInjector(ServerCredentials.createInsecure());
    const listener = createServer((socket) => injector.injectConnection(socket));
    // Accepting can fail (out of file descriptors): the client retries; the agent stays up.
    listener.on('error', (e) => this.opts.log.warn({ err: e }, 'xDS socket accept failed'));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ path, backlog: SOCKET_BACKLOG }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.socketListener = listener;
  }

  async stop(): Promise<void> {
    this.socketListener?.close();
    // ADS streams live as long as their clients, so a graceful shutdown would wait forever.
    this.server.forceShutdown();
    if (this.addresses.socketPath) {
      try {
        clearStaleSocket(this.addresses.socketPath);
      } catch {
        /* already gone */
      }
    }
  }
}
