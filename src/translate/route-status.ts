// Gateway API status for mesh (GAMMA) HTTPRoutes: what sluice says about each
// Service parent, derived from the route's translation issues. Pure.
import type { HTTPRoute, ParentReference } from '../model/objects.js';
import type { TranslationIssue } from '../issues/issue.js';

export const CONTROLLER_NAME = 'sluice.io/mesh';

export interface RouteCondition {
  type: 'Accepted' | 'ResolvedRefs';
  status: 'True' | 'False';
  reason: string;
  message: string;
  observedGeneration?: number;
}

export interface RouteParentStatus {
  parentRef: ParentReference;
  controllerName: string;
  conditions: RouteCondition[];
}

const isServiceParent = (p: ParentReference) => (p.group ?? 'gateway.networking.k8s.io') === '' && (p.kind ?? 'Gateway') === 'Service';

function backendReason(message: string): string {
  if (/backends are not supported/.test(message)) return 'InvalidKind';
  if (/no ReferenceGrant/.test(message)) return 'RefNotPermitted';
  return 'BackendNotFound';
}

const summary = (issues: TranslationIssue[]) => issues.map((i) => `${i.field}: ${i.message}`).join('; ');

/** Our entries for a route's status.parents: one per Service parentRef. Gateway parents are another controller's. */
export function routeParentStatuses(route: HTTPRoute, issues: TranslationIssue[]): RouteParentStatus[] {
  const generation = route.metadata.generation;
  const backendIssues = issues.filter((i) => /\.backendRefs\[\d+\]$/.test(i.field));
  const ruleIssues = issues.filter((i) => i.field.startsWith('spec.rules') && !backendIssues.includes(i));
  const resolved: RouteCondition = backendIssues.length
    ? { type: 'ResolvedRefs', status: 'False', reason: backendReason(backendIssues[0].message), message: summary(backendIssues), observedGeneration: generation }
    : { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'all backendRefs resolved', observedGeneration: generation };
  return (route.spec.parentRefs ?? []).flatMap((parentRef, i) => {
    if (!isServiceParent(parentRef)) return [];
    const parentIssues = issues.filter((x) => x.field === `spec.parentRefs[${i}]` || x.field.startsWith(`spec.parentRefs[${i}].`));
    const accepted: RouteCondition = parentIssues.length
      ? { type: 'Accepted', status: 'False', reason: 'NoMatchingParent', message: summary(parentIssues), observedGeneration: generation }
      : ruleIssues.length
        ? { type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message: summary(ruleIssues), observedGeneration: generation }
        : { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'attached to the Service', observedGeneration: generation };
    return [{ parentRef, controllerName: CONTROLLER_NAME, conditions: [accepted, resolved] }];
  });
}
