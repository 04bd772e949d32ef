/**
 * The DNSPolicy document, declared once: the TypeScript types, the JSON
 * Schema published for editors (schemas/dnspolicy.schema.json) and the load
 * time validation all come from {@link DNSPolicySchema}. Shaped like a
 * Kubernetes object so it can later become a CRD.
 *
 * Checks a JSON Schema cannot express (glob syntax, unique rule names,
 * sinkhole addresses, cname xor addresses, resolveVia targets, one answer
 * per split-zone glob, forward zones outside the cluster zone) live in
 * {@link checkPolicy}, which the loader runs beside the schema.
 */
import { ipFamily } from '../net/ip.ts';
import type { Static, TSchema } from '@sinclair/typebox';
import { Type } from './typebox.ts';
import { isReverseZone } from './cluster.ts';
import type { Problem } from './load.ts';
import { checkUpstreamUrl, parseUpstreamSpec } from '../upstream/spec.ts';
import { redactUrl, showUrl } from '../redact.ts';

/** The apiVersion every DNSPolicy carries. */
export const POLICY_API_VERSION = 'tenant-dns.io/v1alpha1';

/**
 * The rule name of tenant service-discovery isolation's denies (in EDE
 * texts, the query log and the `rule` label), reserved: no policy rule may
 * take it, so a count under it is always the isolation's.
 */
export const ISOLATION_RULE = 'tenant-isolation';

/**
 * Caps on what one DNSPolicy document holds (the tenant's and the
 * platform's each), so that what a policy puts into /metrics stays bounded
 * (DESIGN §6; the series each implies: sidecar/policy/README.md, "Caps").
 * A document past one is refused like any other policy problem
 * (`file:line: field: message`), and the last good policy keeps serving.
 */
export const POLICY_CAPS = Object.freeze({
  /** Rules: one `tenant_dns_policy_decisions_total` series each. Many names belong in one rule's `names`. */
  rules: 1000,
  /** Split zones: no series of their own; each is compiled into the name trie. */
  splitZones: 256,
  /** Forward zones: one upstream group each, one `tenant_dns_upstream_healthy` series per member. */
  forwardZones: 32,
  /** Upstreams of one forward zone: a failover list (more than a few cannot be tried within the 4 s deadline). */
  upstreamsPerZone: 8,
  /** Distinct upstreams (scheme, host and port: the `upstream` label) across the document's forward zones. */
  upstreams: 16,
});

const RuleName = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  description: 'A DNS-label-like name (lower case letters, digits, "-"), unique in the policy; in logs, metrics and EDE texts.',
});

const Glob = Type.String({
  minLength: 1,
  maxLength: 255,
  description:
    'A name glob: "example.com" matches that name only; "*.example.com" every name below it at any depth (not example.com itself); ' +
    'a "*" inside a label ("ads-*.example.com") matches within that one label. Case-insensitive, trailing dot ignored.',
});

const Ip = Type.String({ minLength: 2, maxLength: 45, description: 'An IPv4 or IPv6 address.' });

const Ttl = (def: number | undefined, description: string) =>
  Type.Integer({ minimum: 0, maximum: 604_800, ...(def === undefined ? {} : { default: def }), description });

/** How a deny is answered. */
export const DenyResponseSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('nxdomain'), Type.Literal('refused'), Type.Literal('nodata'), Type.Literal('sinkhole')], {
      default: 'nxdomain',
      description:
        'nxdomain: NXDOMAIN with an SOA and EDE 15 (default); refused: REFUSED (breaks musl search-list walks); ' +
        'nodata: NOERROR with no answer and an SOA; sinkhole: the given addresses.',
    }),
    addresses: Type.Optional(Type.Array(Ip, { minItems: 1, description: 'Sinkhole addresses (required for sinkhole): A answers from IPv4, AAAA from IPv6.' })),
    ttl: Type.Optional(Ttl(undefined, 'Seconds: TTL of the synthesized records and the SOA minimum (default 30).')),
  },
  { additionalProperties: false, description: 'How a denied query is answered.' },
);

const Operator = Type.Union([Type.Literal('In'), Type.Literal('NotIn'), Type.Literal('Exists'), Type.Literal('DoesNotExist')]);

