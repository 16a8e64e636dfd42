// An Envoy access log entry (ALS) as a flow. Pure: the receiver adds what the
// stream said once (node, the listener's direction and proxy port).
import type { Address } from '../gen/envoy/config/core/v3/address.js';
import { RequestMethod, requestMethodToJSON } from '../gen/envoy/config/core/v3/base.js';
import {
  AccessLogType,
  HTTPAccessLogEntry_HTTPVersion as HttpVersion,
  type AccessLogCommon,
  type HTTPAccessLogEntry,
  type TCPAccessLogEntry,
} from '../gen/envoy/data/accesslog/v3/accesslog.js';
import type { Duration } from '../gen/google/protobuf/duration.js';
import type { AccessLogOrigin } from '../translate/access-log.js';
import type { Flow } from './flow.js';

/**
 * What Envoy's RBAC filter (HTTP) puts in response_code_details when it
 * refuses a request: "[none]" when an ALLOW policy matched nothing, the
 * policy's name when a DENY policy matched. Envoy 1.40 sets no response flag
 * for it, so the details are the one sign.
 */
const RBAC_DENIED = 'rbac_access_denied_matched_policy[';

const PROTOCOLS: Partial<Record<HttpVersion, string>> = {
  [HttpVersion.HTTP10]: 'HTTP/1.0',
  [HttpVersion.HTTP11]: 'HTTP/1.1',
  [HttpVersion.HTTP2]: 'HTTP/2',
  [HttpVersion.HTTP3]: 'HTTP/3',
};

const durationNs = (d: Duration | undefined): bigint | undefined => (d ? BigInt(d.seconds) * 1_000_000_000n + BigInt(d.nanos) : undefined);

function socketOf(a: Address | undefined): { ip: string; port: number } | undefined {
  const s = a?.socketAddress;
  return s?.address ? { ip: s.address, port: s.portValue ?? 0 } : undefined;
}

/** "10.0.0.1:80" or "[fd00::1]:80" as an address, for a CONNECT authority; undefined for a host name. */
export function authoritySocket(authority: string): { ip: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(authority);
  return m ? { ip: m[1] ?? m[2], port: Number(m[3]) } : undefined;
}

/** The downstream peer's SPIFFE ID: the spiffe:// URI SAN of the client certificate it presented. */
export function peerSpiffeId(common: AccessLogCommon | undefined): string | undefined {
  return common?.tlsProperties?.peerCertificateProperties?.subjectAltName.find((s) => s.uri?.startsWith('spiffe://'))?.uri;
}

/** What every entry says the same way: when, between which addresses, from whom, on which listener. */
function common(c: AccessLogCommon, origin: AccessLogOrigin | undefined, nodeName: string, destinationOverride?: { ip: string; port: number }) {
  const source = socketOf(c.downstreamDirectRemoteAddress) ?? socketOf(c.downstreamRemoteAddress);
  // A transparent listener's local address is the original destination.
  const destination = destinationOverride ?? socketOf(c.downstreamLocalAddress);
  // Latency as Hubble shows it: request start to the response's last byte out, else as far as it got.
  const latencyNs = durationNs(c.timeToLastDownstreamTxByte) ?? durationNs(c.duration) ?? durationNs(c.timeToFirstDownstreamTxByte);
  const startNs = BigInt(c.startTime?.getTime() ?? Date.now()) * 1_000_000n;
  const spiffeId = peerSpiffeId(c);
  const flow: Omit<Flow, 'verdict' | 'type'> = {
    timeNs: startNs + (latencyNs ?? 0n),
    nodeName,
    trafficDirection: origin ? (origin.direction === 'ingress' ? 'INGRESS' : 'EGRESS') : 'TRAFFIC_DIRECTION_UNKNOWN',
    ...(spiffeId ? { sourceSpiffeId: spiffeId } : {}),
    ...(origin ? { proxyPort: origin.proxyPort } : {}),
  };
  if (source && destination) {
    flow.ip = { source: source.ip, destination: destination.ip, ipVersion: destination.ip.includes(':') ? 'IPv6' : 'IPv4' };
    flow.l4 = { protocol: 'TCP', sourcePort: source.port, destinationPort: destination.port };
  }
  return { flow, latencyNs, destination };
}

export function httpEntryToFlow(e: HTTPAccessLogEntry, origin: AccessLogOrigin | undefined, nodeName: string): Flow | undefined {
  const c = e.commonProperties;
  const req = e.request;
  if (!c || !req) return undefined;
  const code = e.response?.responseCode ?? 0;
  const denied = (e.response?.responseCodeDetails ?? '').startsWith(RBAC_DENIED);
  const method = req.requestMethod === RequestMethod.METHOD_UNSPECIFIED ? '' : requestMethodToJSON(req.requestMethod);
  // A tunnel's destination is in its authority.
  const tunnelTo = req.requestMethod === RequestMethod.CONNECT ? authoritySocket(req.authority) : undefined;
  const { flow, latencyNs, destination } = common(c, origin, nodeName, tunnelTo);
  // An entry flushed when a tunnel is established stands for the request; the final one for the exchange.
  const interim = c.intermediateLogEntry || c.accessLogType === AccessLogType.DownstreamTunnelSuccessfullyEstablished;
  const host = req.authority || (destination ? (destination.ip.includes(':') ? `[${destination.ip}]:${destination.port}` : `${destination.ip}:${destination.port}`) : '');
  return {
    ...flow,
    verdict: denied ? 'DROPPED' : code === 0 && !interim ? 'ERROR' : 'FORWARDED',
    ...(denied ? { dropReason: 'POLICY_DENIED' } : {}),
    type: 'L7',
    l7: {
      type: interim ? 'REQUEST' : 'RESPONSE',
      ...(latencyNs !== undefined && !interim ? { latencyNs } : {}),
      http: {
        code,
        method,
        url: `${req.scheme || 'http'}://${host}${req.path}`,
        ...(PROTOCOLS[e.protocolVersion] ? { protocol: PROTOCOLS[e.protocolVersion] } : {}),
      },
    },
  };
}

/**
 * A TCP proxy's connection (the mesh outbound's tunnels): an L4 flow the
 * proxy carried, ERROR when it reached no upstream.
 */
export function tcpEntryToFlow(e: TCPAccessLogEntry, origin: AccessLogOrigin | undefined, nodeName: string): Flow | undefined {
  const c = e.commonProperties;
  if (!c) return undefined;
  const { flow } = common(c, origin, nodeName);
  if (!flow.ip) return undefined;
  const f = c.responseFlags;
  const failed = !!(f?.upstreamConnectionFailure || f?.noHealthyUpstream || f?.noClusterFound || f?.upstreamOverflow);
  return { ...flow, verdict: failed ? 'ERROR' : 'FORWARDED', type: 'L3_L4' };
}
