#!/usr/bin/env node
// Writes the cilium.io/v2 CustomResourceDefinitions sluice reads, one file per
// kind, next to this script. The schemas are built here from small shared
// pieces (label selectors, port rules, ...) because apiextensions/v1 has no
// $ref: every copy must be inlined. Field names and shapes follow Cilium's
// API so Cilium YAML keeps applying; the schemas are sluice's own.
//
//   node crds/generate.mjs          rewrite the YAML files
//   node crds/generate.mjs --check  exit 1 if a file is out of date
//
// test/crds.test.ts runs the check, so an edit here without regenerating fails.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));

// ---- building blocks -------------------------------------------------------

const str = (description, extra = {}) => ({ type: 'string', ...(description ? { description } : {}), ...extra });
const bool = (description) => ({ type: 'boolean', description });
const list = (items, description, extra = {}) => ({ type: 'array', ...(description ? { description } : {}), ...extra, items });
const obj = (properties, { description, required, ...extra } = {}) => ({
  type: 'object',
  ...(description ? { description } : {}),
  ...(required ? { required } : {}),
  ...extra,
  properties,
});
const strings = (description, extra) => list({ type: 'string' }, description, extra);
/** Exactly one of these fields must be set. */
const exactlyOne = (...fields) => ({ oneOf: fields.map((f) => ({ required: [f] })) });
/** At least one of these fields must be set. */
const atLeastOne = (...fields) => ({ anyOf: fields.map((f) => ({ required: [f] })) });

// Label values: up to 63 characters, alphanumerics with '-', '_' or '.' inside.
const LABEL_VALUE = '^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$';

function labelSelector(description) {
  return obj(
    {
      matchLabels: {
        type: 'object',
        description: 'Labels that must all be present with these values.',
        additionalProperties: { type: 'string', maxLength: 63, pattern: LABEL_VALUE },
      },
      matchExpressions: list(
        obj(
          {
            key: str('The label key.'),
            operator: str('How the key relates to the values.', { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }),
            values: strings('Values for In and NotIn; empty for Exists and DoesNotExist.', { 'x-kubernetes-list-type': 'atomic' }),
          },
          { required: ['key', 'operator'] },
        ),
        'Requirements that must all hold.',
        { 'x-kubernetes-list-type': 'atomic' },
      ),
    },
    { description, 'x-kubernetes-map-type': 'atomic' },
  );
}

// ---- CiliumEnvoyConfig / CiliumClusterwideEnvoyConfig -----------------------

// The Envoy resource types a CiliumEnvoyConfig may carry (sluice serves these five).
const ENVOY_RESOURCE_TYPES = [
  'type.googleapis.com/envoy.config.listener.v3.Listener',
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
];

function envoyConfigSpec(clusterwide) {
  const nsNote = clusterwide ? 'Defaults to "default".' : "Defaults to the config's own namespace.";
  return obj(
    {
      services: list(
        obj(
          {
            name: str('Name of the Service whose traffic is redirected to the listener.', { minLength: 1 }),
            namespace: str(`Namespace of the Service. ${nsNote}`),
            listener: str('Name of a Listener in spec.resources to redirect to; the first Listener when omitted.'),
            ports: list({ type: 'integer', minimum: 1, maximum: 65535 }, 'Service (frontend) ports to redirect; all of them when omitted.'),
          },
          { required: ['name'] },
        ),
        'Services whose traffic is redirected to a listener of this config; their endpoints are also served over EDS.',
      ),
      backendServices: list(
        obj(
          {
            name: str('Name of the Service.', { minLength: 1 }),
            namespace: str(`Namespace of the Service. ${nsNote}`),
            number: strings('Service ports, as numbers or names in strings, whose endpoints are served; all of them when omitted.'),
          },
          { required: ['name'] },
        ),
        "Services whose endpoints are served over EDS without redirecting the Services' own traffic.",
      ),
      resources: list(
        {
          type: 'object',
          description: 'One Envoy resource in proto3 JSON form, named by its "@type". Its fields are checked by the agent, not here.',
          required: ['@type'],
          properties: { '@type': str('The resource type URL.', { enum: ENVOY_RESOURCE_TYPES }) },
          'x-kubernetes-preserve-unknown-fields': true,
        },
        'Envoy xDS resources: Listener, RouteConfiguration, Cluster, ClusterLoadAssignment and Secret.',
      ),
      nodeSelector: labelSelector('Nodes this config applies to, by Node labels; every node when omitted.'),
    },
    { description: 'The Envoy configuration and the Services it applies to.', required: ['resources'] },
  );
}

