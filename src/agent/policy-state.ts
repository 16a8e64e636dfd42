// The policy of the agent's current model, for the operator tools: computed
// on first ask and kept until the model changes, so reading it costs nothing
// when nobody asks, and asking twice costs one computation.
import { join } from 'node:path';
import type { Model } from '../model/model.js';
import { computePolicy, identityAllocators, type PolicyResult } from '../policy/index.js';

export class PolicyState {
  private readonly allocators: ReturnType<typeof identityAllocators>;
  private last: { model: Model; result: PolicyResult } | undefined;

  constructor(
    private readonly nodeName: string,
    stateDir: string | undefined,
  ) {
    // Numbers persist under the state dir, so a restarted agent shows (and enforces) the same identities.
    const file = (name: string) => (stateDir ? join(stateDir, name) : undefined);
    this.allocators = identityAllocators({ identities: file('policy-identities.json'), cidrs: file('policy-cidr-identities.json'), endpoints: file('policy-endpoints.json') });
  }

  of(model: Model): PolicyResult {
    if (this.last?.model !== model) this.last = { model, result: computePolicy(model, { nodeName: this.nodeName, ...this.allocators }) };
    return this.last.result;
  }
}
