// GetFlows' field_mask: only the named fields of each flow go on the wire, as
// Hubble's server sends them (hubble's compact output asks for the dozen it
// prints). Paths are proto names ("source.pod_name"); ours are ts-proto's.
import { Flow as PbFlow } from '../gen/hubble/flow/flow.js';
import { FilterError } from './flow-filter.js';

const camel = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
const TOP = new Set(Object.keys(PbFlow.fromPartial({})));

export type FlowMask = (f: PbFlow) => PbFlow;

export function compileFieldMask(paths: readonly string[] | undefined): FlowMask | undefined {
  if (!paths?.length) return undefined;
  const parsed = paths.map((p) => {
    const parts = p.split('.').map(camel);
    if (!TOP.has(parts[0])) throw new FilterError(`invalid field mask: flow.Flow has no field ${JSON.stringify(p.split('.')[0])}`);
    return parts;
  });
  return (f) => {
    const out: Record<string, unknown> = {};
    for (const parts of parsed) copyPath(f as unknown as Record<string, unknown>, out, parts);
    return PbFlow.fromPartial(out as Partial<PbFlow>);
  };
}

function copyPath(src: Record<string, unknown>, dst: Record<string, unknown>, [head, ...rest]: string[]): void {
  const v = src[head];
  if (v === undefined) return;
  if (!rest.length || v === null || typeof v !== 'object' || Array.isArray(v)) {
    dst[head] = v;
    return;
  }
  const into = (dst[head] ??= {}) as Record<string, unknown>;
  copyPath(v as Record<string, unknown>, into, rest);
}
