/**
 * The control plane's Kubernetes objects, declared once in TypeBox from the
 * sidecar's policy declaration (sidecar/config/policy-schema.ts): DNSPolicy
 * (namespaced, the tenant's) and ClusterDNSPolicy (cluster-scoped, the
 * platform's, with a selector), their status, and the CustomResourceDefinitions
 * `npm run schemas` writes to deploy/crds/. The TypeScript types, the strict
 * schemas render.ts validates objects with, and the CRDs' structural
 * openAPIV3Schema all come from these declarations.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { Type } from '../sidecar/config/typebox.ts';
import { jsonSchemaDocument, PodSelectorSchema, PolicySpecSchema, POLICY_API_VERSION, ServiceDiscoverySchema } from '../sidecar/config/policy-schema.ts';

/** The API group of both CRDs. */
export const CRD_GROUP = 'tenant-dns.io';
/** The one version both CRDs serve and store. */
export const CRD_VERSION = 'v1alpha1';
/** `group/version`, the apiVersion of every DNSPolicy and ClusterDNSPolicy (the sidecar's policy documents carry the same). */
export const CRD_API_VERSION = POLICY_API_VERSION;
/** The condition type every status carries. */
export const ACCEPTED_CONDITION = 'Accepted';

/** The names of the two kinds: kind, plural, singular, short names, scope. */
export const CRD_KINDS = {
  DNSPolicy: { kind: 'DNSPolicy', plural: 'dnspolicies', singular: 'dnspolicy', shortNames: ['dnsp'], scope: 'Namespaced' },
  ClusterDNSPolicy: { kind: 'ClusterDNSPolicy', plural: 'clusterdnspolicies', singular: 'clusterdnspolicy', shortNames: ['cdnsp'], scope: 'Cluster' },
} as const;

/** One of the two kinds. */
export type CrdKind = keyof typeof CRD_KINDS;

const TenantName = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: '^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$',
  description: 'A tenant: the value of the tenant label of its namespaces (else the namespace name).',
});

/** A Kubernetes label selector matched against a namespace's labels. */
export const NamespaceSelectorSchema = Type.Object(
  {
    matchLabels: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Labels the namespace must carry with these values.' })),
    matchExpressions: PodSelectorSchema.properties.matchExpressions,
  },
  {
    additionalProperties: false,
    description: 'Namespaces whose labels match (Kubernetes label selector semantics: matchLabels and matchExpressions all hold).',
  },
);

/** Which injected namespaces a ClusterDNSPolicy applies to: every given part must match; none given, every injected namespace. */
export const ClusterSelectorSchema = Type.Object(
  {
    tenants: Type.Optional(Type.Array(TenantName, { maxItems: 1000, description: "Tenants whose namespaces are selected (the namespace's tenant is listed)." })),
    namespaceSelector: Type.Optional(NamespaceSelectorSchema),
  },
  { additionalProperties: false, description: 'Which injected namespaces this policy applies to; absent or {}: every injected namespace.' },
);

/** The `spec` of a DNSPolicy: the tenant's policy (service-discovery isolation is the platform's alone). */
export const DNSPolicySpecSchema = Type.Omit(PolicySpecSchema, ['serviceDiscovery']);

/** Service-discovery isolation as a ClusterDNSPolicy sets it: the tenant's own namespaces are rendered by the controller. */
export const ClusterServiceDiscoverySchema = Type.Omit(ServiceDiscoverySchema, ['namespaces']);

const InternalAddresses = Type.Array(Type.String({ minLength: 2, maxLength: 45, description: 'An IPv4 or IPv6 address.' }), {
  minItems: 1,
  maxItems: 16,
  description: 'Addresses inside the cluster (a ClusterIP, say) the name is answered with.',
});

/**
 * Split horizon: the names the selected tenants publish through tenant-dns
 * gateway, rendered into their own platform layer with internal addresses
 * (gateway/README.md, "Split horizon"). Lists rather than maps, so the CRD
 * stays a structural schema with list-map keys.
 */
