// The Kubernetes objects sluice reads, as far as it reads them. Shapes follow
// the Kubernetes API (camelCase JSON); fields sluice does not use are absent.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  generation?: number;
  resourceVersion?: string;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

export interface ServicePort {
  name?: string;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  port: number;
  targetPort?: number | string;
  nodePort?: number;
  appProtocol?: string;
}

export interface Service extends KubeObject {
  kind: 'Service';
  spec: {
    type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
    clusterIP?: string;
    clusterIPs?: string[];
    ports?: ServicePort[];
    selector?: Record<string, string>;
    sessionAffinity?: 'None' | 'ClientIP';
    sessionAffinityConfig?: { clientIP?: { timeoutSeconds?: number } };
    externalIPs?: string[];
    ipFamilies?: ('IPv4' | 'IPv6')[];
    internalTrafficPolicy?: 'Cluster' | 'Local';
    externalTrafficPolicy?: 'Cluster' | 'Local';
  };
}

export interface EndpointPort {
  name?: string;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  port?: number;
  appProtocol?: string;
}

export interface Endpoint {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
  nodeName?: string;
  zone?: string;
  targetRef?: { kind?: string; name?: string; namespace?: string; uid?: string };
}

export interface EndpointSlice extends KubeObject {
  kind: 'EndpointSlice';
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  endpoints?: Endpoint[];
  ports?: EndpointPort[];
}

export interface Pod extends KubeObject {
  kind: 'Pod';
  spec?: {
    nodeName?: string;
    serviceAccountName?: string;
    hostNetwork?: boolean;
    /** Read for their named ports, which policies may name instead of numbers. */
    containers?: { name?: string; ports?: { name?: string; containerPort: number; protocol?: 'TCP' | 'UDP' | 'SCTP' }[] }[];
  };
  status?: { podIP?: string; podIPs?: { ip: string }[]; phase?: string };
}

export interface Namespace extends KubeObject {
  kind: 'Namespace';
}

export interface ServiceAccount extends KubeObject {
  kind: 'ServiceAccount';
}

