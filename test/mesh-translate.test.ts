// The mesh translator, pure: which chains, clusters, virtual hosts and RBAC
// rules a node's Envoy gets from the model and a MeshAuthz table.
import t from 'tap';
import { bundleSecret, SPIFFE_VALIDATOR, svidSecret } from '../src/identity/sds-secrets.js';
import { BUNDLE_SECRET_NAME, svidSecretName, workloadSpiffeId } from '../src/identity/types.js';
import type { MeshAuthz, MeshEndpointAuthz } from '../src/policy/mesh-authz.js';
import { anyToJson } from '../src/proto/any.js';
import { MESH_ALLOW_FILTER, MESH_DENY_FILTER, meshClusterName, meshRouteName, meshSni } from '../src/translate/mesh-envoy.js';
import { MeshMemo, translateMesh, MESH_INBOUND_UNIT, MESH_OUTBOUND_UNIT } from '../src/translate/mesh.js';
import { integerRangePieces, portRangesRegex } from '../src/translate/port-regex.js';
import type { ObjectTranslation } from '../src/translate/output.js';
import { model, namespace, pod, seeded } from './helpers/policy-world.js';

const TD = 'cluster.local';
const id = (ns: string, sa: string) => workloadSpiffeId(TD, ns, sa);
const node = (name: string, ...ips: string[]) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: ips.map((address) => ({ type: 'InternalIP', address })) } });
const dual = (p: any, v6: string) => ({ ...p, status: { ...p.status, podIPs: [...p.status.podIPs, { ip: v6 }] } });

const objects = [
  namespace('default', { 'sluice.io/mesh': 'enabled' }),
  namespace('other', { 'sluice.io/mesh': 'enabled' }),
  namespace('plain'),
  node('n1', '192.168.0.1', 'fd00::1'),
  node('n2', '192.168.0.2'),
  node('n3', '192.168.0.3'),
  dual(pod('a1', '10.1.0.1', {}, { node: 'n1', sa: 'a' }), 'fd01::1'),
  pod('a2', '10.1.0.2', {}, { node: 'n1', sa: 'a' }),
  pod('c', '10.1.0.3', {}, { node: 'n1', sa: 'c' }),
  // Another namespace's service account of the same name: another identity.
  pod('oa', '10.1.0.4', {}, { node: 'n1', sa: 'a', namespace: 'other' }),
  dual(pod('b1', '10.2.0.1', {}, { node: 'n2', sa: 'b' }), 'fd02::1'),
  pod('b2', '10.3.0.1', {}, { node: 'n3', sa: 'b' }),
  pod('d', '10.2.0.2', {}, { node: 'n2', sa: 'd' }),
  pod('e', '10.2.0.3', {}, { node: 'n2', sa: 'b', namespace: 'plain' }),
  pod('local-plain', '10.1.0.9', {}, { node: 'n1', sa: 'a', namespace: 'plain' }),
];
const ctx = (nodeName: string) => ({ nodeName, proxyPort: () => 0, proxyAddresses: { v4: '169.254.90.1', v6: 'fd5c::1' } });
const json = (u: ObjectTranslation | undefined) => (u?.resources ?? []).map((r) => anyToJson(r) as any);
const unit = (units: ObjectTranslation[], object: string) => units.find((u) => u.object === object);
const byType = (u: ObjectTranslation | undefined, type: string) => json(u).filter((r) => r['@type'].endsWith(type));

