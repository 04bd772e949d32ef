/**
 * The sidecar's platform configuration, declared once: the TypeScript type,
 * the JSON Schema (for `--config FILE` and editors) and the command-line
 * flags all come from {@link SidecarConfigSchema}. The injector writes sidecar
 * flags from the same table ({@link SIDECAR_FLAGS}), so a flag it writes is a
 * flag the sidecar accepts (a test checks it).
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { Type } from './typebox.ts';

/** An `ADDR:PORT` string field (IPv6 in brackets), optionally with a default; the injector's config uses it too. */
export const HostPort = (description: string, def?: string) =>
  Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[^\\s:\\[\\]]+):[0-9]{1,5}$', description, ...(def === undefined ? {} : { default: def }) });

const Millis = (description: string, def: number, min = 1) =>
  Type.Integer({ minimum: min, maximum: 600_000, default: def, description });

/** The cache's limits and TTL clamps. */
export const CacheConfigSchema = Type.Object(
  {
    maxEntries: Type.Integer({ minimum: 0, maximum: 10_000_000, default: 10_000, description: 'Most entries kept (0 switches the cache off).' }),
    maxBytes: Type.Integer({ minimum: 0, maximum: 4_294_967_296, default: 16 * 1024 * 1024, description: 'Most bytes of stored replies kept, stale entries included.' }),
    minTtl: Type.Integer({ minimum: 0, maximum: 86_400, default: 0, description: 'Seconds: a positive answer is kept at least this long.' }),
    maxTtl: Type.Integer({ minimum: 0, maximum: 604_800, default: 86_400, description: 'Seconds: a positive answer is kept at most this long.' }),
    negativeMaxTtl: Type.Integer({ minimum: 0, maximum: 86_400, default: 3_600, description: 'Seconds: cap on NXDOMAIN/NODATA caching (RFC 2308).' }),
    clusterNegativeMaxTtl: Type.Integer({ minimum: 0, maximum: 3_600, default: 5, description: 'Seconds: cap on negative caching in the cluster zone, so a new Service appears quickly.' }),
    staleMaxAge: Type.Integer({ minimum: 0, maximum: 604_800, default: 86_400, description: 'Seconds an expired answer may still be served (TTL 30) when every upstream fails (RFC 8767); 0 switches serve-stale off.' }),
    staleMaxPerSecond: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 100, description: 'Most stale answers one entry serves per second; 0: no cap.' }),
    staleAnswerTimeoutMs: Type.Integer({ minimum: 0, maximum: 5_000, default: 1_800, description: 'Milliseconds a query with a stale answer waits for the upstreams before it is answered stale while the refresh goes on (RFC 8767 client response timer); 0: wait for the upstream deadline.' }),
  },
  { additionalProperties: false, default: {}, 'x-flag-prefix': 'cache-' },
);

/** Listener limits (RFC 7766 for TCP). */
export const ListenerConfigSchema = Type.Object(
  {
    tcpIdleTimeoutMs: Millis('Milliseconds a TCP connection may stay idle before the sidecar closes it.', 10_000),
    tcpMaxConnections: Type.Integer({ minimum: 1, maximum: 100_000, default: 256, description: 'Most TCP connections open at once; more are closed at accept.' }),
    tcpMaxPipelined: Type.Integer({ minimum: 1, maximum: 10_000, default: 128, description: 'Most queries in flight on one TCP connection; more are answered SERVFAIL.' }),
    maxInflight: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 4_096, description: 'Most client queries in flight in the sidecar; past it UDP queries are dropped and TCP queries answered SERVFAIL.' }),
  },
  { additionalProperties: false, default: {}, 'x-flag-prefix': '' },
);

/** Upstream timing. */
export const UpstreamTimingSchema = Type.Object(
  {
    attemptTimeoutMs: Millis('Milliseconds one upstream gets to answer before the next is tried.', 1_500),
    deadlineMs: Type.Integer({ minimum: 100, maximum: 4_999, default: 4_000, description: 'Milliseconds a group gets for the whole query, all attempts; stays under the 5 s a client resolver waits.' }),
    race: Type.Integer({ minimum: 1, maximum: 8, default: 1, description: 'Upstreams of a group raced in parallel at the start of each query (the first good reply wins); 1: plain ordered failover.' }),
    bootstrapRefreshMs: Millis('Milliseconds between re-resolutions of upstream host names through the bootstrap resolvers.', 300_000, 1_000),
    udpSockets: Type.Integer({ minimum: 1, maximum: 256, default: 8, description: 'Sockets (random source ports) each udp:// upstream keeps open at once; every query leaves on one of them at random.' }),
    udpSocketQueries: Type.Integer({ minimum: 1, maximum: 1_024, default: 32, description: 'A udp:// upstream socket is retired after a random count of queries between half this and this (1: a fresh socket per query).' }),
    udpSocketSeconds: Type.Integer({ minimum: 0, maximum: 60, default: 2, description: 'A udp:// upstream socket takes no new query once this many seconds old (0: a fresh socket per query).' }),
  },
  { additionalProperties: false, default: {}, 'x-flag-prefix': 'upstream-' },
);