/** A Kubernetes label selector, matched against the pod's own labels. */
export const PodSelectorSchema = Type.Object(
  {
    matchLabels: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Labels the pod must carry with these values.' })),
    matchExpressions: Type.Optional(
      Type.Array(
        Type.Object(
          {
            key: Type.String({ minLength: 1 }),
            operator: Operator,
            values: Type.Optional(Type.Array(Type.String())),
          },
          { additionalProperties: false },
        ),
        { description: 'Set-based requirements (In, NotIn need values; Exists, DoesNotExist take none).' },
      ),
    ),
  },
  { additionalProperties: false, description: 'The rule applies only to pods whose labels match (Kubernetes label selector semantics).' },
);

/** One named policy rule. */
export const RuleSchema = Type.Object(
  {
    name: RuleName,
    action: Type.Union([Type.Literal('allow'), Type.Literal('deny'), Type.Literal('log')], {
      description: 'allow; deny (answered per `response`); log (allow and write a query-log line).',
    }),
    names: Type.Array(Glob, { minItems: 1, description: 'Name globs this rule matches.' }),
    log: Type.Optional(Type.Boolean({ description: 'Write a query-log line for matching queries (deny rules log unless this is false).' })),
    response: Type.Optional(DenyResponseSchema),
    podSelector: Type.Optional(PodSelectorSchema),
  },
  { additionalProperties: false },
);

/** A split zone: names answered locally. */
export const SplitZoneSchema = Type.Object(
  {
    name: RuleName,
    names: Type.Array(Glob, { minItems: 1, description: 'Name globs answered by this split zone.' }),
    cname: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: 'Answer a CNAME to this host plus its records (e.g. a PrivateLink endpoint).' })),
    addresses: Type.Optional(Type.Array(Ip, { minItems: 1, description: 'Answer these addresses (A from IPv4, AAAA from IPv6; NODATA for other types).' })),
    ttl: Ttl(60, 'Seconds: TTL of the synthesized records.'),
    resolveVia: Type.String({
      minLength: 1,
      default: 'default',
      description: 'Upstream group that resolves the CNAME target: "default", "cluster", or the name of a forward zone.',
    }),
  },
  { additionalProperties: false },
);

/** A forward zone: conditional forwarding to given upstreams. */
export const ForwardZoneSchema = Type.Object(
  {
    name: RuleName,
    zones: Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { minItems: 1, description: 'Zones (each name and everything below it) sent to these upstreams.' }),
    upstreams: Type.Array(Type.String({ pattern: '^(udp|tcp|tls|https)://', description: 'Upstream URL: udp://, tcp://, tls:// or https://.' }), {
      minItems: 1,
      maxItems: POLICY_CAPS.upstreamsPerZone,
      description: `Upstream URLs in failover order, at most ${POLICY_CAPS.upstreamsPerZone}; the policy's forward zones name at most ${POLICY_CAPS.upstreams} distinct upstreams (scheme, host and port).`,
    }),
  },
  { additionalProperties: false },
);

const NamespaceName = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  description: 'A Kubernetes namespace name.',
});

/**
 * Service-discovery isolation (platform layer only): which namespaces' names
 * under `svc.<cluster-domain>` and `pod.<cluster-domain>` this pod may look up.
 * The control plane renders it from a ClusterDNSPolicy's `serviceDiscovery`
 * and the namespaces labelled with the pod's tenant.
 */
export const ServiceDiscoverySchema = Type.Object(
  {
    isolation: Type.Union([Type.Literal('none'), Type.Literal('tenant')], {
      default: 'none',
      description:
        "tenant: names under <ns>.svc.<cluster-domain> and <ns>.pod.<cluster-domain> of any namespace not in namespaces or sharedNamespaces answer NXDOMAIN with EDE 15 naming the rule tenant-isolation; none: no isolation.",
    }),
    namespaces: Type.Array(NamespaceName, { default: [], maxItems: 5000, description: "The tenant's own namespaces (rendered by the controller)." }),
    sharedNamespaces: Type.Array(NamespaceName, { default: [], maxItems: 1000, description: 'Namespaces every tenant may discover (e.g. default, kube-system).' }),
  },
  { additionalProperties: false, description: 'Tenant service-discovery isolation; only the platform policy may set it.' },
);

