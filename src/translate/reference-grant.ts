// Gateway API ReferenceGrant: an object may refer to another namespace's
// object only when that namespace grants it.
import type { Model } from '../model/model.js';

export interface Reference {
  from: { group: string; kind: string; namespace: string };
  to: { group: string; kind: string; namespace: string; name: string };
}

export function referenceGranted(model: Model, ref: Reference): boolean {
  if (ref.from.namespace === ref.to.namespace) return true;
  return model.referenceGrants().some(
    (g) =>
      g.metadata.namespace === ref.to.namespace &&
      g.spec.from.some((f) => f.group === ref.from.group && f.kind === ref.from.kind && f.namespace === ref.from.namespace) &&
      g.spec.to.some((t) => t.group === ref.to.group && t.kind === ref.to.kind && (!t.name || t.name === ref.to.name)),
  );
}