export const SplitHorizonSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: "Render the selected tenants' published names into their platform layer." }),
    ingressClasses: Type.Optional(
      Type.Array(Type.Object({ name: Type.String({ minLength: 1, maxLength: 253, description: 'An IngressClass name (an Ingress\'s spec.ingressClassName).' }), addresses: InternalAddresses }, { additionalProperties: false }), {
        maxItems: 64,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
        description: 'The internal addresses of the Ingresses of each class (its controller\'s ClusterIP Service, say).',
      }),
    ),
    gateways: Type.Optional(
      Type.Array(
        Type.Object(
          { namespace: Type.String({ minLength: 1, maxLength: 63 }), name: Type.String({ minLength: 1, maxLength: 253 }), addresses: InternalAddresses },
          { additionalProperties: false },
        ),
        {
          maxItems: 64,
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['namespace', 'name'],
          description: 'The internal addresses of the HTTPRoutes attached to each Gateway (Gateway API).',
        },
      ),
    ),
  },
  { additionalProperties: false, description: 'Off unless enabled. LoadBalancer Services are answered with their spec.clusterIPs; a name without an internal address is not rendered.' },
);

/** The `spec` of a ClusterDNSPolicy: the platform's policy plus its selector. */
export const ClusterDNSPolicySpecSchema = Type.Object(
  {
    ...DNSPolicySpecSchema.properties,
    serviceDiscovery: Type.Optional(ClusterServiceDiscoverySchema),
    selector: Type.Optional(ClusterSelectorSchema),
    domains: Type.Optional(
      Type.Array(
        Type.String({ minLength: 1, maxLength: 253, pattern: '^([A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?\\.)*[A-Za-z0-9_]([-A-Za-z0-9_]{0,61}[A-Za-z0-9_])?\\.?$' }),
        {
          maxItems: 1000,
          description:
            'Domains the selected tenants may publish names under through tenant-dns gateway (their Ingress, LoadBalancer Service and HTTPRoute host names). A name belongs to the tenant whose domain is its longest suffix; a domain assigned to two tenants is published by neither.',
        },
      ),
    ),
    splitHorizon: Type.Optional(SplitHorizonSchema),
  },
  { additionalProperties: false, default: {} },
);

/** One status condition (the shape of metav1.Condition). */
export const ConditionSchema = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, description: `The condition: ${ACCEPTED_CONDITION}.` }),
    status: Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')]),
    reason: Type.String({ minLength: 1, maxLength: 1024, description: 'Accepted, Invalid or Conflict.' }),
    message: Type.String({ maxLength: 32768, description: 'For Accepted=False, the field and what is wrong with it, as `tenant-dns policy validate` prints it.' }),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
    lastTransitionTime: Type.String({ format: 'date-time', description: 'When status last changed.' }),
  },
  { additionalProperties: false },
);

/** The status the controller writes (status subresource). */
export const PolicyStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The generation the status describes.' })),
    conditions: Type.Optional(Type.Array(ConditionSchema, { maxItems: 8, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })),
    namespaces: Type.Optional(Type.Integer({ minimum: 0, description: 'How many injected namespaces the policy applies to.' })),
  },
  { additionalProperties: false },
);

/** The metadata fields the control plane reads (the API server's other fields pass through). */
export const ObjectMetaSchema = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 253 }),
  namespace: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
  uid: Type.Optional(Type.String()),
  generation: Type.Optional(Type.Integer({ minimum: 0 })),
  labels: Type.Optional(Type.Record(Type.String(), Type.String())),
});

function objectSchema<K extends string, S extends TSchema>(kind: K, spec: S, description: string) {
  return Type.Object(
    {
      apiVersion: Type.Literal(CRD_API_VERSION),
      kind: Type.Literal(kind),
      metadata: ObjectMetaSchema,
      spec,
      status: Type.Optional(PolicyStatusSchema),
    },
    { description },
  );
}

/** A DNSPolicy object. */
export const DNSPolicyObjectSchema = objectSchema(
  'DNSPolicy',
  DNSPolicySpecSchema,
  "A tenant's DNS policy for the pods of its namespace: rules, split zones and forward zones, merged with the namespace's other DNSPolicies by name and evaluated after the platform's ClusterDNSPolicies.",
);

/** A ClusterDNSPolicy object. */
export const ClusterDNSPolicyObjectSchema = objectSchema(
  'ClusterDNSPolicy',
  ClusterDNSPolicySpecSchema,
  "The platform's DNS policy for the injected namespaces it selects: evaluated before every tenant rule, which cannot lift its denies; service-discovery isolation between tenants.",
);

/** A DNSPolicy spec. */
export type DNSPolicySpec = Static<typeof DNSPolicySpecSchema>;
/** A ClusterDNSPolicy spec. */
export type ClusterDNSPolicySpec = Static<typeof ClusterDNSPolicySpecSchema>;
/** A ClusterDNSPolicy's split horizon settings. */
export type SplitHorizon = Static<typeof SplitHorizonSchema>;
/** A ClusterDNSPolicy selector. */
export type ClusterSelector = Static<typeof ClusterSelectorSchema>;
/** A status. */
export type PolicyStatus = Static<typeof PolicyStatusSchema>;
/** A status condition. */
export type Condition = Static<typeof ConditionSchema>;

