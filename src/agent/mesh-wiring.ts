// The mesh in the agent: the node Envoy's tunnel listeners and clusters,
// translated from the model and from what policy says about meshed peers
// (SPIFFE IDs per destination), as assembly units. The kernel side (steering
// meshed flows into the outbound listener) comes with the policy datapath
// state; the Secrets the tunnels present come from the identity wiring.
import type { Model } from '../model/model.js';
import { computeMeshAuthz, type PolicyResult } from '../policy/index.js';
import type { MeshAuthz } from '../policy/mesh-authz.js';
import type { TranslateContext } from '../translate/context.js';
import { MeshMemo, translateMesh } from '../translate/mesh.js';
import type { ObjectTranslation } from '../translate/output.js';

const NO_AUTHZ: MeshAuthz = new Map();

export class MeshWiring {
  private readonly memo = new MeshMemo();
  private last?: { model: Model; result?: PolicyResult; ctx: TranslateContext; units: ObjectTranslation[] };

  constructor(private readonly trustDomain: string) {}

  /**
   * The mesh's units for this model; the same array while neither the model
   * nor the policy result changed. A failure (a bug, not bad input) keeps the
   * previous units serving and says so on the unit's issue.
   */
  translate(model: Model, result: PolicyResult | undefined, ctx: TranslateContext): ObjectTranslation[] {
    const last = this.last;
    if (last && last.model === model && last.result === result && last.ctx.proxyAddresses === ctx.proxyAddresses) return last.units;
    try {
      const authz = result ? computeMeshAuthz(model, result, this.trustDomain) : NO_AUTHZ;
      const units = translateMesh({ model, ctx, trustDomain: this.trustDomain, authz }, this.memo);
      this.last = { model, result, ctx, units };
      return units;
    } catch (e) {
      const message = `mesh translation failed, the previous mesh config stays: ${(e as Error).message}`;
      return [...(last?.units ?? []).map((u) => ({ ...u, issues: [] })), { object: 'mesh', resources: [], redirects: [], issues: [{ object: 'mesh', field: '', message }] }];
    }
  }
}
