// The policy room's public face: compute the datapath state and L7 input from
// the model, and trace one connection through it.
export { computePolicy, type PolicyContext, type PolicyResult } from './compute.js';
export { trace, type MeshSteering, type TraceQuery, type TraceResult, type TraceStep } from './trace.js';
export { identityAllocators } from './identities.js';
export { lookupVerdict } from './entries.js';
export type { L7Listener, L7Peer, L7Rule } from './l7.js';
export * from './datapath-state.js';
export { computeMeshAuthz } from './mesh-authz-compute.js';
export type { MeshAllow, MeshAuthz, MeshEndpointAuthz, MeshPortRange } from './mesh-authz.js';