// ---- CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy -------------------

const ENTITIES = ['all', 'world', 'world-ipv4', 'world-ipv6', 'cluster', 'host', 'remote-node', 'kube-apiserver', 'ingress', 'init', 'health', 'unmanaged', 'none'];
const PROTOCOLS = ['TCP', 'UDP', 'SCTP', 'VRRP', 'IGMP', 'GRE', 'IPIP', 'IPV6', 'ESP', 'AH', 'ANY'];
// A port number 0-65535, or a port name: alphanumeric runs joined by single '-', with at least one letter.
const PORT =
  '^(0|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]|' +
  '([a-zA-Z0-9]+-)*[a-zA-Z0-9]*[a-zA-Z][a-zA-Z0-9]*(-[a-zA-Z0-9]+)*)$';
const DNS_NAME = '^[-a-zA-Z0-9_]+(\\.[-a-zA-Z0-9_]+)*\\.?$';
const DNS_PATTERN = '^[-a-zA-Z0-9_*]+(\\.[-a-zA-Z0-9_*]+)*\\.?$';
const SNI = '^(\\*\\*?\\.)?[-a-zA-Z0-9_]+(\\.[-a-zA-Z0-9_]+)*\\.?$';
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const ICMP_TYPE =
  '^([0-9]{1,2}|1[0-9]{2}|2[0-4][0-9]|25[0-5]|' +
  [
    'EchoReply', 'DestinationUnreachable', 'Redirect', 'Echo', 'EchoRequest', 'RouterAdvertisement', 'RouterSelection',
    'TimeExceeded', 'ParameterProblem', 'Timestamp', 'TimestampReply', 'Photuris', 'ExtendedEchoRequest', 'ExtendedEchoReply',
    'PacketTooBig', 'MulticastListenerQuery', 'MulticastListenerReport', 'MulticastListenerDone', 'RouterSolicitation',
    'NeighborSolicitation', 'NeighborAdvertisement', 'RedirectMessage', 'RouterRenumbering', 'ICMPNodeInformationQuery',
    'ICMPNodeInformationResponse', 'InverseNeighborDiscoverySolicitation', 'InverseNeighborDiscoveryAdvertisement',
    'HomeAgentAddressDiscoveryRequest', 'HomeAgentAddressDiscoveryReply', 'MobilePrefixSolicitation',
    'MobilePrefixAdvertisement', 'DuplicateAddressRequestCodeSuffix', 'DuplicateAddressConfirmationCodeSuffix',
  ].join('|') +
  ')$';

const endpointSelectors = (description) => list(labelSelector(), description);
const entities = (description) => list({ type: 'string', enum: ENTITIES }, description);
const deprecatedRequires = () => strings('Deprecated and no longer allowed: must be empty.', { maxItems: 0 });

const secretRef = (description) =>
  obj({ name: str('Name of the Secret.'), namespace: str('Namespace of the Secret.') }, { description, required: ['name'] });

const tlsContext = (description) =>
  obj(
    {
      secret: secretRef('Secret holding the certificate chain, private key and/or trusted CA.'),
      trustedCA: str('Item (or file) name of the trusted CA bundle; "ca.crt" when omitted.'),
      certificate: str('Item (or file) name of the certificate chain; "tls.crt" when omitted.'),
      privateKey: str('Item (or file) name of the private key; "tls.key" when omitted.'),
    },
    { description, required: ['secret'] },
  );

const cidrRule = () =>
  obj(
    {
      cidr: str('An IP prefix such as 10.0.0.0/8.', { format: 'cidr' }),
      cidrGroupRef: str('Name of a CiliumCIDRGroup.', { maxLength: 253, pattern: DNS_SUBDOMAIN }),
      cidrGroupSelector: labelSelector('Selects CiliumCIDRGroups by label.'),
      except: strings('Prefixes inside cidr that are excluded.'),
    },
    { description: 'A block of addresses, given directly or through CiliumCIDRGroups.', ...exactlyOne('cidr', 'cidrGroupRef', 'cidrGroupSelector') },
  );

const fqdnSelector = (description) =>
  obj(
    {
      matchName: str('A literal DNS name.', { maxLength: 255, pattern: DNS_NAME }),
      matchPattern: str('A DNS name with "*" wildcards ("**." matches any number of labels).', { maxLength: 255, pattern: DNS_PATTERN }),
    },
    { description, ...exactlyOne('matchName', 'matchPattern') },
  );

