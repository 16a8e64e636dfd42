// Verdicts per (remote identity, protocol, port range) into the longest-prefix
// entries of the policy map, such that the longest match within an identity
// carries the final verdict and identity 0's verdicts are folded into every
// other identity's entries (see PolicyEntry in datapath-state.ts).
import type { PolicyEntry, Verdict } from './datapath-state.js';
import { PORT_PROTOS, PROTO, rangeToPrefixes } from './ports.js';
import type { Direction } from './rules.js';

/**
 * How verdicts of rules that cover the same traffic combine: a deny wins; an
 * L3/L4 allow admits everything an L7 rule would, so it wins over a redirect;
 * the allow-all of an endpoint that is not enforced yields to both. An egress
 * allow that holds only in the mesh tunnel (authentication required) yields
 * to a plain allow (which admits the same flows and more) and to a redirect,
 * as the kernel ranks them; it wins over the allow-all of no default deny,
 * since required means a flow that cannot be authenticated is refused.
 */
export const Rank = { None: 0, DefaultAllow: 1, MeshOnly: 2, Redirect: 3, Allow: 4, Deny: 5 } as const;
export type Rank = (typeof Rank)[keyof typeof Rank];

export interface Contribution {
  /** 0: any remote. */
  identity: number;
  proto: number;
  lo: number;
  hi: number;
  rank: Rank;
  listener?: string;
}

interface Outcome {
  rank: Rank;
  listener?: string;
}

const VERDICT_OF: Record<Rank, Verdict | undefined> = { 0: undefined, 1: 'allow', 2: 'mesh', 3: 'redirect', 4: 'allow', 5: 'deny' };
const verdictOf = (r: Rank): Verdict | undefined => VERDICT_OF[r];
const sameOutput = (a: Outcome, b: Outcome) => verdictOf(a.rank) === verdictOf(b.rank) && a.listener === b.listener;
const stronger = (a: Outcome, c: Contribution): Outcome => (c.rank > a.rank ? { rank: c.rank, listener: c.listener } : a);

/** Entries of one endpoint and direction, with `endpoint` as given. */
export function buildEntries(endpoint: number, direction: Direction, contributions: readonly Contribution[]): PolicyEntry[] {
  const wildcard = contributions.filter((c) => c.identity === 0);
  const byIdentity = new Map<number, Contribution[]>([[0, []]]);
  for (const c of contributions) {
    let list = byIdentity.get(c.identity);
    if (!list) byIdentity.set(c.identity, (list = []));
    list.push(c);
  }
  const out: PolicyEntry[] = [];
  // Identities whose own contributions look alike (all of "cluster", say) get the same entries: build them once.
  const templates = new Map<string, PolicyEntry[]>();
  for (const identity of [...byIdentity.keys()].sort((a, b) => a - b)) {
    const own = identity === 0 ? [] : byIdentity.get(identity)!;
    const shape = identity === 0 ? '*' : own.map((c) => `${c.proto},${c.lo},${c.hi},${c.rank},${c.listener ?? ''}`).sort().join('|');
    let template = templates.get(shape);
    if (!template) templates.set(shape, (template = identityEntries(endpoint, direction, identity, [...own, ...wildcard])));
    for (const e of template) out.push(e.identity === identity ? e : { ...e, identity });
  }
  return out;
}

function identityEntries(endpoint: number, direction: Direction, identity: number, cs: Contribution[]): PolicyEntry[] {
  const out: PolicyEntry[] = [];
  const entry = (proto: number, port: number, portPrefixLen: number, o: Outcome) =>
    out.push({ endpoint, direction, identity, proto, port, portPrefixLen, verdict: verdictOf(o.rank)!, ...(o.listener ? { listener: o.listener } : {}) });
  const base = cs.filter((c) => c.proto === PROTO.ANY).reduce<Outcome>(stronger, { rank: Rank.None });
  if (base.rank !== Rank.None) entry(PROTO.ANY, 0, 0, base);
  for (const proto of PORT_PROTOS) {
    const segs = cs.filter((c) => c.proto === proto);
    if (!segs.length) continue;
    const cuts = [...new Set([0, 65536, ...segs.flatMap((s) => [s.lo, s.hi + 1])])].sort((a, b) => a - b);
    // Adjacent pieces with the same outcome join before they are split into prefixes.
    let run: { lo: number; hi: number; o: Outcome } | undefined;
    const flush = () => {
      if (run && !sameOutput(run.o, base)) for (const p of rangeToPrefixes(run.lo, run.hi)) entry(proto, p.port, p.prefixLen, run.o);
    };
    for (let i = 0; i + 1 < cuts.length; i++) {
      const [lo, hi] = [cuts[i], cuts[i + 1] - 1];
      const o = segs.filter((s) => s.lo <= lo && s.hi >= hi).reduce(stronger, base);
      if (run && sameOutput(run.o, o)) run.hi = hi;
      else {
        flush();
        run = { lo, hi, o };
      }
    }
    flush();
  }
  return out;
}

/**
 * The datapath's lookup, as the contract describes it: the longest match for
 * the identity and for identity 0; a deny from either wins, else the
 * identity's own match, else identity 0's. Undefined: no entry matches.
 */
export function lookupVerdict(
  entries: readonly PolicyEntry[],
  q: { endpoint: number; direction: Direction; identity: number; proto: number; port: number },
): PolicyEntry | undefined {
  const lpm = (identity: number) => {
    let best: PolicyEntry | undefined;
    let bestLen = -1;
    for (const e of entries) {
      if (e.endpoint !== q.endpoint || e.direction !== q.direction || e.identity !== identity) continue;
      let len: number;
      if (e.proto === PROTO.ANY) len = 0;
      else if (e.proto === q.proto && (e.portPrefixLen === 0 || q.port >> (16 - e.portPrefixLen) === e.port >> (16 - e.portPrefixLen))) len = 1 + e.portPrefixLen;
      else continue;
      if (len > bestLen) [best, bestLen] = [e, len];
    }
    return best;
  };
  const own = q.identity === 0 ? undefined : lpm(q.identity);
  const any = lpm(0);
  if (own?.verdict === 'deny') return own;
  if (any?.verdict === 'deny') return any;
  return own ?? any;
}
