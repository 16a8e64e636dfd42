import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { fromProtoJson } from '../proto/json.js';
import { ADMIN_CLUSTER, AGENT_CLUSTER } from '../translate/well-known.js';
import { DEFAULT_SOCKET_PATH } from '../xds/server.js';

const TEMPLATE = fileURLToPath(new URL('../../envoy/bootstrap.yaml', import.meta.url));

export type AdsFlavour = 'sotw' | 'delta';

export interface BootstrapOptions {
  nodeId: string;
  ads?: AdsFlavour;
  socketPath?: string;
  /** Envoy's admin API socket; by default envoy-admin.sock beside the xDS socket, in the directory both containers share. */
  adminSocket?: string;
  /** The 127.0.0.1 port that serves /ready and /server_info to probes; 0 lets the kernel choose (tests). */
  healthPort?: number;
}

/** The admin socket when none is given: beside the xDS socket. */
export function defaultAdminSocket(socketPath = DEFAULT_SOCKET_PATH): string {
  return join(dirname(socketPath), 'envoy-admin.sock');
}

/** The node's Envoy bootstrap as proto3 JSON, checked against the Bootstrap schema. */
export function renderBootstrap(opts: BootstrapOptions): Record<string, any> {
  const b = parse(readFileSync(TEMPLATE, 'utf8'));
  const socketPath = opts.socketPath ?? DEFAULT_SOCKET_PATH;
  const adminSocket = opts.adminSocket ?? defaultAdminSocket(socketPath);
  b.node.id = opts.nodeId;
  b.dynamic_resources.ads_config.api_type = (opts.ads ?? 'sotw') === 'delta' ? 'DELTA_GRPC' : 'GRPC';
  const pipeOf = (name: string) => {
    const c = b.static_resources.clusters.find((x: any) => x.name === name);
    return c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe;
  };
  pipeOf(AGENT_CLUSTER).path = socketPath;
  pipeOf(ADMIN_CLUSTER).path = adminSocket;
  b.admin.address.pipe.path = adminSocket;
  if (opts.healthPort !== undefined) b.static_resources.listeners[0].address.socket_address.port_value = opts.healthPort;
  fromProtoJson('envoy.config.bootstrap.v3.Bootstrap', b, 'bootstrap');
  return b;
}
