// Policies of every kind, parsed into one form: who a rule set applies to,
// and per direction which peers may (or may not) reach which ports.
import type { Origin } from '../model/model.js';
import type { Peer } from './selectors.js';

export type Direction = 'ingress' | 'egress';

/** One entry of rules.http; method, path and host are RE2 regexes matched against the whole value. */
export interface HttpRule {
  field: string;
  method?: string;
  path?: string;
  host?: string;
  /** Headers that must be present, with this value when one is given. */
  headers: { name: string; value?: string }[];
  /** Headers compared to a value; on mismatch the action applies instead of a denial when one is set. */
  headerMatches: { name: string; value?: string; mismatch?: 'LOG' | 'ADD' | 'DELETE' | 'REPLACE' }[];
}

export interface PortRule {
  field: string;
  /** IP protocol number; 0 only with the full port range. */
  proto: number;
  lo: number;
  hi: number;
  /** A container port name instead of lo-hi: the endpoint's own on ingress, the peer's on egress. */
  name?: string;
  http?: HttpRule[];
}

export interface PeerRule {
  /** Where in the object, e.g. "spec.ingress[0]". */
  field: string;
  direction: Direction;
  deny: boolean;
  /** Any of these; none means the rule admits nobody. */
  peers: Peer[];
  /** Undefined: every protocol and port. */
  ports?: PortRule[];
  /**
   * Cilium's `authentication: {mode: required}`: the rule admits its peers only
   * over the mesh's mTLS. On ingress it adds no datapath entry (the node Envoy
   * checks SPIFFE IDs); on egress its entries say "mesh": allowed only into the tunnel.
   */
  authRequired?: boolean;
}

export interface RuleSet {
  /** "Kind ns/name". */
  policy: string;
  origin?: Origin;
  subject: Peer;
  /** The directions in which endpoints it selects drop what no rule allows. */
  enforce: Record<Direction, boolean>;
  rules: PeerRule[];
  /** Prefixes its rules name, which need identities of their own. */
  cidrs: string[];
}

/** The parse of one policy object: all of its rule sets, or what is wrong with it. */
export type Parsed = { ruleSets: RuleSet[] } | { problems: { field: string; message: string }[] };

/** Thrown while parsing: the policy is refused at this field. */
export class PolicyProblem extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export const isObject = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function listAt(v: unknown, field: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new PolicyProblem(field, 'want a list');
  return v;
}
