// Container port names, which policies may write instead of numbers: on
// ingress a name means the selected endpoint's own port, on egress the peer's.
import type { Pod } from '../model/objects.js';
import { PROTO } from './ports.js';
import type { Direction, PortRule } from './rules.js';

/** identity → "proto/name" → the port numbers pods of that identity give the name. */
export type NamedPorts = Map<number, Map<string, Set<number>>>;

export function addNamedPorts(into: NamedPorts, identity: number, pod: Pod): void {
  for (const c of pod.spec?.containers ?? [])
    for (const p of c.ports ?? []) {
      if (!p.name || !Number.isInteger(p.containerPort)) continue;
      let byName = into.get(identity);
      if (!byName) into.set(identity, (byName = new Map()));
      const key = `${PROTO[p.protocol ?? 'TCP'] ?? PROTO.TCP}/${p.name}`;
      let ports = byName.get(key);
      if (!ports) byName.set(key, (ports = new Set()));
      ports.add(p.containerPort);
    }
}

/**
 * The port ranges a rule's port stands for between `subject` and `peer` (0:
 * any peer, whose names are those of every pod). A name no pod gives yields
 * nothing, as in Cilium: the rule admits nobody until a pod names that port.
 */
export function portRanges(named: NamedPorts, pr: PortRule, direction: Direction, subject: number, peer: number): { lo: number; hi: number }[] {
  if (pr.name === undefined) return [{ lo: pr.lo, hi: pr.hi }];
  const owner = direction === 'ingress' ? subject : peer;
  const key = `${pr.proto}/${pr.name}`;
  const ports = new Set<number>();
  for (const [id, byName] of named) if (owner === 0 || id === owner) for (const p of byName.get(key) ?? []) ports.add(p);
  return [...ports].sort((a, b) => a - b).map((p) => ({ lo: p, hi: p }));
}
