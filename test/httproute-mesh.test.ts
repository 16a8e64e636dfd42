// The GAMMA HTTPRoute translator as a pure function of the model.
import t from 'tap';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';
import { anyToJson } from '../src/proto/any.js';
import { translateHttpRoutes } from '../src/translate/httproute-mesh.js';
import { endpointSlice, httpRoute, service } from './helpers/kube.js';

const ctx = { nodeName: 'n', proxyPort: (k: string) => 15000 + k.length };
const model = (...objects: object[]) => Model.from(objects.map((o, index) => ({ object: o as ModelObject, origin: { file: 'r.yaml', index } })));
const services = [
  service('web', [{ port: 80, name: 'http' }, { port: 9000, name: 'admin' }]),
  service('v1', [{ port: 8080, name: 'http' }]),
  service('v2', [{ port: 8080, name: 'http' }]),
  endpointSlice('v1', 'http', 9001, [{ ip: '10.1.0.1' }, { ip: '10.1.0.2', ready: false }, { ip: '10.1.0.3', terminating: true }]),
];
const parent = { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }] };
const at = (ts: string, o: any) => ({ ...o, metadata: { ...o.metadata, creationTimestamp: ts } });

function run(...routes: object[]) {
  const units = translateHttpRoutes(model(...services, ...routes), ctx);
  const svc = units.find((u) => u.object === 'Service default/web:80');
  const resources = (svc?.resources ?? []).map(anyToJson) as any[];
  const rc = resources.find((r) => r['@type'].endsWith('RouteConfiguration'));
  return { units, svc, resources, routes: (rc?.virtualHosts?.[0]?.routes ?? []) as any[] };
}