/** The sidecar's platform configuration (flags, or `--config FILE`). */
export const SidecarConfigSchema = Type.Object(
  {
    listen: Type.Array(HostPort('ADDR:PORT'), { minItems: 1, default: ['127.0.0.1:53'], description: 'ADDR:PORT to serve DNS on, UDP and TCP; IPv6 in brackets.' }),
    tenant: Type.String({ minLength: 1, maxLength: 63, default: 'default', description: 'The tenant this sidecar serves (set by the injector); in logs and metrics.' }),
    pod: Type.String({ default: '', description: 'The pod name, for logs (the injector sets it from the downward API).' }),
    namespace: Type.String({ default: '', description: "The pod namespace, for logs; always visible under the platform policy's service-discovery isolation." }),
    policy: Type.Optional(Type.String({ minLength: 1, description: "Path of the tenant's DNSPolicy YAML; watched and hot-reloaded." })),
    policyOptional: Type.Boolean({
      default: false,
      description:
        'The --policy file may be absent (an optional ConfigMap not created yet): absent means no tenant policy (the platform policy alone applies), and the file is loaded when it appears. Without it a missing file is a start-up error.',
    }),
    platformPolicy: Type.Optional(Type.String({ minLength: 1, description: "Path of the platform's DNSPolicy YAML, evaluated before the tenant's." })),
    podLabels: Type.Optional(Type.String({ minLength: 1, description: "Path of the pod's labels (downward API format key=\"value\" per line), for rule podSelectors." })),
    clusterDomain: Type.String({ minLength: 1, default: 'cluster.local', description: 'The cluster domain, sent to the cluster DNS.' }),
    clusterReverseZones: Type.Array(Type.String({ minLength: 1, description: 'zone' }), { default: ['in-addr.arpa', 'ip6.arpa'], description: 'Reverse zones sent to the cluster DNS.' }),
    clusterSpecNamesOnly: Type.Boolean({
      default: false,
      description:
        "Answer NXDOMAIN in the pod, without asking the cluster DNS, for names below <ns>.svc.<cluster domain> that the Kubernetes DNS specification cannot produce (more labels than service, hostname.service or _port._proto.service). Off by default: clusters that add their own records there (CoreDNS template or rewrite rules) would lose them.",
    }),
    clusterDns: Type.Optional(HostPort('ADDR:PORT of kube-dns. Without it, cluster-zone names are answered NXDOMAIN locally.')),
    upstream: Type.Array(Type.String({ pattern: '^(udp|tcp|tls|https)://', description: 'Upstream URL: udp://, tcp://, tls:// or https://.' }), {
      default: [],
      description:
        'Default upstreams, tried in order. Empty: the non-loopback nameservers of /etc/resolv.conf. Options after #: tls-name=NAME, spki-pin=BASE64 (repeatable), method=get (DoH).',
    }),
    bootstrap: Type.Array(Type.String({ pattern: '^[^=\\s]+=[^\\s]+$', description: 'host=IP[,IP]' }), {
      default: [],
      description: 'Addresses of a tls:// or https:// upstream named by host, as host=IP[,IP]; the sidecar never resolves upstream names through itself.',
    }),
    bootstrapResolver: Type.Array(Type.String({ pattern: '^(udp|tcp)://' }), {
      default: [],
      description: 'Plain DNS servers (udp:// or tcp:// with an IP) that re-resolve upstream host names periodically; without them the bootstrap addresses are used as given.',
    }),
    upstreamCa: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'PEM file of a CA trusted for tls:// and https:// upstreams, besides the system roots.' }),
    allowPlainFallback: Type.Boolean({
      default: false,
      description:
        'Allow a group that mixes encrypted (tls://, https://) and plain (udp://, tcp://) upstreams; without it such a group is refused, so a failing TLS upstream never fails over to plain DNS silently.',
    }),
    resolvConf: Type.String({ default: '/etc/resolv.conf', description: "File read for default upstreams when none are given, and for the pod's search list and ndots (autopath) when --search is not given." }),
    autopath: Type.Boolean({
      default: true,
      description: "Answer the search walk a stub resolver starts (N.S1 with N under ndots dots) with the first name of the pod's search list that exists, as a CNAME, so the client sends one query per type; false switches it off.",
    }),
    search: Type.Array(Type.String({ minLength: 1, description: 'search domain' }), {
      default: [],
      description: "The pod's search domains, in order (the injector writes the pod's dnsConfig searches); empty: the search line of the resolv.conf file.",
    }),
    ndots: Type.Optional(Type.Integer({ minimum: 0, maximum: 15, description: "The pod's ndots (the injector writes the pod's dnsConfig value); unset: the resolv.conf file's, else 1." })),
    cache: CacheConfigSchema,
    listener: ListenerConfigSchema,
    upstreamTiming: UpstreamTimingSchema,
    metrics: HostPort('ADDR:PORT serving GET /metrics (Prometheus), /healthz and /readyz; the pod IP, for scrapes and kubelet probes.', '0.0.0.0:9153'),
    admin: HostPort('ADDR:PORT serving the admin endpoints (/healthz, /readyz, /config, /cache, POST /cache/flush); loopback only unless --admin-allow-non-loopback.', '127.0.0.1:9901'),
    adminAllowNonLoopback: Type.Boolean({ default: false, description: 'Allow --admin on a non-loopback address (it exposes the config and a cache flush).' }),
    logQueries: Type.Union([Type.Literal('all'), Type.Literal('denied'), Type.Literal('none')], {
      default: 'denied',
      description: 'Query log on stdout, one JSON line per query: all, denied (queries whose policy decision says log: deny rules unless log: false, log rules), or none.',
    }),
    logSampleEvery: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1, description: 'With --log-queries all: write one query in N (decisions that say log are always written).' }),
    metricsDetail: Type.Union([Type.Literal('basic'), Type.Literal('full')], {
      default: 'basic',
      description:
        'Detail of /metrics: basic (an idle pod stays within 80 series: qtype A, AAAA or other, no per-source, per-rule or per-upstream labels, 6 histogram buckets, a few process metrics) or full (every label, fine buckets, all of prom-client\'s process metrics).',
    }),
  },
  { additionalProperties: false, $id: 'https://tenant-dns.io/schemas/sidecar-config.json', title: 'tenant-dns sidecar configuration' },
);

