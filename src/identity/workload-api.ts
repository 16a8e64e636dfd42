// The SPIFFE Workload API on a unix socket (gRPC). Callers are attested by
// the kernel's record of the connecting process (SO_PEERCRED) at accept time:
// grpc-js cannot tell a handler which connection a call came on, so we accept
// connections ourselves, label each socket with a connection id in place of
// its (empty) remote address, and hand it to grpc-js; call.getPeer() then
// returns that id.
import { mkdirSync, chmodSync, lstatSync, rmSync } from 'node:fs';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  SpiffeWorkloadAPIService,
  type SpiffeWorkloadAPIServer,
  type X509SVIDResponse,
  type X509BundlesResponse,
  type JWTBundlesResponse,
} from '../gen/spiffe/workload.js';
import { silentLogger, type Logger } from '../log.js';
import { attestPid, type Attestation, type PodIdentity } from './attest.js';
import { peerCred } from './peer-cred.js';
import type { JwtSvid, TrustBundle, X509Svid } from './types.js';
import { bundleDer, svidChainDer, svidKeyDer } from './der.js';

/** What the Workload API needs of the CA. */
export interface WorkloadIdentitySource {
  /** The current SVID of this identity, if one is issued yet. */
  x509Svid(spiffeId: string): X509Svid | undefined;
  bundle(): TrustBundle;
  issueJwtSvid(spiffeId: string, audience: string[]): Promise<JwtSvid>;
  /** Rejects when the token does not validate for this audience. */
  validateJwtSvid(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }>;
  /** Called with the SPIFFE IDs whose SVID changed, or 'bundle'; returns an unsubscribe. */
  onChange(cb: (changed: string[] | 'bundle') => void): () => void;
}

export interface WorkloadApiOptions {
  socketPath: string;
  source: WorkloadIdentitySource;
  /** The pod of this node with this uid, looked up at each call so a deleted pod loses its identity. */
  podByUid(uid: string): PodIdentity | undefined;
  log?: Logger;
}

interface Connection {
  pid: number;
  attestation: Attestation;
}

/** Where the agent serves the API by default; the chart mounts its directory into workloads as a hostPath. */
export const DEFAULT_WORKLOAD_API_SOCKET = '/run/sluice/workload/socket';

const HEADER = 'workload.spiffe.io';
type Failure = { code: grpc.status; details: string };

export class WorkloadApiServer {
  private readonly grpcServer = new grpc.Server();
  private readonly connections = new Map<string, Connection>();
  private readonly sockets = new Set<Socket>();
  private netServer: NetServer | undefined;
  private seq = 0;
  private readonly log: Logger;

  constructor(private readonly opts: WorkloadApiOptions) {
    this.log = opts.log ?? silentLogger;
    this.grpcServer.addService(SpiffeWorkloadAPIService, this.handlers());
  }

  async start(): Promise<void> {
    const path = this.opts.socketPath;
    mkdirSync(dirname(path), { recursive: true });
    // A socket left by a previous run would make listen fail; anything else at the path is not ours to remove.
    try {
      if (lstatSync(path).isSocket()) rmSync(path);
    } catch {
      /* nothing there */
    }
    const injector = this.grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const server = createServer((socket) => this.accept(socket, injector));
    this.netServer = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // Workloads connect under any uid; who they are comes from attestation, not file permissions.
    chmodSync(path, 0o666);
    server.on('error', (err) => this.log.error({ err }, 'workload API socket error'));
    this.log.info({ socket: path }, 'workload API listening');
  }

  async close(): Promise<void> {
    const server = this.netServer;
    this.netServer = undefined;
    // net.Server.close waits for every connection to end; streams never do by themselves.
    for (const s of this.sockets) s.destroy();
    this.grpcServer.forceShutdown();
    if (server) await new Promise<void>((r) => server.close(() => r()));
    rmSync(this.opts.socketPath, { force: true });
  }

  private accept(socket: Socket, injector: { injectConnection(s: Socket): void }): void {
    const id = `workload-api-conn-${++this.seq}`;
    let conn: Connection;
    try {
      const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
      if (typeof fd !== 'number' || fd < 0) throw new Error('accepted socket has no fd');
      const cred = peerCred(fd);
      conn = { pid: cred.pid, attestation: attestPid(cred.pid) };
    } catch (e) {
      conn = { pid: 0, attestation: { error: `peer credentials: ${(e as Error).message}` } };
    }
    this.connections.set(id, conn);
    this.sockets.add(socket);
    socket.once('close', () => {
      this.connections.delete(id);
      this.sockets.delete(socket);
    });
    // An own property shadows net.Socket's getter; grpc-js reports it as the call's peer.
    Object.defineProperty(socket, 'remoteAddress', { value: id, configurable: true });
    this.log.debug({ conn: id, pid: conn.pid, attestation: conn.attestation }, 'workload API connection');
    injector.injectConnection(socket);
  }