const portProtocols = (description) =>
  list(
    obj({
      port: str('A port number, or the name of a named container port.', { pattern: PORT }),
      endPort: { type: 'integer', format: 'int32', minimum: 0, maximum: 65535, description: 'Last port of a range starting at port.' },
      protocol: str('L4 protocol; ANY (the default) matches TCP, UDP and SCTP.', { enum: PROTOCOLS }),
    }),
    description,
    { maxItems: 40 },
  );

const httpRule = () =>
  obj({
    path: str('Extended POSIX regular expression matched against the request path.'),
    method: str('Extended POSIX regular expression matched against the request method.'),
    host: str('Extended POSIX regular expression matched against the Host header.'),
    headers: strings('Headers that must be present ("Name" or "Name: value").'),
    headerMatches: list(
      obj(
        {
          name: str('Header name.', { minLength: 1 }),
          value: str('Exact value to match.'),
          secret: secretRef('Secret whose single item is the value to match.'),
          mismatch: str('What to do when the header does not match; the request is denied when omitted.', { enum: ['LOG', 'ADD', 'DELETE', 'REPLACE'] }),
        },
        { required: ['name'] },
      ),
      'Headers that must match the given values.',
    ),
  });

const kafkaRule = () =>
  obj({
    role: str('A group of API keys: produce or consume.', { enum: ['produce', 'consume'] }),
    apiKey: str('Kafka API key, e.g. produce or fetch.'),
    apiVersion: str('Kafka API version, as a string.'),
    clientID: str('Client identifier.'),
    topic: str('Topic name.', { maxLength: 255 }),
  });

const l7Rules = () =>
  obj(
    {
      http: list(httpRule(), 'HTTP rules; a request must match one of them.'),
      kafka: list(kafkaRule(), 'Kafka rules (deprecated in Cilium).'),
      dns: list(fqdnSelector(), 'DNS rules: names that may be looked up.'),
      l7proto: str('Name of a generic L7 parser for the l7 rules.'),
      l7: list({ type: 'object', additionalProperties: { type: 'string' } }, 'Key-value rules for the l7proto parser.'),
    },
    { description: 'L7 rules; exactly one protocol.', ...exactlyOne('http', 'kafka', 'dns', 'l7proto') },
  );

const portRule = () =>
  obj({
    ports: portProtocols('L4 ports and protocols.'),
    rules: l7Rules(),
    listener: obj(
      {
        envoyConfig: obj(
          {
            kind: str('Kind of the config defining the listener.', { enum: ['CiliumEnvoyConfig', 'CiliumClusterwideEnvoyConfig'] }),
            name: str('Name of that config.', { minLength: 1 }),
          },
          { description: 'The CiliumEnvoyConfig or CiliumClusterwideEnvoyConfig defining the listener.', required: ['name'] },
        ),
        name: str('Listener name.', { minLength: 1 }),
        priority: { type: 'integer', minimum: 1, maximum: 100, description: 'Priority when several rules name different listeners.' },
      },
      { description: 'A custom Envoy listener to redirect this traffic to.', required: ['envoyConfig', 'name'] },
    ),
    terminatingTLS: tlsContext('TLS the proxy terminates.'),
    originatingTLS: tlsContext('TLS the proxy originates towards the destination.'),
    serverNames: list({ type: 'string', maxLength: 255, pattern: SNI }, 'Allowed TLS SNI names.', { minItems: 1, 'x-kubernetes-list-type': 'set' }),
  });

const denyPortRule = () => obj({ ports: portProtocols('L4 ports and protocols.') });

const icmpRules = (description) =>
  list(
    obj({
      fields: list(
        obj(
          {
            family: str('IP family.', { enum: ['IPv4', 'IPv6'], default: 'IPv4' }),
            type: { 'x-kubernetes-int-or-string': true, pattern: ICMP_TYPE, description: 'ICMP type, as a number 0-255 or its name.' },
          },
          { required: ['type'] },
        ),
        'ICMP types.',
        { maxItems: 40 },
      ),
    }),
    description,
  );

const awsGroup = () =>
  obj({
    aws: obj(
      {
        labels: { type: 'object', additionalProperties: { type: 'string' }, description: 'ENI labels.' },
        region: str('Unused.'),
        securityGroupsIds: strings('Security group IDs.'),
        securityGroupsNames: strings('Security group names.'),
      },
      { description: 'Addresses from the AWS integration.' },
    ),
  });

const authentication = () =>
  obj(
    { mode: str('Required authentication mode.', { enum: ['disabled', 'required', 'test-always-fail'] }) },
    { description: 'Authentication required for the allowed traffic.', required: ['mode'] },
  );

