// Endpoint selectors over identity labels, and the cache that evaluates each
// distinct selector once per identity: policy cost grows with identities and
// selectors, never with pods times pods.
import type { LabelSelector } from '../model/objects.js';
import type { IdentityInfo } from './identities.js';
import { parseLabelKey } from './labels.js';

export interface Requirement {
  source: string;
  key: string;
  op: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values: string[];
}

/** Something that picks identities: a label selector, an entity, a CIDR. `key` names it for the cache. */
export interface Peer {
  key: string;
  /** Every identity, including world and CIDRs: as a policy key, identity 0. */
  any?: boolean;
  matches(id: IdentityInfo): boolean;
}

const OPS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

/** Compiles a selector; the problem names the field under `field` when it is malformed. */
export function compileSelector(
  sel: unknown,
  field: string,
  fallbackSource: string,
): { requirements: Requirement[] } | { field: string; problem: string } {
  if (sel === null || typeof sel !== 'object' || Array.isArray(sel)) return { field, problem: 'want a label selector' };
  const s = sel as LabelSelector & Record<string, unknown>;
  for (const k of Object.keys(s)) if (k !== 'matchLabels' && k !== 'matchExpressions') return { field: `${field}.${k}`, problem: `unknown field "${k}"` };
  const requirements: Requirement[] = [];
  if (s.matchLabels !== undefined) {
    if (typeof s.matchLabels !== 'object' || s.matchLabels === null || Array.isArray(s.matchLabels)) return { field: `${field}.matchLabels`, problem: 'want a map of labels' };
    for (const [k, v] of Object.entries(s.matchLabels)) {
      if (typeof v !== 'string') return { field: `${field}.matchLabels.${k}`, problem: 'want a string value' };
      requirements.push({ ...parseLabelKey(k, fallbackSource), op: 'In', values: [v] });
    }
  }
  if (s.matchExpressions !== undefined) {
    if (!Array.isArray(s.matchExpressions)) return { field: `${field}.matchExpressions`, problem: 'want a list' };
    for (const [i, e] of s.matchExpressions.entries()) {
      const f = `${field}.matchExpressions[${i}]`;
      if (typeof e?.key !== 'string') return { field: `${f}.key`, problem: 'want a label key' };
      if (!OPS.has(e.operator)) return { field: `${f}.operator`, problem: `unknown operator "${e.operator}"; want In, NotIn, Exists or DoesNotExist` };
      const values = e.values ?? [];
      if (!Array.isArray(values) || !values.every((v) => typeof v === 'string')) return { field: `${f}.values`, problem: 'want a list of strings' };
      if ((e.operator === 'In' || e.operator === 'NotIn') && values.length === 0) return { field: `${f}.values`, problem: `${e.operator} needs at least one value` };
      if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && values.length > 0) return { field: `${f}.values`, problem: `${e.operator} takes no values` };
      requirements.push({ ...parseLabelKey(e.key, fallbackSource), op: e.operator, values });
    }
  }
  return { requirements };
}

function satisfies(r: Requirement, id: IdentityInfo): boolean {
  const found = id.labels.filter((l) => l.key === r.key && (r.source === 'any' || l.source === r.source));
  switch (r.op) {
    case 'In':
      return found.some((l) => r.values.includes(l.value));
    case 'NotIn':
      return !found.some((l) => r.values.includes(l.value));
    case 'Exists':
      return found.length > 0;
    case 'DoesNotExist':
      return found.length === 0;
  }
}

export function selectorPeer(requirements: Requirement[]): Peer {
  const sorted = requirements.map((r) => `${r.source}:${r.key} ${r.op} ${[...r.values].sort().join(',')}`).sort();
  return { key: `sel{${sorted.join('&')}}`, matches: (id) => requirements.every((r) => satisfies(r, id)) };
}

/** Which identities each distinct peer selects, each evaluated once over all identities. */
export class SelectorCache {
  private readonly cache = new Map<string, ReadonlySet<number>>();
  /** Selector-against-identity checks made: the figure the cost test bounds. */
  evaluations = 0;

  constructor(private readonly identities: readonly IdentityInfo[]) {}

  select(peer: Peer): ReadonlySet<number> {
    let hit = this.cache.get(peer.key);
    if (hit) return hit;
    const ids = new Set<number>();
    for (const id of this.identities) {
      this.evaluations++;
      if (peer.matches(id)) ids.add(id.id);
    }
    this.cache.set(peer.key, (hit = ids));
    return hit;
  }

  get size(): number {
    return this.cache.size;
  }
}
