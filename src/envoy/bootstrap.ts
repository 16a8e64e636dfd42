import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { fromProtoJson } from '../proto/json.js';
import { DEFAULT_SOCKET_PATH } from '../xds/server.js';

const TEMPLATE = fileURLToPath(new URL('../../envoy/bootstrap.yaml', import.meta.url));

export type AdsFlavour = 'sotw' | 'delta';

export interface BootstrapOptions {
  nodeId: string;
  ads?: AdsFlavour;
  socketPath?: string;
  /** 0 lets the kernel choose; pair it with Envoy's --admin-address-path. */
  adminPort?: number;
}

/** The node's Envoy bootstrap as proto3 JSON, checked against the Bootstrap schema. */
export function renderBootstrap(opts: BootstrapOptions): Record<string, any> {
  const b = parse(readFileSync(TEMPLATE, 'utf8'));
  b.node.id = opts.nodeId;
  b.dynamic_resources.ads_config.api_type = (opts.ads ?? 'sotw') === 'delta' ? 'DELTA_GRPC' : 'GRPC';
  b.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.pipe.path =
    opts.socketPath ?? DEFAULT_SOCKET_PATH;
  if (opts.adminPort !== undefined) b.admin.address.socket_address.port_value = opts.adminPort;
  fromProtoJson('envoy.config.bootstrap.v3.Bootstrap', b, 'bootstrap');
  return b;
}
