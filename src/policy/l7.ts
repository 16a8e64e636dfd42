// What the Envoy translator needs to build one transparent listener with the
// RBAC HTTP filter: the requests each remote peer may make.
import type { Direction, HttpRule } from './rules.js';

export interface L7Peer {
  identity: number;
  /** The addresses holding this identity. */
  prefixes: string[];
  /** Longer prefixes inside those that hold other identities: not this peer. */
  except: string[];
}

export interface L7Rule extends Omit<HttpRule, 'field'> {
  /** "Kind ns/name" and the field of the http rule, for logs and trace. */
  policy: string;
  field: string;
  /** Who may make these requests; 'any' for every peer. */
  peers: 'any' | L7Peer[];
}

/**
 * One listener per (subject identity, direction, port): every local endpoint
 * of that identity shares it, so listeners grow with identities, not pods.
 * A request passes if any rule matches it; otherwise Envoy answers 403.
 */
export interface L7Listener {
  listener: string;
  direction: Direction;
  /** The identity of the endpoints the policy selects. */
  identity: number;
  proto: 'TCP';
  port: number;
  endpoints: { pod: string; ip: string; endpoint: number }[];
  rules: L7Rule[];
}

export function listenerName(direction: Direction, identity: number, port: number): string {
  return `policy/${direction}/${identity}/tcp/${port}`;
}