t.test('outbound: a chain and a cluster per (local source identity, remote destination identity, node)', async (t) => {
  const units = translateMesh({ model: model(objects), ctx: ctx('n1'), trustDomain: TD, authz: new Map() });
  const out = unit(units, MESH_OUTBOUND_UNIT);
  const [listener] = byType(out, 'Listener');
  t.equal(listener.name, 'sluice-mesh-outbound');
  t.same(listener.address.socketAddress, { address: '169.254.90.1', portValue: 15001 });
  t.ok(listener.transparent);
  const names: string[] = listener.filterChains.map((c: any) => c.name);
  t.notOk(listener.filterChains.some((c: any) => c.filterChainMatch), 'chains carry no match of their own: the matcher picks them');
  /** The chain the matcher picks for (destination, source), read back from the listener. */
  const picks = new Map<string, string>();
  const tree = listener.filterChainMatcher.matcherTree;
  t.match(tree.input.typedConfig['@type'], /DestinationIPInput$/);
  for (const [dst, m] of Object.entries<any>(tree.exactMatchMap.map)) {
    t.match(m.matcher.matcherTree.input.typedConfig['@type'], /SourceIPInput$/);
    for (const [src, a] of Object.entries<any>(m.matcher.matcherTree.exactMatchMap.map)) picks.set(`${dst} ${src}`, a.action.typedConfig.value.value ?? a.action.typedConfig.value);
  }
  const sources = [id('default', 'a'), id('default', 'c'), id('other', 'a')];
  const destinations = [[id('default', 'b'), 'n2'], [id('default', 'b'), 'n3'], [id('default', 'd'), 'n2']];
  const want = sources.flatMap((s) => destinations.map(([d, n]) => meshClusterName({ source: s, destination: d, node: n })));
  t.same([...names].sort(), want.sort(), 'every local identity to every remote (identity, node); nothing to non-meshed pods or local ones');
  t.same(new Set(picks.values()), new Set(names), 'every chain is reachable');
  const ab2 = meshClusterName({ source: id('default', 'a'), destination: id('default', 'b'), node: 'n2' });
  t.same([...picks].filter(([, c]) => c === ab2).map(([k]) => k).sort(), ['10.2.0.1 10.1.0.1', '10.2.0.1 10.1.0.2', '10.2.0.1 fd01::1', 'fd02::1 10.1.0.1', 'fd02::1 10.1.0.2', 'fd02::1 fd01::1'], "default/a's local pods to default/b's pods on n2, both families");
  const oa = meshClusterName({ source: id('other', 'a'), destination: id('default', 'b'), node: 'n2' });
  t.same([...new Set([...picks].filter(([, c]) => c === oa).map(([k]) => k.split(' ')[1]))], ['10.1.0.4'], "other/a's chain takes only its own pod: a namespace's pods never borrow another's identity");
  const everywhere = [...picks.keys()].flatMap((k) => k.split(' '));
  t.notOk(everywhere.includes('10.2.0.3') || everywhere.includes('10.1.0.9'), 'pods of a namespace that is not meshed are in no match');
  t.notOk([...picks.keys()].some((k) => k.startsWith('10.1.') || k.startsWith('fd01:')), "this node's pods are never destinations: same-node traffic is not tunnelled");
  const tcp = listener.filterChains[0].filters[0].typedConfig;
  t.equal(tcp.tunnelingConfig.hostname, '%DOWNSTREAM_LOCAL_ADDRESS%', 'the CONNECT authority is the original destination');

  const clusters = byType(out, 'Cluster');
  t.same(clusters.map((c) => c.name).sort(), want.sort());
  const c = clusters.find((x) => x.name === meshClusterName({ source: id('default', 'a'), destination: id('default', 'b'), node: 'n3' }))!;
  t.same(c.loadAssignment.endpoints[0].lbEndpoints[0].endpoint.address.socketAddress, { address: '192.168.0.3', portValue: 15008 }, "n3's InternalIP, the tunnel port");
  const tls = c.transportSocket.typedConfig;
  t.equal(tls.sni, meshSni(id('default', 'b')));
  t.same(tls.commonTlsContext.tlsCertificateSdsSecretConfigs.map((s: any) => s.name), [svidSecretName(id('default', 'a'))], "the source workload's own SVID, not a node identity");
  t.equal(tls.commonTlsContext.combinedValidationContext.validationContextSdsSecretConfig.name, BUNDLE_SECRET_NAME);
  t.same(tls.commonTlsContext.combinedValidationContext.defaultValidationContext.matchTypedSubjectAltNames, [{ sanType: 'URI', matcher: { exact: id('default', 'b') } }], 'the peer must be the destination identity');
  t.equal(c.upstreamBindConfig.socketOptions[0].intValue, '7392', 'tunnel sockets carry the proxy mark');
});