/** The `spec` of a DNSPolicy. */
export const PolicySpecSchema = Type.Object(
  {
    rules: Type.Array(RuleSchema, {
      default: [],
      maxItems: POLICY_CAPS.rules,
      description: `Named rules, at most ${POLICY_CAPS.rules} (each is a metric series; list many names in one rule); the most specific match wins, deny wins a tie.`,
    }),
    defaultAction: Type.Union([Type.Literal('allow'), Type.Literal('deny')], { default: 'allow', description: 'Action for names no rule matches.' }),
    defaultResponse: Type.Optional(DenyResponseSchema),
    splitZones: Type.Array(SplitZoneSchema, { default: [], maxItems: POLICY_CAPS.splitZones, description: `Split zones, at most ${POLICY_CAPS.splitZones}.` }),
    forwardZones: Type.Array(ForwardZoneSchema, {
      default: [],
      maxItems: POLICY_CAPS.forwardZones,
      description: `Forward zones, at most ${POLICY_CAPS.forwardZones} (each is an upstream group with its own metric series).`,
    }),
    serviceDiscovery: Type.Optional(ServiceDiscoverySchema),
    ipFamilies: Type.Optional(
      Type.Array(Type.Union([Type.Literal('IPv4'), Type.Literal('IPv6')]), {
        minItems: 1,
        maxItems: 2,
        description:
          'The address families the pods use, as a Service\'s spec.ipFamilies: [IPv4] answers AAAA questions in the pod (NODATA with an SOA, NXDOMAIN only when the name does not exist), [IPv6] likewise A; unset: both. The platform\'s, when set, wins over the tenant\'s.',
      }),
    ),
  },
  { additionalProperties: false, default: {} },
);

/** A DNSPolicy document (tenant or platform). */
export const DNSPolicySchema = Type.Object(
  {
    apiVersion: Type.Literal(POLICY_API_VERSION),
    kind: Type.Literal('DNSPolicy'),
    metadata: Type.Object(
      {
        name: Type.String({ minLength: 1, maxLength: 253 }),
        namespace: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
        labels: Type.Optional(Type.Record(Type.String(), Type.String())),
      },
      { additionalProperties: false },
    ),
    spec: PolicySpecSchema,
  },
  { additionalProperties: false, $id: 'https://tenant-dns.io/schemas/dnspolicy.json', title: 'tenant-dns DNSPolicy' },
);

/** A DNSPolicy after defaults, frozen. */
export type DNSPolicy = Static<typeof DNSPolicySchema>;
/** One rule. */
export type PolicyRule = Static<typeof RuleSchema>;
/** A deny response. */
export type DenyResponseSpec = Static<typeof DenyResponseSchema>;
/** A pod selector. */
export type PodSelector = Static<typeof PodSelectorSchema>;
/** A split zone. */
export type SplitZone = Static<typeof SplitZoneSchema>;
/** A forward zone. */
export type ForwardZone = Static<typeof ForwardZoneSchema>;
/** Service-discovery isolation settings. */
export type ServiceDiscovery = Static<typeof ServiceDiscoverySchema>;

/** The empty policy: no rules, default allow. */
export const EMPTY_POLICY: DNSPolicy = Object.freeze({
  apiVersion: POLICY_API_VERSION,
  kind: 'DNSPolicy',
  metadata: Object.freeze({ name: 'empty' }),
  spec: Object.freeze({ rules: [], defaultAction: 'allow', splitZones: [], forwardZones: [] }),
}) as DNSPolicy;

/** Drops from `required` every property that has a default: a document may leave it out. */
function optionalDefaults(node: unknown): void {
  if (Array.isArray(node)) {
    node.forEach(optionalDefaults);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const obj = node as { required?: string[]; properties?: Record<string, { default?: unknown }> };
  if (obj.required && obj.properties) {
    const props = obj.properties;
    obj.required = obj.required.filter((k) => props[k]?.default === undefined);
    if (obj.required.length === 0) delete obj.required;
  }
  for (const v of Object.values(node)) optionalDefaults(v);
}

/**
 * The JSON Schema document for a TypeBox schema, for editors: TypeBox's
 * symbols dropped, draft 2020-12 declared, and fields with defaults not
 * required (the loader fills them in).
 */
export function jsonSchemaDocument(schema: TSchema): Record<string, unknown> {
  const doc = JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
  optionalDefaults(doc);
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', ...doc };
}

/** The JSON Schema of a DNSPolicy, as published in schemas/dnspolicy.schema.json. */
export function policyJsonSchema(): Record<string, unknown> {
  return jsonSchemaDocument(DNSPolicySchema);
}

const LABEL_CHARS = /^[a-z0-9_*-]+$/;

/**
 * Why `glob` is not a valid name glob, or undefined when it is. Rules: at
 * least one label; no empty labels; `*` alone only as the first label (and not
 * as the whole glob); `**` nowhere; labels of letters, digits, `-`, `_`, `*`;
 * 63 bytes per label.
 */
export function globProblem(glob: string): string | undefined {
  let g = glob.trim().toLowerCase();
  if (g.endsWith('.')) g = g.slice(0, -1);
  if (g === '') return 'empty glob';
  if (g === '*') return '"*" alone matches every name; use defaultAction instead';
  const labels = g.split('.');
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l === '') return `empty label in "${glob}"`;
    if (l.includes('**')) return `"**" is not supported in "${glob}": "*." at the start already matches any depth`;
    if (l === '*' && i > 0) return `"*" as a whole label is only allowed first ("*.zone") in "${glob}"`;
    if (l.length > 63) return `label "${l}" is longer than 63 characters in "${glob}"`;
    if (!LABEL_CHARS.test(l)) return `label "${l}" has characters other than letters, digits, "-", "_" and "*" in "${glob}"`;
  }
  return undefined;
}

