// Which host ports a CiliumEnvoyConfig listener may bind. The node's Envoy
// shares the host network, so a listener is a port taken on the node: a tenant
// (namespaced config) gets only the agent's proxy port range, an administrator
// (clusterwide config) any port, and nobody a port the node already serves.
import type { Model } from '../model/model.js';
import type { TranslateContext } from './context.js';
import type { Service } from '../model/objects.js';

type Json = Record<string, any>;

/** Every port the node already uses: the context's, and each Service's NodePorts. */
export function takenPorts(model: Model, ctx: TranslateContext): Map<number, string> {
  const nodePorts = new Map<number, Set<string>>();
  for (const svc of model.services()) for (const [port, use] of nodePortsOf(svc)) addUse(nodePorts, port, use);
  return portsTaken(ctx, nodePorts);
}

/** A Service's NodePorts, each with what it says of the port's use. */
export function nodePortsOf(svc: Service): [number, string][] {
  return (svc.spec.ports ?? []).filter((p) => p.nodePort).map((p) => [p.nodePort!, `NodePort of Service ${svc.metadata.namespace}/${svc.metadata.name}`]);
}

export function addUse(uses: Map<number, Set<string>>, port: number, use: string): void {
  let s = uses.get(port);
  if (!s) uses.set(port, (s = new Set()));
  s.add(use);
}

/**
 * The context's ports and the NodePorts; a NodePort that two Services claim
 * names the first by name, so the answer does not depend on the order they came in.
 */
export function portsTaken(ctx: TranslateContext, nodePorts: ReadonlyMap<number, ReadonlySet<string>>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [use, port] of Object.entries(ctx.reservedPorts ?? {})) out.set(port, use);
  for (const [port, uses] of nodePorts) if (uses.size) out.set(port, [...uses].sort()[0]);
  return out;
}

/** Problems with the addresses a listener binds, by field (relative to the listener). */
export function listenerAddressProblems(listener: Json, ctx: TranslateContext, taken: ReadonlyMap<number, string>, namespaced: boolean): { field: string; message: string }[] {
  const addresses: [string, Json | undefined][] = [['address', listener.address]];
  (listener.additionalAddresses ?? []).forEach((a: Json, i: number) => addresses.push([`additionalAddresses[${i}].address`, a?.address]));
  const out: { field: string; message: string }[] = [];
  const range = ctx.proxyPortRange;
  for (const [field, address] of addresses) {
    if (!address) continue;
    const port = address.socketAddress?.portValue;
    if (typeof port !== 'number') {
      if (namespaced) out.push({ field, message: 'a namespaced config may listen only on a TCP/UDP port of the proxy port range' });
      continue;
    }
    const use = taken.get(port);
    if (use) out.push({ field: `${field}.socketAddress.portValue`, message: `port ${port} is taken on the node by ${use}` });
    else if (namespaced && !(range && port >= range[0] && port <= range[1]))
      out.push({ field: `${field}.socketAddress.portValue`, message: `port ${port} is outside the proxy port range ${range ? range.join('-') : '(none)'}, the only ports a namespaced config may bind; leave the address out to be given one` });
  }
  return out;
}