/** Keys of a JSON Schema node that a CRD's structural schema does not take. */
const DROPPED_KEYS = new Set(['$id', '$schema', 'title']);

/**
 * A TypeBox schema as a structural OpenAPI v3 schema for a CRD: unions of
 * literals become `enum`, a literal an `enum` of one, records
 * (`patternProperties`) become `additionalProperties`, `additionalProperties:
 * false` is dropped (the API server prunes unknown fields), fields with a
 * default are not required, and `$id`, `$schema` and `title` go.
 *
 * @throws Error for a union that is not of literals (no structural form).
 */
export function structuralSchema(schema: TSchema): Record<string, unknown> {
  const doc = jsonSchemaDocument(schema);
  return convert(doc, '');
}

function convert(node: Record<string, unknown>, at: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const anyOf = node.anyOf as Record<string, unknown>[] | undefined;
  if (anyOf !== undefined) {
    if (!anyOf.every((s) => s.const !== undefined)) throw new Error(`${at || '(root)'}: a union of non-literals has no structural form`);
    out.type = anyOf[0]!.type;
    out.enum = anyOf.map((s) => s.const);
  }
  for (const [key, value] of Object.entries(node)) {
    if (DROPPED_KEYS.has(key) || key === 'anyOf') continue;
    if (key === 'const') out.enum = [value];
    else if (key === 'additionalProperties') {
      if (value !== false) out.additionalProperties = typeof value === 'object' ? convert(value as Record<string, unknown>, `${at}.*`) : value;
    } else if (key === 'patternProperties') {
      const values = Object.values(value as Record<string, Record<string, unknown>>);
      if (values.length !== 1) throw new Error(`${at}: patternProperties with ${values.length} patterns has no structural form`);
      out.additionalProperties = convert(values[0]!, `${at}.*`);
    } else if (key === 'properties') {
      out.properties = Object.fromEntries(Object.entries(value as Record<string, Record<string, unknown>>).map(([k, v]) => [k, convert(v, `${at}.${k}`)]));
    } else if (key === 'items') out.items = convert(value as Record<string, unknown>, `${at}[]`);
    else out[key] = value;
  }
  return out;
}

/** The openAPIV3Schema of a kind: apiVersion and kind as strings, metadata left to the API server, spec and status structural. */
export function crdOpenApiSchema(kind: CrdKind): Record<string, unknown> {
  const schema = kind === 'DNSPolicy' ? DNSPolicyObjectSchema : ClusterDNSPolicyObjectSchema;
  const root = structuralSchema(schema);
  const properties = root.properties as Record<string, Record<string, unknown>>;
  properties.apiVersion = { type: 'string', description: 'The versioned schema of this object (tenant-dns.io/v1alpha1).' };
  properties.kind = { type: 'string', description: `The kind: ${kind}.` };
  properties.metadata = { type: 'object' };
  delete root.required;
  return root;
}

const accepted = `.status.conditions[?(@.type=="${ACCEPTED_CONDITION}")]`;

/** The CustomResourceDefinition of a kind, as written to deploy/crds/. */
export function customResourceDefinition(kind: CrdKind): Record<string, unknown> {
  const k = CRD_KINDS[kind];
  const columns: Record<string, unknown>[] = [
    { name: 'Accepted', type: 'string', jsonPath: `${accepted}.status`, description: 'Whether the controller accepted the current spec.' },
    { name: 'Reason', type: 'string', jsonPath: `${accepted}.reason`, description: 'Accepted, Invalid or Conflict.' },
  ];
  if (kind === 'ClusterDNSPolicy') columns.push({ name: 'Namespaces', type: 'integer', jsonPath: '.status.namespaces', description: 'Injected namespaces the policy applies to.' });
  columns.push({ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' });
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${k.plural}.${CRD_GROUP}`, labels: { 'app.kubernetes.io/name': 'tenant-dns', 'app.kubernetes.io/component': 'control-plane' } },
    spec: {
      group: CRD_GROUP,
      names: { kind: k.kind, listKind: `${k.kind}List`, plural: k.plural, singular: k.singular, shortNames: [...k.shortNames], categories: ['tenant-dns'] },
      scope: k.scope,
      versions: [
        {
          name: CRD_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: columns,
          schema: { openAPIV3Schema: crdOpenApiSchema(kind) },
        },
      ],
    },
  };
}