t.test('inbound: an SNI chain per local identity, a virtual host per local meshed pod, nothing else', async (t) => {
  const units = translateMesh({ model: model(objects), ctx: ctx('n2'), trustDomain: TD, authz: new Map() });
  const inb = unit(units, MESH_INBOUND_UNIT);
  const [listener] = byType(inb, 'Listener');
  t.same(listener.address.socketAddress, { address: '192.168.0.2', portValue: 15008 }, "on the node's InternalIP");
  t.same(listener.filterChains.map((c: any) => c.filterChainMatch.serverNames), [[meshSni(id('default', 'b'))], [meshSni(id('default', 'd'))]]);
  const dtls = listener.filterChains[0].transportSocket.typedConfig;
  t.equal(dtls.requireClientCertificate, true);
  t.same(dtls.commonTlsContext.tlsCertificateSdsSecretConfigs.map((s: any) => s.name), [svidSecretName(id('default', 'b'))]);
  t.equal(dtls.commonTlsContext.validationContextSdsSecretConfig.name, BUNDLE_SECRET_NAME);
  const hcm = listener.filterChains[0].filters[0].typedConfig;
  t.equal(hcm.rds.routeConfigName, meshRouteName(id('default', 'b')));
  t.match(hcm.accessLog[0].typedConfig.logFormat.textFormatSource.inlineString, /%DOWNSTREAM_PEER_URI_SAN%/);
  const routes = byType(inb, 'RouteConfiguration');
  const b = routes.find((r) => r.name === meshRouteName(id('default', 'b')))!;
  t.same(b.virtualHosts.map((v: any) => [v.name, v.domains]), [['default/b1', ['10.2.0.1:*', '[fd02::1]:*']]], 'only default/b1: not b2 on n3, not plain/e (not meshed), not d (another identity)');
  const re = new RegExp(`^${b.virtualHosts[0].routes[0].match.headers[0].stringMatch.safeRegex.regex}$`);
  t.same(['10.2.0.1:80', '[fd02::1]:443', '10.2.0.1:80@1.2.3.4:9', '10.2.0.3:80', '10.2.0.1'].map((a) => re.test(a)), [true, true, false, false, false], 'the route takes only "pod address:port"');
  const [cluster] = byType(inb, 'Cluster');
  t.same(cluster.originalDstLbConfig, { useHttpHeader: true, httpHeaderName: ':authority' });
});

t.test('RBAC from a MeshAuthz table: exact SPIFFE IDs, ports from the authority, deny first', async (t) => {
  const entry = (e: Partial<MeshEndpointAuthz>): MeshEndpointAuthz => ({ pod: 'default/b1', ips: ['10.2.0.1'], enforced: true, allow: [], deny: [], ...e });
  const rbacOf = (authz: MeshAuthz) => {
    const inb = unit(translateMesh({ model: model(objects), ctx: ctx('n2'), trustDomain: TD, authz }), MESH_INBOUND_UNIT);
    const vh = byType(inb, 'RouteConfiguration').find((r) => r.name === meshRouteName(id('default', 'b')))!.virtualHosts[0];
    return { allow: vh.typedPerFilterConfig[MESH_ALLOW_FILTER].rbac.rules, deny: vh.typedPerFilterConfig[MESH_DENY_FILTER].rbac.rules };
  };
  const open = rbacOf(new Map());
  // ALLOW is the enum's zero: proto3 JSON leaves it out.
  t.same(open.allow, { policies: { 'not enforced': { permissions: [{ any: true }], principals: [{ authenticated: {} }] } } }, 'no entry: any authenticated peer');
  t.same(open.deny, { action: 'DENY' }, '...and nothing denied');
  const r = rbacOf(new Map([['default/b1', entry({ allow: [{ ports: [{ from: 80, to: 80 }, { from: 8000, to: 8100 }], principals: [id('default', 'a')] }, { ports: 'any', principals: 'any' }].slice(0, 1), deny: [{ ports: 'any', principals: [id('other', 'a')] }] })]]));
  t.equal(r.allow.action, undefined, 'ALLOW');
  const p = r.allow.policies['allow[0]'];
  t.same(p.principals, [{ orIds: { ids: [{ authenticated: { principalName: { exact: id('default', 'a') } } }] } }]);
  const portRe = new RegExp(`^${p.permissions[0].header.stringMatch.safeRegex.regex}$`);
  t.equal(p.permissions[0].header.name, ':authority');
  t.same(['10.2.0.1:80', '10.2.0.1:8050', '10.2.0.1:8101', '10.2.0.1:81', '[fd02::1]:8000'].map((a) => portRe.test(a)), [true, true, false, false, true]);
  t.same(r.deny.policies['deny[0]'].principals, [{ orIds: { ids: [{ authenticated: { principalName: { exact: id('other', 'a') } } }] } }]);
  t.same(rbacOf(new Map([['default/b1', entry({})]])).allow, {}, 'ALLOW without a policy, when enforced with no allow: nothing admitted');
  t.same(rbacOf(new Map([['default/b1', entry({ enforced: false, deny: [{ ports: 'any', principals: 'any' }] })]])).deny.policies['deny[0]'].principals, [{ authenticated: {} }], 'deny rules hold for a pod not enforced too');
  const onlyOther = rbacOf(new Map([['default/d', entry({ pod: 'default/d' })]]));
  t.same(onlyOther.allow.policies['not enforced'].principals, [{ authenticated: {} }], "another pod's entry does not touch b1");
});