const serviceSelectors = () =>
  list(
    obj({
      k8sService: obj({ serviceName: str(), namespace: str() }, { description: 'A Service by name.' }),
      k8sServiceSelector: obj(
        { selector: labelSelector('Service labels.'), namespace: str() },
        { description: 'Services by label.', required: ['selector'] },
      ),
    }),
    'Services whose backends may be connected to.',
  );

function ingressRule(deny) {
  return obj(
    {
      fromEndpoints: endpointSelectors('Endpoints (pods) traffic may come from, by label.'),
      fromRequires: deprecatedRequires(),
      fromCIDR: strings('IP prefixes traffic may come from.'),
      fromCIDRSet: list(cidrRule(), 'IP prefixes, with exceptions, traffic may come from.'),
      fromEntities: entities('Special entities (world, cluster, host, ...) traffic may come from.'),
      fromGroups: list(awsGroup(), 'Address groups from external integrations.'),
      fromNodes: endpointSelectors('Nodes traffic may come from, by Node label.'),
      toPorts: list(deny ? denyPortRule() : portRule(), 'Destination ports on the selected endpoints, with optional L7 rules.'),
      icmps: icmpRules('ICMP types.'),
      ...(deny ? {} : { authentication: authentication() }),
    },
    { description: deny ? 'Traffic denied into the selected endpoints.' : 'Traffic allowed into the selected endpoints.' },
  );
}

function egressRule(deny) {
  return obj(
    {
      toEndpoints: endpointSelectors('Endpoints (pods) that may be reached, by label.'),
      toRequires: deprecatedRequires(),
      toCIDR: strings('IP prefixes that may be reached.'),
      toCIDRSet: list(cidrRule(), 'IP prefixes, with exceptions, that may be reached.'),
      toEntities: entities('Special entities (world, cluster, host, ...) that may be reached.'),
      toServices: serviceSelectors(),
      toGroups: list(awsGroup(), 'Address groups from external integrations.'),
      toNodes: endpointSelectors('Nodes that may be reached, by Node label.'),
      toPorts: list(deny ? denyPortRule() : portRule(), 'Destination ports, with optional L7 rules.'),
      icmps: icmpRules('ICMP types.'),
      ...(deny ? {} : { toFQDNs: list(fqdnSelector(), 'DNS names that may be reached.'), authentication: authentication() }),
    },
    { description: deny ? 'Traffic denied out of the selected endpoints.' : 'Traffic allowed out of the selected endpoints.' },
  );
}

function policyRule(description) {
  return obj(
    {
      endpointSelector: labelSelector('Endpoints (pods) this rule applies to.'),
      nodeSelector: labelSelector('Nodes this rule applies to (host policy; clusterwide policies only).'),
      ingress: list(ingressRule(false), 'Allowed ingress.'),
      ingressDeny: list(ingressRule(true), 'Denied ingress; takes precedence over allowed ingress.'),
      egress: list(egressRule(false), 'Allowed egress.'),
      egressDeny: list(egressRule(true), 'Denied egress; takes precedence over allowed egress.'),
      labels: list(
        obj({ key: str(), value: str(), source: str('Label source, e.g. k8s or unspec.') }, { required: ['key'] }),
        'Labels identifying the rule.',
      ),
      description: str('Free-form text about the rule.'),
      enableDefaultDeny: obj(
        { ingress: bool('Deny ingress not allowed by some rule.'), egress: bool('Deny egress not allowed by some rule.') },
        { description: 'Whether selecting an endpoint puts it in default-deny, per direction.' },
      ),
      log: obj({ value: str('Text added to flow logs matching this rule.', { maxLength: 32 }) }, { description: 'Flow log settings.' }),
    },
    {
      description,
      ...exactlyOne('endpointSelector', 'nodeSelector'),
      ...atLeastOne('ingress', 'ingressDeny', 'egress', 'egressDeny'),
    },
  );
}

const policyStatus = () =>
  obj(
    {
      conditions: list(
        obj(
          {
            type: str('Condition type, e.g. Valid.'),
            status: str('True, False or Unknown.'),
            lastTransitionTime: str('When the status last changed.', { format: 'date-time' }),
            reason: str('Machine-readable reason.'),
            message: str('Human-readable message.'),
          },
          { required: ['type', 'status'] },
        ),
        'Conditions of the policy.',
        { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] },
      ),
      derivativePolicies: {
        type: 'object',
        description: 'Status of policies derived from this one, by name.',
        additionalProperties: obj({
          ok: bool('Whether the policy was imported.'),
          error: str('Why it was not.'),
          lastUpdated: str('When this entry was written.', { format: 'date-time' }),
          localPolicyRevision: { type: 'integer', format: 'int64', description: 'Policy revision that first implemented it.' },
          enforcing: bool('Whether every selected endpoint enforces it.'),
          annotations: { type: 'object', additionalProperties: { type: 'string' }, description: 'Annotations realized.' },
        }),
      },
    },
    { description: 'Observed state, written by controllers.' },
  );

