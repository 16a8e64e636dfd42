import type { Model } from '../model/model.js';
import { Snapshot, toXdsResource, type XdsResource } from '../xds/snapshot.js';
import type { TranslateContext } from './context.js';
import type { TranslationMemo } from './memo.js';
import { translateEnvoyConfigs } from './envoy-config.js';
import { translateHttpRoutes } from './httproute-mesh.js';
import type { ObjectTranslation, ServiceRedirect, TranslationIssue } from './output.js';

/** Every object of the model that yields Envoy config, translated independently. */
export function translateModel(model: Model, ctx: TranslateContext, memo?: TranslationMemo): ObjectTranslation[] {
  const units = [...translateEnvoyConfigs(model, ctx, memo), ...translateHttpRoutes(model, ctx)];
  memo?.sweep();
  return units;
}

export interface Assembly {
  snapshot: Snapshot;
  redirects: ServiceRedirect[];
  issues: TranslationIssue[];
  /** "typeUrl/name" -> the object that produced it. */
  owners: Map<string, string>;
}

/**
 * Joins per-object translations into one snapshot. The same resource from two
 * objects is fine when identical (two configs naming one backend Service);
 * differing ones conflict, and the first object keeps the name.
 */
export function assemble(units: ObjectTranslation[]): Assembly {
  const byId = new Map<string, XdsResource>();
  const owners = new Map<string, string>();
  const issues: TranslationIssue[] = [];
  const redirects: ServiceRedirect[] = [];
  for (const u of units) {
    issues.push(...u.issues);
    redirects.push(...u.redirects);
    for (const any of u.resources) {
      let r: XdsResource;
      try {
        r = toXdsResource(any);
      } catch (e) {
        issues.push({ object: u.object, field: 'resources', message: (e as Error).message });
        continue;
      }
      const id = `${r.typeUrl}/${r.name}`;
      const prior = byId.get(id);
      if (!prior) {
        byId.set(id, r);
        owners.set(id, u.object);
      } else if (prior.version !== r.version) {
        issues.push({ object: u.object, field: 'resources', message: `${r.typeUrl.split('.').pop()} "${r.name}" is also defined, differently, by ${owners.get(id)}, which keeps it` });
      }
    }
  }
  return { snapshot: Snapshot.fromResources(byId.values()), redirects, issues, owners };
}