t.test('a Service parent gets a listener, a route config ending in 404, clusters and a redirect', async (t) => {
  const { svc, resources, routes } = run(httpRoute('r', { ...parent, rules: [{ backendRefs: [{ name: 'v1', port: 8080, weight: 70 }, { name: 'v2', port: 8080, weight: 30 }] }] }));
  t.same(svc?.redirects, [{ service: 'default/web', port: 80, listener: 'gamma/default/web:80', proxyPort: ctx.proxyPort('gamma/default/web:80') }]);
  t.same(resources.map((r) => r['@type'].split('.').pop()).sort(), ['Cluster', 'Cluster', 'ClusterLoadAssignment', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration']);
  t.same(routes[0].route.weightedClusters.clusters, [{ name: 'default/v1:8080', weight: 70 }, { name: 'default/v2:8080', weight: 30 }]);
  t.same(routes.at(-1), { match: { prefix: '/' }, directResponse: { status: 404 } }, 'unmatched requests get 404');
  const cla = resources.find((r) => r.clusterName === 'default/v1:8080');
  t.same(cla.endpoints[0].lbEndpoints.map((e: any) => `${e.endpoint.address.socketAddress.address}:${e.endpoint.address.socketAddress.portValue}`), ['10.1.0.1:9001'], 'ready, non-terminating, target port');
});

t.test('matches translate and order by Gateway API precedence across routes', async (t) => {
  const older = at('2025-01-01T00:00:00Z', httpRoute('older', { ...parent, rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/a/' } }], backendRefs: [{ name: 'v1', port: 8080 }] }] }));
  const newer = at('2026-01-01T00:00:00Z', httpRoute('newer', {
    ...parent,
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [{ name: 'X-One', value: '1' }, { name: 'x-two', value: '2', type: 'RegularExpression' }] }], backendRefs: [{ name: 'v2', port: 8080 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/' }, method: 'POST' }], backendRefs: [{ name: 'v2', port: 8080 }] },
      { matches: [{ path: { type: 'Exact', value: '/exact' } }], backendRefs: [{ name: 'v2', port: 8080 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/a' }, queryParams: [{ name: 'q', value: 'x' }] }], backendRefs: [{ name: 'v2', port: 8080 }] },
      { matches: [{ path: { type: 'RegularExpression', value: '/r/[0-9]+' } }], backendRefs: [{ name: 'v2', port: 8080 }] },
    ],
  }));
  const { routes } = run(newer, older);
  const m = routes.map((r) => r.match);
  t.same(m[0], { path: '/exact' }, 'exact first');
  t.same(m[1], { safeRegex: { regex: '/r/[0-9]+' } }, 'then regular expressions');
  t.same(m[2], { pathSeparatedPrefix: '/a', queryParameters: [{ name: 'q', stringMatch: { exact: 'x' } }] }, 'same prefix: the one with a query match wins over the older route');
  t.same(m[3], { pathSeparatedPrefix: '/a' }, 'trailing slash trimmed; prefixes match whole path elements');
  t.same(m[4], { prefix: '/', headers: [{ name: ':method', stringMatch: { exact: 'POST' } }] }, 'method before header count');
  t.same(m[5].headers, [{ name: 'x-one', stringMatch: { exact: '1' } }, { name: 'x-two', stringMatch: { safeRegex: { regex: '2' } } }]);
});

t.test('filters: header modifiers, redirects, rewrites; unsupported ones are issues', async (t) => {
  const { units, routes } = run(httpRoute('f', {
    ...parent,
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/old' } }],
        filters: [
          { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'a', value: '1' }], add: [{ name: 'b', value: '2' }], remove: ['c'] } },
          { type: 'URLRewrite', urlRewrite: { hostname: 'new.example', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } } },
          { type: 'RequestMirror', requestMirror: {} },
        ],
        backendRefs: [{ name: 'v1', port: 8080 }],
      },
      { matches: [{ path: { type: 'Exact', value: '/moved' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', hostname: 'x.example', statusCode: 301, path: { type: 'ReplaceFullPath', replaceFullPath: '/here' } } }] },
      { matches: [{ path: { type: 'Exact', value: '/found' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'y.example' } }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/strip' } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }], backendRefs: [{ name: 'v1', port: 8080 }] },
    ],
  }));
  const old = routes.find((r) => r.match.pathSeparatedPrefix === '/old');
  t.same(old.requestHeadersToAdd, [
    { header: { key: 'a', value: '1' }, appendAction: 'OVERWRITE_IF_EXISTS_OR_ADD' },
    { header: { key: 'b', value: '2' } }, // APPEND_IF_EXISTS_OR_ADD is the default, so proto3 JSON leaves it out
  ]);
  t.same(old.requestHeadersToRemove, ['c']);
  t.equal(old.route.hostRewriteLiteral, 'new.example');
  t.equal(old.route.prefixRewrite, '/new');
  t.same(routes.find((r) => r.match.path === '/moved').redirect, { schemeRedirect: 'https', hostRedirect: 'x.example', pathRedirect: '/here' }, '301 is Envoy\'s default code, so it is left out');
  t.equal(routes.find((r) => r.match.path === '/found').redirect.responseCode, 'FOUND', 'Gateway API redirects default to 302');
  t.same(routes.find((r) => r.match.pathSeparatedPrefix === '/strip').route.regexRewrite, { pattern: { regex: '^/strip/*' }, substitution: '/' }, 'replacing a prefix with / leaves no double slash');
  const issue = units.find((u) => u.object === 'HTTPRoute default/f')!.issues[0];
  t.match(issue, { field: 'spec.rules[0].filters[2]', origin: { file: 'r.yaml' } });
  t.match(issue.message, /RequestMirror is not supported/);
});

t.test('missing references are issues; invalid backends get 500, others keep serving', async (t) => {
  const { units, routes } = run(httpRoute('m', {
    parentRefs: [...parent.parentRefs, { kind: 'Service', name: 'nope' }, { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/half' } }], backendRefs: [{ name: 'v1', port: 8080 }, { name: 'ghost', port: 80 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/none' } }] },
    ],
  }));
  const issues = units.find((u) => u.object === 'HTTPRoute default/m')!.issues.map((i) => `${i.field}: ${i.message}`);
  t.same(issues, ['spec.parentRefs[1]: Service default/nope not found', 'spec.rules[0].backendRefs[1]: Service default/ghost not found; requests to it get 500'], 'Gateway parents are not the mesh\'s business');
  const half = routes.find((r) => r.match.pathSeparatedPrefix === '/half');
  t.same(half.route.weightedClusters.clusters.map((c: any) => c.name), ['default/v1:8080', '!invalid/default/ghost:80']);
  t.equal(half.route.clusterNotFoundResponseCode, 'INTERNAL_SERVER_ERROR', 'the share for the missing backend gets 500');
  t.same(routes.find((r) => r.match.pathSeparatedPrefix === '/none').directResponse, { status: 500 }, 'no backends: 500');
});

t.test('two routes on one Service port merge; a parent without a port attaches to every port', async (t) => {
  const { units } = run(
    httpRoute('a', { ...parent, rules: [{ matches: [{ path: { type: 'Exact', value: '/a' } }], backendRefs: [{ name: 'v1', port: 8080 }] }] }),
    httpRoute('b', { parentRefs: [{ kind: 'Service', name: 'web' }], rules: [{ matches: [{ path: { type: 'Exact', value: '/b' } }], backendRefs: [{ name: 'v2', port: 8080 }] }] }),
  );
  const rc = (obj: string) => (units.find((u) => u.object === obj)!.resources.map(anyToJson) as any[]).find((r) => r['@type'].endsWith('RouteConfiguration'));
  t.same(rc('Service default/web:80').virtualHosts[0].routes.map((r: any) => r.match.path).slice(0, 2), ['/a', '/b']);
  t.same(rc('Service default/web:9000').virtualHosts[0].routes.map((r: any) => r.match.path).slice(0, 1), ['/b']);
});

t.test("the Service's listener binds the node proxy addresses", async (t) => {
  const proxyAddresses = { v4: '169.254.90.1', v6: 'fd5c:1ce0:7e11::1' };
  const units = translateHttpRoutes(model(...services, httpRoute('r', { ...parent, rules: [{ backendRefs: [{ name: 'v1', port: 8080 }] }] })), { ...ctx, proxyAddresses });
  const l = (units.find((u) => u.object === 'Service default/web:80')?.resources ?? []).map(anyToJson).find((r: any) => r['@type'].endsWith('Listener')) as any;
  const port = ctx.proxyPort('gamma/default/web:80');
  t.same(l.address, { socketAddress: { address: proxyAddresses.v4, portValue: port } });
  t.same(l.additionalAddresses, [{ address: { socketAddress: { address: proxyAddresses.v6, portValue: port } } }]);
  t.equal(l.freebind, true);
});
