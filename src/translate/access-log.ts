// The gRPC access log sluice's own listeners stream to the agent (Envoy's
// Access Log Service, served beside ADS on the same socket), so the agent
// sees each L7 exchange as a flow.
//
// Envoy opens one ALS stream per distinct logger config (and worker), and an
// entry carries nothing of the listener it came from; the stream's log name,
// sent once when it opens, is what tells the agent the direction and proxy
// port. One log name per listener: a node's listeners number in the tens.
import { AGENT_CLUSTER } from './well-known.js';

type Json = Record<string, any>;

export interface AccessLogOrigin {
  direction: 'ingress' | 'egress';
  /** The listener's port (the proxy port for a policy listener). */
  proxyPort: number;
  listener: string;
}

const PREFIX = 'sluice-als';

export const accessLogName = (o: AccessLogOrigin) => `${PREFIX}|${o.direction}|${o.proxyPort}|${o.listener}`;

/** The origin a log name names; undefined for log names sluice did not write (a CEC author's own ALS config). */
export function parseAccessLogName(name: string): AccessLogOrigin | undefined {
  const m = /^sluice-als\|(ingress|egress)\|(\d+)\|(.+)$/.exec(name);
  if (!m) return undefined;
  return { direction: m[1] as AccessLogOrigin['direction'], proxyPort: Number(m[2]), listener: m[3] };
}

/** An access_log entry streaming to the agent: of an HttpConnectionManager, or of a TcpProxy (tcp). */
export function agentAccessLog(o: AccessLogOrigin, kind: 'http' | 'tcp' = 'http'): Json {
  return {
    name: `envoy.access_loggers.${kind}_grpc`,
    typed_config: {
      '@type': `type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.${kind === 'http' ? 'Http' : 'Tcp'}GrpcAccessLogConfig`,
      common_config: {
        log_name: accessLogName(o),
        transport_api_version: 'V3',
        grpc_service: { envoy_grpc: { cluster_name: AGENT_CLUSTER } },
      },
    },
  };
}
