// The policy room's L7 listeners as Envoy resources. Each is a transparent
// listener on the node proxy address at a proxy port the agent allocates by
// the listener's name: the datapath steers a redirected flow into it keeping
// the original destination, the RBAC filter judges each request, and an
// ORIGINAL_DST cluster takes admitted ones on to where they were going, from
// sockets marked PROXY_UPSTREAM_MARK so the datapath lets them pass.
import type { TranslationIssue } from '../issues/issue.js';
import type { Origin } from '../model/model.js';
import type { L7Listener } from '../policy/l7.js';
import { anyFromJson, type Any } from '../proto/any.js';
import { agentAccessLog } from './access-log.js';
import { ProtoJsonError } from '../proto/json.js';
import type { TranslateContext } from './context.js';
import { proxyListenerAddress } from './envoy-json.js';
import type { ObjectTranslation } from './output.js';
import { enforceable, headerActionIssues, logActions, routeGroups } from './policy-header-actions.js';
import { rbacFilter } from './policy-rbac.js';
import { markedUpstreamBind } from './proxy-mark.js';

type Json = Record<string, any>;
const T = 'type.googleapis.com/';

/** What a request refused by policy gets back: Cilium's users know a 403 with a body saying so. */
export const DENIED_BODY = 'Access denied by policy\n';

export const originalDstClusterName = (listener: string) => `${listener}/original-dst`;

export function originalDstCluster(listener: string): Json {
  return {
    '@type': `${T}envoy.config.cluster.v3.Cluster`,
    name: originalDstClusterName(listener),
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: '5s',
    // Upstream speaks what the client spoke (gRPC stays HTTP/2): the proxy is not meant to show.
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': `${T}envoy.extensions.upstreams.http.v3.HttpProtocolOptions`,
        use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} },
      },
    },
    upstream_bind_config: markedUpstreamBind(),
  };
}

/** The local reply for RBAC's refusal; the policy listener's HCM has no other local 403. */
const localReply = {
  mappers: [
    {
      filter: { status_code_filter: { comparison: { op: 'EQ', value: { default_value: 403, runtime_key: 'sluice.policy.denied_status' } } } },
      body: { inline_string: DENIED_BODY },
    },
  ],
};

export function policyListener(ctx: TranslateContext, l: L7Listener, port: number): Json {
  const cluster = originalDstClusterName(l.listener);
  const rbac = rbacFilter(l);
  const accessLog = [...logActions(l), agentAccessLog({ direction: l.direction, proxyPort: port, listener: l.listener })];
  const chains = routeGroups(l, cluster).map((g, i) => ({
    ...(g.match ? { filter_chain_match: g.match } : {}),
    filters: [
      {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': `${T}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
          stat_prefix: l.listener,
          route_config: { name: `${l.listener}/${i}`, virtual_hosts: [{ name: 'policy', domains: ['*'], routes: g.routes }] },
          http_filters: [rbac, { name: 'envoy.filters.http.router', typed_config: { '@type': `${T}envoy.extensions.filters.http.router.v3.Router` } }],
          local_reply_config: localReply,
          access_log: accessLog,
        },
      },
    ],
  }));
  return {
    '@type': `${T}envoy.config.listener.v3.Listener`,
    name: l.listener,
    ...proxyListenerAddress(ctx, port),
    transparent: true,
    listener_filters: [{ name: 'envoy.filters.listener.original_dst', typed_config: { '@type': `${T}envoy.extensions.filters.listener.original_dst.v3.OriginalDst` } }],
    filter_chains: chains,
  };
}

/** The policies whose rules make up a listener, sorted: they own its resources. */
const policiesOf = (l: L7Listener) => [...new Set(l.rules.map((r) => r.policy))].sort();

/**
 * One unit per set of policies that share listeners, named after them, so a
 * rejection or a problem lands on the policies it comes from. Policies' own
 * issues join the unit of that policy.
 */
export function translatePolicyListeners(
  l7: readonly L7Listener[],
  ctx: TranslateContext,
  policyIssues: readonly TranslationIssue[] = [],
  /** Where each policy ("Kind ns/name") was read from, for the issues found here. */
  origins: ReadonlyMap<string, Origin> = new Map(),
  /** The previous call's encoded listeners, by input: unchanged ones are not encoded again. Replaced in place with this call's. */
  memo: Map<string, Any[]> = new Map(),
): { units: ObjectTranslation[]; ports: Map<string, number> } {
  const previous = new Map(memo);
  memo.clear();
  const units = new Map<string, ObjectTranslation>();
  /** The listeners translated, by name, with their proxy ports. */
  const ports = new Map<string, number>();
  const unit = (object: string) => {
    let u = units.get(object);
    if (!u) units.set(object, (u = { object, resources: [], redirects: [], issues: [] }));
    return u;
  };
  for (const i of policyIssues) unit(i.object).issues.push(i);
  for (const l of l7) {
    const policies = policiesOf(l);
    const u = unit(policies.join(', '));
    const located = (i: TranslationIssue): TranslationIssue => (origins.has(i.object) ? { ...i, origin: origins.get(i.object) } : i);
    u.issues.push(...headerActionIssues(l).map(located));
    const listener = { ...l, rules: l.rules.filter(enforceable) };
    try {
      const port = ctx.proxyPort(l.listener);
      // Which local pods hold the identity does not change the listener.
      const key = JSON.stringify([{ ...listener, endpoints: [] }, port, ctx.proxyAddresses]);
      const resources = previous.get(key) ?? [anyFromJson(policyListener(ctx, listener, port), 'listener'), anyFromJson(originalDstCluster(l.listener), 'cluster')];
      memo.set(key, resources);
      u.resources.push(...resources);
      ports.set(l.listener, port);
    } catch (e) {
      const message = e instanceof ProtoJsonError ? `${e.path}: ${e.detail}` : (e as Error).message;
      for (const object of policies) u.issues.push(located({ object, field: 'rules.http', message: `listener ${l.listener} not served, so its L7 rules are not enforced: ${message}` }));
    }
  }
  return { units: [...units.values()], ports };
}
