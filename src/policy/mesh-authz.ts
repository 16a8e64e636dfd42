// What policy says about meshed traffic, for the node Envoy that terminates
// mTLS tunnels: per local meshed destination pod, which SPIFFE IDs may connect
// on which ports. fromEndpoints selectors resolve to the service accounts of
// the pods they select now (SPIFFE IDs name service accounts, not label sets).
// computeMeshAuthz (src/policy/mesh-authz-compute.ts) produces it; the mesh
// translator reads it. Types only here, so neither side depends on the other.

/** Inclusive TCP port range of the destination pod. */
export interface MeshPortRange {
  from: number;
  to: number;
}

export interface MeshAllow {
  ports: MeshPortRange[] | 'any';
  /** SPIFFE IDs, or any authenticated peer of the trust domain. */
  principals: string[] | 'any';
}

export interface MeshEndpointAuthz {
  /** "ns/name" */
  pod: string;
  ips: string[];
  /** Some ingress policy selects the pod: what no allow admits is refused. Not enforced: any authenticated peer. */
  enforced: boolean;
  allow: MeshAllow[];
  /** ingressDeny rules: a match refuses whatever an allow says. */
  deny: MeshAllow[];
}

/** By pod key; pods absent are not enforced. */
export type MeshAuthz = ReadonlyMap<string, MeshEndpointAuthz>;