export interface Node extends KubeObject {
  kind: 'Node';
  status?: { addresses?: { type: string; address: string }[] };
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

/** cilium.io/v2 CiliumEnvoyConfig and CiliumClusterwideEnvoyConfig share a spec. */
export interface EnvoyConfigSpec {
  services?: { name: string; namespace?: string; ports?: number[]; listener?: string }[];
  /** Cilium names the port filter of a backend Service `number`: port numbers or names, as strings. */
  backendServices?: { name: string; namespace?: string; number?: string[] }[];
  resources?: Record<string, unknown>[];
  nodeSelector?: LabelSelector;
}

export interface CiliumEnvoyConfig extends KubeObject {
  kind: 'CiliumEnvoyConfig';
  spec: EnvoyConfigSpec;
}

export interface CiliumClusterwideEnvoyConfig extends KubeObject {
  kind: 'CiliumClusterwideEnvoyConfig';
  spec: EnvoyConfigSpec;
}

// gateway.networking.k8s.io/v1 HTTPRoute (Gateway API v1.2).

export interface ParentReference {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

export interface HTTPHeaderMatch {
  type?: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

export interface HTTPQueryParamMatch {
  type?: 'Exact' | 'RegularExpression';
  name: string;
  value: string;
}

export interface HTTPRouteMatch {
  path?: { type?: 'Exact' | 'PathPrefix' | 'RegularExpression'; value?: string };
  headers?: HTTPHeaderMatch[];
  queryParams?: HTTPQueryParamMatch[];
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'CONNECT' | 'OPTIONS' | 'TRACE' | 'PATCH';
}

export interface HTTPHeaderFilter {
  set?: { name: string; value: string }[];
  add?: { name: string; value: string }[];
  remove?: string[];
}

export interface HTTPPathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  replaceFullPath?: string;
  replacePrefixMatch?: string;
}

export interface HTTPRouteFilter {
  type: 'RequestHeaderModifier' | 'ResponseHeaderModifier' | 'RequestMirror' | 'RequestRedirect' | 'URLRewrite' | 'ExtensionRef';
  requestHeaderModifier?: HTTPHeaderFilter;
  responseHeaderModifier?: HTTPHeaderFilter;
  requestRedirect?: {
    scheme?: 'http' | 'https';
    hostname?: string;
    path?: HTTPPathModifier;
    port?: number;
    statusCode?: 301 | 302;
  };
  urlRewrite?: { hostname?: string; path?: HTTPPathModifier };
}

export interface HTTPBackendRef {
  group?: string;
  kind?: string;
  name: string;
  namespace?: string;
  port?: number;
  weight?: number;
  filters?: HTTPRouteFilter[];
}

export interface HTTPRouteRule {
  name?: string;
  matches?: HTTPRouteMatch[];
  filters?: HTTPRouteFilter[];
  backendRefs?: HTTPBackendRef[];
  timeouts?: { request?: string; backendRequest?: string };
}

export interface HTTPRoute extends KubeObject {
  kind: 'HTTPRoute';
  spec: {
    parentRefs?: ParentReference[];
    hostnames?: string[];
    rules?: HTTPRouteRule[];
  };
}

/** gateway.networking.k8s.io/v1beta1 ReferenceGrant: lets objects of other namespaces refer to this one's. */
export interface ReferenceGrant extends KubeObject {
  kind: 'ReferenceGrant';
  spec: {
    from: { group: string; kind: string; namespace: string }[];
    to: { group: string; kind: string; name?: string }[];
  };
}

/**
 * cilium.io/v2 CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy: read and
 * kept so their L7 rules can be translated; the rule shapes live with that translator.
 */
export interface CiliumNetworkPolicy extends KubeObject {
  kind: 'CiliumNetworkPolicy';
  spec?: Record<string, unknown>;
  specs?: Record<string, unknown>[];
}

export interface CiliumClusterwideNetworkPolicy extends KubeObject {
  kind: 'CiliumClusterwideNetworkPolicy';
  spec?: Record<string, unknown>;
  specs?: Record<string, unknown>[];
}

/** networking.k8s.io/v1 NetworkPolicy, the fields the policy room enforces. */
export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

export interface NetworkPolicyPort {
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicy extends KubeObject {
  kind: 'NetworkPolicy';
  spec?: {
    podSelector?: LabelSelector;
    policyTypes?: ('Ingress' | 'Egress')[];
    ingress?: { from?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
    egress?: { to?: NetworkPolicyPeer[]; ports?: NetworkPolicyPort[] }[];
  };
}

export type ModelObject =
  | Service
  | EndpointSlice
  | Pod
  | Namespace
  | ServiceAccount
  | Node
  | CiliumEnvoyConfig
  | CiliumClusterwideEnvoyConfig
  | HTTPRoute
  | ReferenceGrant
  | CiliumNetworkPolicy
  | CiliumClusterwideNetworkPolicy
  | NetworkPolicy;

export type Kind = ModelObject['kind'];

/** apiVersion each kind is read at. */
export const API_VERSIONS: Record<Kind, readonly string[]> = {
  Service: ['v1'],
  EndpointSlice: ['discovery.k8s.io/v1'],
  Pod: ['v1'],
  Namespace: ['v1'],
  ServiceAccount: ['v1'],
  Node: ['v1'],
  CiliumEnvoyConfig: ['cilium.io/v2'],
  CiliumClusterwideEnvoyConfig: ['cilium.io/v2'],
  HTTPRoute: ['gateway.networking.k8s.io/v1'],
  ReferenceGrant: ['gateway.networking.k8s.io/v1beta1'],
  CiliumNetworkPolicy: ['cilium.io/v2'],
  CiliumClusterwideNetworkPolicy: ['cilium.io/v2'],
  NetworkPolicy: ['networking.k8s.io/v1'],
};

export const CLUSTER_SCOPED: ReadonlySet<Kind> = new Set(['Namespace', 'Node', 'CiliumClusterwideEnvoyConfig', 'CiliumClusterwideNetworkPolicy']);

/** "ns/name" for namespaced objects, "name" for cluster-scoped ones. */
export function objectKey(o: KubeObject): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

/** "Kind ns/name", as errors and logs name an object. */
export function describeObject(o: KubeObject): string {
  return `${o.kind} ${objectKey(o)}`;
}