  /** Who is calling, or why the call must fail. */
  private caller(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): PodIdentity | Failure {
    const conn = this.connections.get(call.getPeer());
    if (!conn) return { code: grpc.status.PERMISSION_DENIED, details: 'caller could not be attested: unknown connection' };
    if ('error' in conn.attestation) return { code: grpc.status.PERMISSION_DENIED, details: `caller (pid ${conn.pid}) could not be attested: ${conn.attestation.error}` };
    const pod = this.opts.podByUid(conn.attestation.podUid);
    if (!pod) return { code: grpc.status.PERMISSION_DENIED, details: `caller (pid ${conn.pid}) is in pod ${conn.attestation.podUid}, which is not a pod of this node` };
    return pod;
  }

  private handlers(): SpiffeWorkloadAPIServer {
    const src = this.opts.source;
    // Header first (the spec's guard against SSRF-style relaying), then the request, then the caller.
    const admit = (call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>, badRequest?: string): PodIdentity | Failure => {
      if (call.metadata.get(HEADER)[0] !== 'true') return { code: grpc.status.INVALID_ARGUMENT, details: `security header missing from request: ${HEADER}: true` };
      if (badRequest) return { code: grpc.status.INVALID_ARGUMENT, details: badRequest };
      const who = this.caller(call);
      if ('code' in who) this.log.info({ peer: call.getPeer(), reason: who.details }, 'workload API call refused');
      return who;
    };
    const stream = <Req, Res>(build: (who: PodIdentity) => { key: () => string; message: () => Res | undefined }) =>
      (call: grpc.ServerWritableStream<Req, Res>) => {
        const who = admit(call as grpc.ServerWritableStream<unknown, unknown>);
        if ('code' in who) return void call.emit('error', who);
        const s = build(who);
        let last: string | undefined;
        const push = () => {
          const message = s.message();
          if (message === undefined) return; // not issued yet: the change that issues it pushes
          const key = s.key();
          if (key === last) return;
          last = key;
          call.write(message);
        };
        const off = src.onChange(() => push());
        call.once('cancelled', off);
        call.once('close', off);
        call.once('error', off);
        push();
      };
    const notImplemented = (call: grpc.ServerWritableStream<unknown, unknown>) =>
      void call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'WIT-SVIDs are not served' });

    return {
      fetchX509Svid: stream<unknown, X509SVIDResponse>((who) => ({
        key: () => `${src.x509Svid(who.spiffeId)?.serial}/${src.bundle().sequence}`,
        message: () => {
          const svid = src.x509Svid(who.spiffeId);
          if (!svid) return undefined;
          const bundle = src.bundle();
          return {
            svids: [{ spiffeId: svid.spiffeId, x509Svid: svidChainDer(svid), x509SvidKey: svidKeyDer(svid), bundle: bundleDer(bundle), hint: '' }],
            crl: [],
            federatedBundles: {},
          };
        },
      })),
      fetchX509Bundles: stream<unknown, X509BundlesResponse>(() => ({
        key: () => String(src.bundle().sequence),
        message: () => {
          const b = src.bundle();
          return { crl: [], bundles: { [`spiffe://${b.trustDomain}`]: bundleDer(b) } };
        },
      })),
      fetchJwtBundles: stream<unknown, JWTBundlesResponse>(() => ({
        key: () => String(src.bundle().sequence),
        message: () => {
          const b = src.bundle();
          return { bundles: { [`spiffe://${b.trustDomain}`]: Buffer.from(JSON.stringify(b.jwks)) } };
        },
      })),
      fetchJwtsvid: (call, callback) => {
        const aud = call.request.audience.filter((a) => a !== '');
        const who = admit(call, aud.length === 0 ? 'audience must be specified' : undefined);
        if ('code' in who) return callback(who);
        if (call.request.spiffeId && call.request.spiffeId !== who.spiffeId)
          return callback({ code: grpc.status.PERMISSION_DENIED, details: `caller ${who.spiffeId} may not have a JWT-SVID for ${call.request.spiffeId}` });
        src.issueJwtSvid(who.spiffeId, aud).then(
          (jwt) => callback(null, { svids: [{ spiffeId: jwt.spiffeId, svid: jwt.token, hint: '' }] }),
          (err) => {
            this.log.warn({ err, spiffeId: who.spiffeId }, 'issuing a JWT-SVID failed');
            callback({ code: grpc.status.UNAVAILABLE, details: 'could not issue a JWT-SVID' });
          },
        );
      },
      validateJwtsvid: (call, callback) => {
        const { audience, svid } = call.request;
        const who = admit(call, !audience ? 'audience must be specified' : !svid ? 'svid must be specified' : undefined);
        if ('code' in who) return callback(who);
        src.validateJwtSvid(svid, audience).then(
          (v) => callback(null, { spiffeId: v.spiffeId, claims: v.claims }),
          (err) => callback({ code: grpc.status.INVALID_ARGUMENT, details: `JWT-SVID does not validate: ${(err as Error).message}` }),
        );
      },
      fetchWitsvid: notImplemented,
      fetchWitBundles: notImplemented,
    };
  }
}