/** Why `name` is not a valid host or zone name (no wildcards), or undefined. */
export function hostProblem(name: string): string | undefined {
  if (name.includes('*')) return `"${name}" may not contain "*"`;
  let n = name.trim().toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n === '') return 'empty name';
  for (const l of n.split('.')) {
    if (l === '') return `empty label in "${name}"`;
    if (l.length > 63) return `label "${l}" is longer than 63 characters in "${name}"`;
    if (!LABEL_CHARS.test(l)) return `label "${l}" has characters other than letters, digits, "-" and "_" in "${name}"`;
  }
  return undefined;
}

/** `v` when it is an array, else none: the semantic checks skip what the schema already rejected. */
function list<T>(v: readonly T[] | undefined): readonly T[] {
  return Array.isArray(v) ? v : [];
}

/** `v` when it is a string, else undefined. */
function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** A name or glob in the sidecar's form: lower case, no trailing dot. */
function canonical(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** Whether `name` is `zone` or lies below it (both canonical). */
function within(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

function checkResponse(r: DenyResponseSpec | undefined, path: (string | number)[], out: Problem[]): void {
  if (!r || typeof r !== 'object') return;
  if (r.type === 'sinkhole' && (!r.addresses || r.addresses.length === 0)) out.push({ path: [...path, 'addresses'], message: 'a sinkhole response needs addresses' });
  if (r.type !== 'sinkhole' && r.addresses) out.push({ path: [...path, 'addresses'], message: `addresses only apply to sinkhole responses, not ${r.type}` });
  list(r.addresses).forEach((a, i) => {
    if (typeof a === 'string' && ipFamily(a) === 0) out.push({ path: [...path, 'addresses', i], message: `"${a}" is not an IPv4 or IPv6 address` });
  });
}

/** Names a split zone's resolveVia may use besides forward zone names. */
export const BUILTIN_GROUPS = ['default', 'cluster'] as const;

/** What the semantic checks of a policy know beside the document. */
export interface PolicyCheckOptions {
  /**
   * The cluster zones (cluster domain and reverse zones, in the sidecar's
   * name form): names in the cluster domain always go to the cluster DNS, so
   * a forward zone inside it is refused. Unchecked when absent.
   */
  readonly clusterZones?: readonly string[];
  /**
   * The platform layer, when the document checked is the tenant's: a tenant
   * may not shadow it (DESIGN §1). Unchecked when absent.
   */
  readonly platform?: PlatformView;
  /**
   * Which layer the document is: a tenant's may not set `serviceDiscovery`
   * (platform only). Given `platform`, the document is the tenant's whatever
   * this says; unchecked when neither is given.
   */
  readonly layer?: 'platform' | 'tenant';
}

/** What the checks of a tenant policy know of the platform's. */
export interface PlatformView {
  /** The platform's forward zones (sidecar name form) with the name of the forward zone each belongs to. */
  readonly forwardZones: readonly { readonly zone: string; readonly name: string }[];
  /** The platform rule that denies `name` (sidecar form) whatever the pod, or undefined. */
  denied(name: string): string | undefined;
}

/** What a split zone answers, comparable: its target or addresses, TTL and resolving group. */
function splitAnswer(z: SplitZone): string {
  const addresses = [...list(z.addresses)].map((a) => String(a).toLowerCase()).sort();
  return JSON.stringify([typeof z.cname === 'string' ? canonical(z.cname) : null, addresses, z.ttl, z.resolveVia]);
}

/**
 * The semantic checks of a DNSPolicy: glob syntax, unique rule and zone
 * names, response addresses, selector operators, split zone shape, one
 * answer per split-zone glob, one forward zone per zone, upstream URLs of a
 * usable shape, at most {@link POLICY_CAPS}`.upstreams` distinct upstreams
 * (the other caps are in the schema), no rule named {@link ISOLATION_RULE}, and no forward zone
 * inside the cluster zone (with `options.clusterZones`). With `options.platform` (a tenant's
 * policy): no forward zone equal to or inside a platform forward zone, and no split zone
 * whose CNAME target the platform denies. With `options.platform` or `options.layer`
 * `tenant`: no `serviceDiscovery`. Parts of the value that are not of the schema's shape
 * are skipped (the schema reports them).
 */
export function checkPolicy(p: DNSPolicy, options: PolicyCheckOptions = {}): Problem[] {
  const out: Problem[] = [];
  const s = p.spec;
  if (!s || typeof s !== 'object') return out;
  if (s.serviceDiscovery !== undefined && (options.layer === 'tenant' || options.platform !== undefined)) {
    out.push({
      path: ['spec', 'serviceDiscovery'],
      message: "only the platform's policy may set service-discovery isolation (a ClusterDNSPolicy); a tenant's policy cannot",
    });
  }
  // Not uniqueItems in the schema: a CRD's structural schema may not use it.
  const families = list(s.ipFamilies);
  if (families.length === 2 && families[0] === families[1]) out.push({ path: ['spec', 'ipFamilies', 1], message: `${String(families[1])} is listed twice` });
  const seen = new Map<string, number>();
  list(s.rules).forEach((rule, i) => {
    if (!rule || typeof rule !== 'object') return;
    const path = ['spec', 'rules', i];
    const prev = seen.get(rule.name);
    if (prev !== undefined) out.push({ path: [...path, 'name'], message: `duplicate rule name "${rule.name}" (also rules[${prev}])` });
    else seen.set(rule.name, i);
    if (rule.name === ISOLATION_RULE) {
      out.push({ path: [...path, 'name'], message: `"${ISOLATION_RULE}" is reserved: it names the denies of service-discovery isolation` });
    }
    list(rule.names).forEach((g, j) => {
      const why = text(g) === undefined ? undefined : globProblem(g);
      if (why) out.push({ path: [...path, 'names', j], message: why });
    });
    if (rule.response && rule.action !== 'deny') out.push({ path: [...path, 'response'], message: `response only applies to deny rules, not ${rule.action}` });
    checkResponse(rule.response, [...path, 'response'], out);
    list(rule.podSelector?.matchExpressions).forEach((e, j) => {
      if (!e || typeof e !== 'object') return;
      const needs = e.operator === 'In' || e.operator === 'NotIn';
      if (needs && (!e.values || e.values.length === 0)) out.push({ path: [...path, 'podSelector', 'matchExpressions', j, 'values'], message: `operator ${e.operator} needs values` });
      if (!needs && e.values && e.values.length > 0) out.push({ path: [...path, 'podSelector', 'matchExpressions', j, 'values'], message: `operator ${e.operator} takes no values` });
    });
  });
  checkResponse(s.defaultResponse, ['spec', 'defaultResponse'], out);

  const forwardZones = list(s.forwardZones);
  const fwdNames = new Set<string>();
  // Distinct upstreams by their `upstream` label; the first one past the cap is reported.
  const upstreams = new Set<string>();
  const countUpstream = (u: string, at: (string | number)[]) => {
    const label = redactUrl(parseUpstreamSpec(u).url);
    if (upstreams.has(label)) return;
    upstreams.add(label);
    if (upstreams.size === POLICY_CAPS.upstreams + 1) {
      out.push({
        path: at,
        message: `the forward zones name more than ${POLICY_CAPS.upstreams} distinct upstreams (scheme, host and port; each has its own metric series): share upstreams between zones`,
      });
    }
  };
  const zoneOwner = new Map<string, { name: string; index: number }>();
  forwardZones.forEach((z, i) => {
    if (!z || typeof z !== 'object') return;
    const path = ['spec', 'forwardZones', i];
    if (fwdNames.has(z.name)) out.push({ path: [...path, 'name'], message: `duplicate forward zone name "${z.name}"` });
    if ((BUILTIN_GROUPS as readonly string[]).includes(z.name)) out.push({ path: [...path, 'name'], message: `"${z.name}" is reserved for a built-in upstream group` });
    fwdNames.add(z.name);
    list(z.upstreams).forEach((u, j) => {
      if (text(u) === undefined) return;
      let why: string | undefined;
      try {
        const checked = checkUpstreamUrl(parseUpstreamSpec(u).url);
        if (typeof checked === 'string') why = checked;
      } catch (err) {
        why = (err as Error).message;
      }
      // The URL as shown everywhere: without user info, path or query, which may hold secrets.
      if (why) out.push({ path: [...path, 'upstreams', j], message: `"${showUrl(u)}" cannot be used (${why}): the zone's names would be answered SERVFAIL` });
      else countUpstream(u, [...path, 'upstreams', j]);
    });
    list(z.zones).forEach((zone, j) => {
      if (text(zone) === undefined) return;
      const why = hostProblem(zone);
      if (why) {
        out.push({ path: [...path, 'zones', j], message: why });
        return;
      }
      const name = canonical(zone);
      const owner = zoneOwner.get(name);
      if (owner !== undefined && owner.index !== i) {
        out.push({ path: [...path, 'zones', j], message: `"${zone}" is also a zone of forward zone "${owner.name}" (forwardZones[${owner.index}]): only one of them could ever be used` });
      } else zoneOwner.set(name, { name: z.name, index: i });
      const shadowed = options.platform?.forwardZones.find((f) => within(name, f.zone));
      if (shadowed !== undefined) {
        out.push({
          path: [...path, 'zones', j],
          message: `"${zone}" lies in the platform's forward zone ${shadowed.zone} ("${shadowed.name}"): a tenant cannot take over names the platform forwards`,
        });
      }
      // The cluster domain only: a forward zone below a cluster reverse zone (a corporate 10.in-addr.arpa) is more
      // specific and is used (route/classify.ts).
      const cluster = list(options.clusterZones).find((c) => within(name, c) && !isReverseZone(c));
      if (cluster !== undefined) {
        out.push({
          path: [...path, 'zones', j],
          message: `"${zone}" lies in the cluster zone ${cluster}, whose names always go to the cluster DNS: this forward zone would never be used`,
        });
      }
    });
  });

  const splitNames = new Set<string>();
  const globOwner = new Map<string, { name: string; index: number; answer: string }>();
  list(s.splitZones).forEach((z, i) => {
    if (!z || typeof z !== 'object') return;
    const path = ['spec', 'splitZones', i];
    if (splitNames.has(z.name)) out.push({ path: [...path, 'name'], message: `duplicate split zone name "${z.name}"` });
    splitNames.add(z.name);
    const answer = splitAnswer(z);
    list(z.names).forEach((g, j) => {
      if (text(g) === undefined) return;
      const why = globProblem(g);
      if (why) {
        out.push({ path: [...path, 'names', j], message: why });
        return;
      }
      const owner = globOwner.get(canonical(g));
      if (owner === undefined) globOwner.set(canonical(g), { name: z.name, index: i, answer });
      else if (owner.index !== i && owner.answer !== answer) {
        out.push({
          path: [...path, 'names', j],
          message: `"${g}" is also a name of split zone "${owner.name}" (splitZones[${owner.index}]), which answers it another way: only one of them could ever answer`,
        });
      }
    });
    if (z.cname !== undefined && z.addresses !== undefined) out.push({ path: [...path, 'cname'], message: 'give either cname or addresses, not both' });
    if (z.cname === undefined && z.addresses === undefined) out.push({ path, message: 'a split zone needs cname or addresses' });
    if (text(z.cname) !== undefined) {
      const why = hostProblem(z.cname!);
      if (why) out.push({ path: [...path, 'cname'], message: why });
      const rule = why ? undefined : options.platform?.denied(canonical(z.cname!));
      if (rule !== undefined) {
        out.push({ path: [...path, 'cname'], message: `target "${z.cname}" is denied by platform rule ${rule}: the split zone would hand out a name the platform denies` });
      }
    }
    list(z.addresses).forEach((a, j) => {
      if (typeof a === 'string' && ipFamily(a) === 0) out.push({ path: [...path, 'addresses', j], message: `"${a}" is not an IPv4 or IPv6 address` });
    });
    if (typeof z.resolveVia === 'string' && !(BUILTIN_GROUPS as readonly string[]).includes(z.resolveVia) && !forwardZones.some((f) => f?.name === z.resolveVia))
      out.push({ path: [...path, 'resolveVia'], message: `"${z.resolveVia}" is neither "default", "cluster" nor a forward zone of this policy` });
  });
  return out;
}
