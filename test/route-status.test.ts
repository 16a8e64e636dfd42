// HTTPRoute parent status from translation issues: the pure part of status writing.
import t from 'tap';
import type { HTTPRoute } from '../src/model/objects.js';
import { CONTROLLER_NAME, routeParentStatuses } from '../src/translate/route-status.js';

const route = (parentRefs: object[]): HTTPRoute =>
  ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'ns', generation: 3 }, spec: { parentRefs, rules: [] } }) as unknown as HTTPRoute;
const issue = (field: string, message: string) => ({ object: 'HTTPRoute ns/r', field, message });
const svc = { group: '', kind: 'Service', name: 'echo', port: 80 };
const byType = (s: ReturnType<typeof routeParentStatuses>[number]) => Object.fromEntries(s.conditions.map((c) => [c.type, c]));

t.test('a clean route is Accepted with ResolvedRefs, at its generation', async (t) => {
  const [s] = routeParentStatuses(route([svc]), []);
  t.equal(s.controllerName, CONTROLLER_NAME);
  t.same(s.parentRef, svc);
  t.match(byType(s), { Accepted: { status: 'True', reason: 'Accepted', observedGeneration: 3 }, ResolvedRefs: { status: 'True', reason: 'ResolvedRefs' } });
});

t.test('Gateway parents are left to their gateway controller', async (t) => {
  t.same(routeParentStatuses(route([{ name: 'gw' }, { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw2' }]), []), []);
});

t.test('a missing parent Service is NoMatchingParent on that parent only', async (t) => {
  const other = { ...svc, name: 'other' };
  const [a, b] = routeParentStatuses(route([svc, other]), [issue('spec.parentRefs[1]', 'Service ns/other not found')]);
  t.equal(byType(a).Accepted.status, 'True');
  t.match(byType(b).Accepted, { status: 'False', reason: 'NoMatchingParent', message: /Service ns\/other not found/ });
});

t.test('backendRef problems set ResolvedRefs by kind of problem; other rule problems are UnsupportedValue', async (t) => {
  const [missing] = routeParentStatuses(route([svc]), [issue('spec.rules[0].backendRefs[1]', 'Service ns/x not found; requests to it get 500')]);
  t.match(byType(missing), { Accepted: { status: 'True' }, ResolvedRefs: { status: 'False', reason: 'BackendNotFound', message: /spec\.rules\[0\]\.backendRefs\[1\]/ } });
  const [kind] = routeParentStatuses(route([svc]), [issue('spec.rules[0].backendRefs[0]', 'example.com/Bucket backends are not supported; only Services')]);
  t.equal(byType(kind).ResolvedRefs.reason, 'InvalidKind');
  const [filter] = routeParentStatuses(route([svc]), [issue('spec.rules[0].backendRefs[0].filters', 'backendRef filters are not supported; ignored')]);
  t.match(byType(filter), { Accepted: { status: 'False', reason: 'UnsupportedValue' }, ResolvedRefs: { status: 'True' } });
});
