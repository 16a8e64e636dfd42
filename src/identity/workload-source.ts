// What the Workload API serves, drawn from the node's CA and its current
// SVIDs: the one adapter between them, used by the agent and by the tests
// that put go-spiffe in front of the server.
import type { SpiffeCa } from './ca.js';
import type { WorkloadSvids } from './svid-store.js';
import type { WorkloadIdentitySource } from './workload-api.js';

export function workloadIdentitySource(ca: SpiffeCa, svids: WorkloadSvids, jwtTtlSeconds: number): WorkloadIdentitySource {
  return {
    x509Svid: (id) => svids.get(id),
    bundle: () => ca.bundle(),
    issueJwtSvid: (id, audience) => ca.issueJwtSvid(id, audience, jwtTtlSeconds),
    validateJwtSvid: (token, audience) => ca.validateJwtSvid(token, audience),
    // The root does not rotate yet, so only SVIDs change. No `want`: a caller
    // attests only as a pod of this node, whose identity the node already wants.
    onChange: (cb) => svids.onChange((changed) => cb(changed)),
  };
}