/** The sidecar's configuration after defaults, frozen. */
export type SidecarConfig = Static<typeof SidecarConfigSchema>;

/** How one config field is spelled on the command line. */
export interface FlagSpec {
  /** Dotted path of the field in {@link SidecarConfig}. */
  readonly field: string;
  /** The long flag, e.g. `--cluster-dns`. */
  readonly flag: string;
  /** The placeholder shown in help. */
  readonly arg: string;
  /** Whether the flag may be given several times (array fields). */
  readonly repeatable: boolean;
  /** Integer fields are parsed as numbers. */
  readonly integer: boolean;
  /** Boolean fields are switches without a value (`--admin-allow-non-loopback`). */
  readonly boolean: boolean;
}

/** The value of a schema's `description`, for help text. */
export function describe(schema: TSchema): string {
  return (schema as { description?: string }).description ?? '';
}

function flagName(leaf: string, prefix: string): string {
  return '--' + prefix + leaf.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

function buildFlags(): FlagSpec[] {
  const out: FlagSpec[] = [];
  const walk = (schema: TSchema, prefix: string, flagPrefix: string) => {
    const props = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
    for (const [key, sub] of Object.entries(props)) {
      const path = prefix ? `${prefix}.${key}` : key;
      const type = (sub as { type?: string }).type;
      if (type === 'object') walk(sub, path, (sub as { 'x-flag-prefix'?: string })['x-flag-prefix'] ?? '');
      else
        out.push({
          field: path,
          flag: flagName(key, flagPrefix),
          arg: type === 'array' ? 'VALUE' : type === 'integer' ? 'N' : type === 'boolean' ? '' : 'VALUE',
          repeatable: type === 'array',
          integer: type === 'integer',
          boolean: type === 'boolean',
        });
    }
  };
  walk(SidecarConfigSchema, '', '');
  return out;
}

/** Every sidecar flag, one per config field (`cache.maxEntries` is `--cache-max-entries`). */
export const SIDECAR_FLAGS: readonly FlagSpec[] = Object.freeze(buildFlags());

/** The schema of a field by dotted path. */
export function fieldSchema(path: string): TSchema | undefined {
  let cur: TSchema | undefined = SidecarConfigSchema;
  for (const key of path.split('.')) {
    cur = (cur as { properties?: Record<string, TSchema> } | undefined)?.properties?.[key];
  }
  return cur;
}