// ---- CRD assembly -----------------------------------------------------------

const AGE = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };
const VALID = { name: 'Valid', type: 'string', jsonPath: ".status.conditions[?(@.type=='Valid')].status" };

function crd({ kind, plural, singular, shortNames, categories, scope, description, properties, required, validations, status, columns }) {
  const schema = {
    type: 'object',
    description,
    required: ['metadata', ...(required ?? [])],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      ...properties,
    },
    ...(validations ? { 'x-kubernetes-validations': validations } : {}),
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.cilium.io`, labels: { 'app.kubernetes.io/part-of': 'sluice' } },
    spec: {
      group: 'cilium.io',
      names: { kind, listKind: `${kind}List`, plural, singular, shortNames, categories },
      scope,
      versions: [
        {
          name: 'v2',
          served: true,
          storage: true,
          ...(status ? { subresources: { status: {} } } : {}),
          additionalPrinterColumns: columns,
          schema: { openAPIV3Schema: schema },
        },
      ],
    },
  };
}

const envoyConfig = (clusterwide) =>
  crd({
    kind: clusterwide ? 'CiliumClusterwideEnvoyConfig' : 'CiliumEnvoyConfig',
    plural: clusterwide ? 'ciliumclusterwideenvoyconfigs' : 'ciliumenvoyconfigs',
    singular: clusterwide ? 'ciliumclusterwideenvoyconfig' : 'ciliumenvoyconfig',
    shortNames: [clusterwide ? 'ccec' : 'cec'],
    categories: ['cilium'],
    scope: clusterwide ? 'Cluster' : 'Namespaced',
    description: clusterwide
      ? 'Envoy configuration for the node proxies, not bound to a namespace: resource names are qualified by the config name only.'
      : "Envoy configuration for the node proxies: resource names are qualified by the config's namespace and name.",
    properties: { spec: envoyConfigSpec(clusterwide) },
    required: ['spec'],
    columns: [AGE],
  });

const networkPolicy = (clusterwide) =>
  crd({
    kind: clusterwide ? 'CiliumClusterwideNetworkPolicy' : 'CiliumNetworkPolicy',
    plural: clusterwide ? 'ciliumclusterwidenetworkpolicies' : 'ciliumnetworkpolicies',
    singular: clusterwide ? 'ciliumclusterwidenetworkpolicy' : 'ciliumnetworkpolicy',
    shortNames: clusterwide ? ['ccnp'] : ['cnp', 'ciliumnp'],
    categories: ['cilium', 'ciliumpolicy'],
    scope: clusterwide ? 'Cluster' : 'Namespaced',
    description: clusterwide
      ? 'L3-L7 network policy selecting endpoints in every namespace, or nodes.'
      : 'L3-L7 network policy for the endpoints of one namespace.',
    properties: {
      spec: policyRule('One policy rule.'),
      specs: list(policyRule('One policy rule.'), 'Several policy rules, as one policy.'),
      status: policyStatus(),
    },
    validations: [{ rule: 'has(self.spec) || has(self.specs)', message: 'spec or specs must be set' }],
    status: true,
    columns: clusterwide ? [VALID, AGE] : [AGE, VALID],
  });

export const CRDS = {
  'ciliumenvoyconfigs.yaml': envoyConfig(false),
  'ciliumclusterwideenvoyconfigs.yaml': envoyConfig(true),
  'ciliumnetworkpolicies.yaml': networkPolicy(false),
  'ciliumclusterwidenetworkpolicies.yaml': networkPolicy(true),
};

export function render(object) {
  return '# Generated by crds/generate.mjs; edit that and run `node crds/generate.mjs`.\n' + stringify(object, { lineWidth: 0 });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [file, object] of Object.entries(CRDS)) {
    const path = join(here, file);
    const text = render(object);
    if (check) {
      let old = '';
      try {
        old = readFileSync(path, 'utf8');
      } catch {}
      if (old !== text) {
        process.stderr.write(`crds/${file} is out of date: run node crds/generate.mjs\n`);
        stale++;
      }
    } else writeFileSync(path, text);
  }
  process.exit(stale ? 1 : 0);
}