t.test('nothing without a local meshed pod; issues name the object and field', async (t) => {
  t.same(translateMesh({ model: model(objects.filter((o: any) => o.kind !== 'Namespace')), ctx: ctx('n1'), trustDomain: TD, authz: new Map() }), [], 'no namespace meshed: no units');
  t.same(translateMesh({ model: model(objects), ctx: ctx('n9'), trustDomain: TD, authz: new Map() }), [], 'no meshed pod on this node: no units');
  const broken = [...objects.filter((o: any) => o.metadata.name !== 'n2'), node('n2'), pod('dup', '10.1.0.2', {}, { node: 'n2', sa: 'x' })];
  const units = translateMesh({ model: model(broken), ctx: ctx('n1'), trustDomain: TD, authz: new Map() });
  const issues = units.flatMap((u) => u.issues);
  t.same(
    issues.map((i) => [i.object, i.field]).sort(),
    [['Node n2', 'status.addresses'], ['Pod default/a2', 'status.podIPs'], ['Pod default/dup', 'status.podIPs']],
    'a node without an InternalIP, and both pods claiming one address',
  );
  const [listener] = byType(unit(units, MESH_OUTBOUND_UNIT), 'Listener');
  const all = JSON.stringify([listener.filterChains, listener.filterChainMatcher]);
  t.notOk(all.includes('10.1.0.2'), 'the shared address is in no chain');
  t.notOk(all.includes('|n2'), 'no tunnel to a node without an address');
  t.ok(all.includes('|n3'), 'tunnels to the other nodes stay');
  const garbled = translateMesh({
    model: model([...objects.filter((o: any) => o.metadata.name !== 'n3'), node('n3', 'not-an-ip', '192.168.0.3'), dual(pod('odd', 'nope', {}, { node: 'n2', sa: 'b' }), 'fd02:0:0::7')]),
    ctx: ctx('n1'),
    trustDomain: TD,
    authz: new Map(),
  });
  t.same(garbled.flatMap((u) => u.issues).map((i) => [i.object, i.field]).sort(), [['Node n3', 'status.addresses'], ['Pod default/odd', 'status.podIPs']], 'addresses that are no IP: issues on the Pod and the Node');
  const g = JSON.stringify(json(unit(garbled, MESH_OUTBOUND_UNIT)));
  t.notOk(g.includes('nope') || g.includes('not-an-ip'), '...and left out, so Envoy is never handed them');
  t.ok(g.includes('"fd02::7"') && g.includes('"192.168.0.3"'), "...the rest kept, IPv6 in Envoy's compressed form");
  const localBroken = translateMesh({ model: model([...objects.filter((o: any) => o.metadata.name !== 'n1'), node('n1')]), ctx: ctx('n1'), trustDomain: TD, authz: new Map() });
  t.notOk(unit(localBroken, MESH_INBOUND_UNIT), 'no inbound listener on a node without an InternalIP...');
  t.ok(unit(localBroken, 'Node n1')?.issues[0].message.includes('InternalIP'), '...with an issue on the Node');
  t.ok(unit(localBroken, MESH_OUTBOUND_UNIT), '...while its outbound tunnels still work');
});

