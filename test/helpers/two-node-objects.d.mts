export type NodeName = 'n1' | 'n2';
export const WIRE: { readonly [n in NodeName]: { readonly ip4: string; readonly ip6: string } };
export const NODES: readonly NodeName[];
export function nodeIndex(n: NodeName): number;
export function podCidr(n: NodeName): { ip4: string; ip6: string };
export function twoNodeObjects(
  namespaces: Record<string, boolean>,
  pods: { name: string; node: NodeName; namespace: string; serviceAccount?: string; labels?: Record<string, string>; uid: string; ip4: string; ip6: string }[],
  meshLabel: string,
): object[];