t.test('an unchanged input returns the same units; a change rebuilds only what it touches', async (t) => {
  const memo = new MeshMemo();
  const m = model(objects);
  const run = (authz: MeshAuthz = new Map()) => translateMesh({ model: m, ctx: ctx('n1'), trustDomain: TD, authz }, memo);
  const first = run();
  const second = run();
  t.equal(unit(second, MESH_OUTBOUND_UNIT), unit(first, MESH_OUTBOUND_UNIT), 'the outbound unit is the same object');
  t.equal(unit(second, MESH_INBOUND_UNIT), unit(first, MESH_INBOUND_UNIT), 'the inbound unit too');
  const authz: MeshAuthz = new Map([['default/c', { pod: 'default/c', ips: ['10.1.0.3'], enforced: true, allow: [], deny: [] }]]);
  const third = run(authz);
  t.equal(unit(third, MESH_OUTBOUND_UNIT), unit(first, MESH_OUTBOUND_UNIT), 'authorization does not touch the outbound side');
  const before = unit(first, MESH_INBOUND_UNIT)!.resources;
  const after = unit(third, MESH_INBOUND_UNIT)!.resources;
  t.not(unit(third, MESH_INBOUND_UNIT), unit(first, MESH_INBOUND_UNIT));
  t.equal(after[0], before[0], 'the inbound listener is not re-encoded (open tunnels keep their connections)');
  const changed = after.filter((r, i) => r !== before[i]).map((r) => (anyToJson(r) as any).name);
  t.same(changed, [meshRouteName(id('default', 'c'))], "only default/c's routes change");
});

t.test('a remote pod coming changes the outbound matcher, not the chains', async (t) => {
  const listenerOf = (objs: object[]) => byType(unit(translateMesh({ model: model(objs), ctx: ctx('n1'), trustDomain: TD, authz: new Map() }), MESH_OUTBOUND_UNIT), 'Listener')[0];
  const before = listenerOf(objects);
  const after = listenerOf([...objects, pod('b3', '10.2.0.9', {}, { node: 'n2', sa: 'b' })]);
  t.same(after.filterChains, before.filterChains, 'the chains are the same: Envoy keeps them and the tunnels on them');
  t.not(JSON.stringify(after.filterChainMatcher), JSON.stringify(before.filterChainMatcher));
  t.ok(after.filterChainMatcher.matcherTree.exactMatchMap.map['10.2.0.9'], 'the new pod is in the matcher');
});

t.test('port ranges as regexes: exactly the numbers in the range', async (t) => {
  const rand = seeded(7);
  const cases: [number, number][] = [[0, 0], [1, 65535], [80, 80], [8000, 8999], [99, 101], [1, 9], [10, 99], [65500, 65535], [123, 4567]];
  for (let i = 0; i < 40; i++) {
    const a = rand(65536);
    const b = a + rand(Math.min(65536 - a, i % 2 ? 200 : 65536));
    cases.push([a, b]);
  }
  for (const [from, to] of cases) {
    const re = new RegExp(`^${portRangesRegex([{ from, to }])}$`);
    let wrong = -1;
    for (let n = 0; n <= 65535 && wrong < 0; n++) if (re.test(String(n)) !== (n >= from && n <= to)) wrong = n;
    t.equal(wrong, -1, `${from}-${to}: ${integerRangePieces(from, to).length} pieces, no port misjudged`);
    t.notOk(re.test(`0${from}`), `${from}-${to}: no leading zeros`);
  }
});

t.test('SDS secrets: named per the contract, the bundle carries the SPIFFE validator', async (t) => {
  const svid = { spiffeId: id('default', 'a'), certChainPem: ['-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n'], keyPem: 'KEY', notBefore: new Date(0), notAfter: new Date(1), serial: '1' };
  const s = anyToJson(svidSecret(svid)) as any;
  t.equal(s.name, svidSecretName(svid.spiffeId));
  t.equal(s.tlsCertificate.certificateChain.inlineString, svid.certChainPem[0]);
  t.equal(s.tlsCertificate.privateKey.inlineString, 'KEY');
  const b = anyToJson(bundleSecret({ trustDomain: TD, x509AuthoritiesPem: ['ROOT1', 'ROOT2'], jwks: { keys: [] }, sequence: 3 })) as any;
  t.equal(b.name, BUNDLE_SECRET_NAME);
  t.equal(b.validationContext.customValidatorConfig.name, SPIFFE_VALIDATOR);
  t.same(b.validationContext.customValidatorConfig.typedConfig.trustDomains, [{ name: TD, trustBundle: { inlineString: 'ROOT1\nROOT2\n' } }]);
  t.throws(() => bundleSecret({ trustDomain: TD, x509AuthoritiesPem: [], jwks: { keys: [] }, sequence: 1 }), /no X\.509 authority/);
});
