/**
 * Generates the Grafana dashboard and the Prometheus alert rules from typed
 * code, so that the JSON and YAML stay reviewable and every query is in one
 * place (the meta and integration tests read the same definitions):
 *
 *   node dashboards/build.ts          # writes tenant-dns.json, alerts.rules.yaml, prometheusrule.yaml
 *                                     # (and deploy/monitoring/prometheusrule.yaml)
 *   node dashboards/build.ts --check  # exits 1 when a committed file differs from the generator's output
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** The Grafana datasource every panel uses: the import-time input DS_PROMETHEUS. */
const DS = { type: 'prometheus', uid: '${DS_PROMETHEUS}' } as const;

/**
 * The label matchers of the dashboard variables. tenant, namespace and pod are
 * target labels, set from the pod's metadata by the PodMonitor
 * (deploy/monitoring/podmonitor.yaml); what a pod reports about itself is in
 * `exported_*`, which no query reads.
 */
export const SEL = 'tenant=~"$tenant", namespace=~"$namespace", pod=~"$pod"';
/**
 * The selector of the Gateway row: the tenant variable only. The gateway
 * serves every tenant from the platform's namespace, so its series carry the
 * tenant as a label of their own (set by the gateway, a platform component),
 * and the namespace and pod variables, which select sidecars, do not apply.
 */
export const GATEWAY_SEL = 'tenant=~"$tenant"';
/** The rate window: Grafana's `$__rate_interval` (at least four scrape intervals). */
const RI = '$__rate_interval';

/** One query of a panel. */
export interface Target {
  readonly expr: string;
  readonly legend?: string;
  /** Evaluate at the dashboard's end time only (tables, stats of a range). */
  readonly instant?: boolean;
}

/** A panel, before layout. */
export interface PanelSpec {
  readonly title: string;
  readonly description: string;
  readonly type: 'timeseries' | 'stat' | 'table' | 'bargauge';
  readonly unit?: string;
  readonly targets: readonly Target[];
  /** Width in grid columns (of 24); default 8. */
  readonly width?: number;
  readonly height?: number;
  /** Stat thresholds: [value, color] after the base green. */
  readonly thresholds?: readonly (readonly [number, string])[];
  readonly stack?: boolean;
}

/** A row of panels. */
export interface RowSpec {
  readonly title: string;
  readonly panels: readonly PanelSpec[];
}

const rate = (metric: string, extra = '', window = RI) => `rate(${metric}{${SEL}${extra ? ', ' + extra : ''}}[${window}])`;

/** The title of the row on the policy controller, whose panels read the injector's series (see {@link CONTROL_PLANE_PANELS}). */
export const CONTROL_PLANE_ROW = 'Control plane';

/** `metric` of the replicas that lead now: a follower keeps the gauges of its last render as leader. */
const ofLeader = (metric: string) => `${metric} and on (namespace, pod) tenant_dns_controller_leader == 1`;

/**
 * The panels of the control plane row: the policy controller in the
 * injector pods (tenant_dns_controller_*, scraped by
 * deploy/monitoring/injector-podmonitor.yaml). They ignore the tenant,
 * namespace and pod variables, which select sidecars: the injector's series
 * carry its own namespace and pods and no tenant.
 */
const CONTROL_PLANE_PANELS: readonly PanelSpec[] = [
  {
    title: 'Leader by replica',
    description: 'Each injector replica: 1 while it holds the controller Lease (only the leader renders and writes), else 0. Exactly one replica should be at 1.',
    type: 'timeseries',
    unit: 'short',
    width: 6,
    targets: [{ expr: 'max by (namespace, pod) (tenant_dns_controller_leader)', legend: '{{pod}}' }],
  },
  {
    title: 'Renders by result',
    description: 'Renders of the policy ConfigMaps per second by the leader, by result: ok, or error (the render itself failed; nothing was written).',
    type: 'timeseries',
    unit: 'ops',
    width: 6,
    targets: [{ expr: `sum by (result) (rate(tenant_dns_controller_renders_total[${RI}]))`, legend: '{{result}}' }],
  },
  {
    title: 'Controller writes',
    description: 'Writes to the API server per second, by what was written (configmap, status) and result (created, updated, error). Nothing is written when nothing changed.',
    type: 'timeseries',
    unit: 'ops',
    width: 6,
    targets: [{ expr: `sum by (kind, result) (rate(tenant_dns_controller_writes_total[${RI}]))`, legend: '{{kind}} {{result}}' }],
  },
  {
    title: 'Write conflicts',
    description: '409 Conflict answers to the controller\'s writes per second, by kind: another writer changed the object first; the controller read it again and retried.',
    type: 'timeseries',
    unit: 'ops',
    width: 6,
    targets: [{ expr: `sum by (kind) (rate(tenant_dns_controller_conflicts_total[${RI}]))`, legend: '{{kind}}' }],
  },
  {
    title: 'Held layers',
    description: 'Policy layers the leader\'s last render held: not written because an invalid object that was never accepted would change them (the ConfigMap there keeps serving).',
    type: 'stat',
    width: 8,
    thresholds: [[1, 'red']],
    targets: [{ expr: `sum(${ofLeader('tenant_dns_controller_held_layers')})` }],
  },
  {
    title: 'Rejected policy objects',
    description: 'Policy objects the leader\'s last render did not accept (status Accepted=False), by kind.',
    type: 'stat',
    width: 8,
    thresholds: [[1, 'orange']],
    targets: [{ expr: `sum by (kind) (${ofLeader('tenant_dns_controller_rejected_objects')})`, legend: '{{kind}}' }],
  },
  {
    title: 'Age of the last successful render',
    description: 'Time since the last render whose writes all succeeded, on any replica. The leader renders at least every 5 minutes (resync); the alert fires past 10.',
    type: 'stat',
    unit: 's',
    width: 8,
    thresholds: [
      [360, 'orange'],
      [600, 'red'],
    ],
    targets: [{ expr: 'time() - max(tenant_dns_controller_last_success_timestamp_seconds > 0)' }],
  },
];

/** The dashboard's rows and panels. */
export const ROWS: readonly RowSpec[] = [
  {
    title: 'Overview',
    panels: [
      {
        title: 'Queries per second',
        description: 'Client queries received per second by the selected sidecars (all transports and types).',
        type: 'stat',
        unit: 'reqps',
        width: 5,
        targets: [{ expr: `sum(${rate('tenant_dns_requests_total')})` }],
      },
      {
        title: 'SERVFAIL ratio',
        description: 'Share of answers that were SERVFAIL: upstreams failing, or internal errors. Above 1 % deserves a look; the alert fires at 5 %.',
        type: 'stat',
        unit: 'percentunit',
        width: 5,
        thresholds: [
          [0.01, 'orange'],
          [0.05, 'red'],
        ],
        targets: [
          {
            expr: `sum(${rate('tenant_dns_responses_total', 'rcode="SERVFAIL"')}) / sum(${rate('tenant_dns_responses_total')})`,
          },
        ],
      },
      {
        title: 'Latency p50 / p99',
        description: 'Median and 99th percentile of the time from receiving a query to having its answer, all sources.',
        type: 'stat',
        unit: 's',
        width: 5,
        targets: [
          { expr: `histogram_quantile(0.5, sum by (le) (${rate('tenant_dns_request_duration_seconds_bucket')}))`, legend: 'p50' },
          { expr: `histogram_quantile(0.99, sum by (le) (${rate('tenant_dns_request_duration_seconds_bucket')}))`, legend: 'p99' },
        ],
      },
      {
        title: 'Cache hit ratio',
        description: 'Share of cache lookups answered by a fresh entry.',
        type: 'stat',
        unit: 'percentunit',
        width: 5,
        targets: [
          {
            expr: `sum(${rate('tenant_dns_cache_hits_total')}) / (sum(${rate('tenant_dns_cache_hits_total')}) + sum(${rate('tenant_dns_cache_misses_total')}))`,
          },
        ],
      },
      {
        title: 'Upstreams down',
        description: 'Upstream members currently marked down, over the selected sidecars.',
        type: 'stat',
        width: 4,
        thresholds: [[1, 'red']],
        targets: [{ expr: `count(tenant_dns_upstream_healthy{${SEL}} == 0) or vector(0)` }],
      },
    ],
  },
  {
    title: 'Traffic',
    panels: [
      {
        title: 'Answers by source',
        description: 'Answers per second by who gave them: policy (denied), cache, upstream, local (split zones, SERVFAIL from errors).',
        type: 'timeseries',
        width: 6,
        unit: 'reqps',
        stack: true,
        targets: [{ expr: `sum by (source) (${rate('tenant_dns_responses_total')})`, legend: '{{source}}' }],
      },
      {
        title: 'Answers by rcode',
        description: 'Answers per second by response code; `none` counts queries dropped without an answer.',
        type: 'timeseries',
        width: 6,
        unit: 'reqps',
        stack: true,
        targets: [{ expr: `sum by (rcode) (${rate('tenant_dns_responses_total')})`, legend: '{{rcode}}' }],
      },
      {
        title: 'Queries by type and transport',
        description: 'Queries per second by query type and transport: A, AAAA, else `other` (each type of the fixed list with `--metrics-detail full`).',
        type: 'timeseries',
        width: 6,
        unit: 'reqps',
        targets: [{ expr: `sum by (qtype, proto) (${rate('tenant_dns_requests_total')})`, legend: '{{qtype}} {{proto}}' }],
      },
      {
        title: 'Rejected messages',
        description: 'Client messages refused before the pipeline per second (unreadable, or not a standard query), by the rcode answered (`none`: dropped) and transport.',
        type: 'timeseries',
        unit: 'reqps',
        width: 6,
        targets: [{ expr: `sum by (rcode, proto) (${rate('tenant_dns_rejected_requests_total')})`, legend: '{{rcode}} {{proto}}' }],
      },
    ],
  },
  {
    title: 'Policy',
    panels: [
      {
        title: 'Denials by tenant',
        description: 'Denied queries per second for each tenant.',
        type: 'timeseries',
        unit: 'reqps',
        targets: [{ expr: `sum by (tenant) (${rate('tenant_dns_policy_decisions_total', 'action="deny"')})`, legend: '{{tenant}}' }],
      },
      {
        title: 'Denials by rule',
        description: 'Denied queries per second by deciding rule (`default`: the default action; `platform:NAME`: a platform rule). The rule label needs `--metrics-detail full`; at the default level each tenant has one series.',
        type: 'timeseries',
        unit: 'reqps',
        targets: [{ expr: `sum by (tenant, rule) (${rate('tenant_dns_policy_decisions_total', 'action="deny"')})`, legend: '{{tenant}} {{rule}}' }],
      },
      {
        title: 'Denied queries in range',
        description: 'Denied queries over the dashboard time range, by tenant and rule (the rule with `--metrics-detail full`; the query log names it always).',
        type: 'table',
        unit: 'short',
        targets: [
          {
            expr: `sum by (tenant, rule) (increase(tenant_dns_policy_decisions_total{${SEL}, action="deny"}[$__range]))`,
            legend: '{{tenant}} {{rule}}',
            instant: true,
          },
        ],
      },
      {
        title: 'Decisions by action',
        description: 'Policy decisions per second: allow, deny, log (allowed and written to the query log).',
        type: 'timeseries',
        unit: 'reqps',
        width: 12,
        targets: [{ expr: `sum by (action) (${rate('tenant_dns_policy_decisions_total')})`, legend: '{{action}}' }],
      },
      {
        title: 'Query log lines dropped',
        description: 'Query log lines dropped per second because stdout could not keep up; the query log is incomplete while this is above 0.',
        type: 'timeseries',
        unit: 'short',
        width: 12,
        targets: [{ expr: `sum by (pod) (${rate('tenant_dns_query_log_dropped_total')})`, legend: '{{pod}}' }],
      },
    ],
  },
  {
    title: 'Latency',
    panels: [
      {
        title: 'Latency by source (p50, p99)',
        description: 'Median and 99th percentile answer time by source (with `--metrics-detail full`; all sources together at the default level): cache hits should stay well under a millisecond.',
        type: 'timeseries',
        unit: 's',
        width: 12,
        targets: [
          { expr: `histogram_quantile(0.5, sum by (le, source) (${rate('tenant_dns_request_duration_seconds_bucket')}))`, legend: 'p50 {{source}}' },
          { expr: `histogram_quantile(0.99, sum by (le, source) (${rate('tenant_dns_request_duration_seconds_bucket')}))`, legend: 'p99 {{source}}' },
        ],
      },
      {
        title: 'p99 latency by pod',
        description: '99th percentile answer time of each sidecar, all sources.',
        type: 'timeseries',
        unit: 's',
        width: 12,
        targets: [{ expr: `histogram_quantile(0.99, sum by (le, pod) (${rate('tenant_dns_request_duration_seconds_bucket')}))`, legend: '{{pod}}' }],
      },
    ],
  },
  {
    title: 'Cache',
    panels: [
      {
        title: 'Cache hit ratio over time',
        description: 'Share of cache lookups answered by a fresh entry, over time.',
        type: 'timeseries',
        unit: 'percentunit',
        width: 6,
        targets: [
          {
            expr: `sum(${rate('tenant_dns_cache_hits_total')}) / (sum(${rate('tenant_dns_cache_hits_total')}) + sum(${rate('tenant_dns_cache_misses_total')}))`,
            legend: 'hit ratio',
          },
        ],
      },
      {
        title: 'Cache size',
        description: 'Entries and bytes held by each sidecar’s cache (stale entries included).',
        type: 'timeseries',
        unit: 'short',
        width: 6,
        targets: [
          { expr: `sum by (pod) (tenant_dns_cache_entries{${SEL}})`, legend: 'entries {{pod}}' },
          { expr: `sum by (pod) (tenant_dns_cache_bytes{${SEL}})`, legend: 'bytes {{pod}}' },
        ],
      },
      {
        title: 'Cache evictions',
        description: 'Entries removed per second: capacity (LRU, the cache is too small), expired, flush (admin).',
        type: 'timeseries',
        unit: 'short',
        width: 6,
        targets: [{ expr: `sum by (reason) (${rate('tenant_dns_cache_evictions_total')})`, legend: '{{reason}}' }],
      },
      {
        title: 'Stale answers served',
        description: 'Stale answers per second served because every upstream failed (RFC 8767).',
        type: 'timeseries',
        unit: 'reqps',
        width: 6,
        targets: [{ expr: `sum by (pod) (${rate('tenant_dns_cache_stale_served_total')})`, legend: '{{pod}}' }],
      },
    ],
  },
  {
    title: 'Search walks (autopath)',
    panels: [
      {
        title: 'Search walks by result',
        description:
          'Questions that started a search walk (N.<first search domain>) per second, by how the sidecar answered: first (the asked name itself), found (a later name, as a CNAME), denied, nxdomain (every name), passthrough (the client walks on).',
        type: 'timeseries',
        unit: 'reqps',
        width: 12,
        targets: [{ expr: `sum by (result) (${rate('tenant_dns_autopath_answers_total')})`, legend: '{{result}}' }],
      },
      {
        title: 'Client queries saved by autopath',
        description: 'Queries per second the stub resolvers did not have to send because a walk was answered at a later name (k for the k-th name after the asked one).',
        type: 'timeseries',
        unit: 'reqps',
        width: 12,
        targets: [{ expr: `sum by (tenant) (${rate('tenant_dns_autopath_queries_saved_total')})`, legend: '{{tenant}}' }],
      },
    ],
  },
  {
    title: 'Upstreams',
    panels: [
      {
        title: 'Upstream latency p99',
        description: '99th percentile of one exchange with each upstream (replies only; failures are counted separately). By upstream with `--metrics-detail full`; all upstreams together at the default level.',
        type: 'timeseries',
        unit: 's',
        targets: [{ expr: `histogram_quantile(0.99, sum by (le, upstream) (${rate('tenant_dns_upstream_request_duration_seconds_bucket')}))`, legend: '{{upstream}}' }],
      },
      {
        title: 'Upstream replies by rcode',
        description: 'Replies per second from each upstream by rcode (with `--metrics-detail full`; all replies together at the default level).',
        type: 'timeseries',
        unit: 'reqps',
        targets: [{ expr: `sum by (upstream, rcode) (${rate('tenant_dns_upstream_request_duration_seconds_count')})`, legend: '{{upstream}} {{rcode}}' }],
      },
      {
        title: 'Upstream failures',
        description: 'Exchanges per second that failed without a reply, by error code (timeout, connect, TLS, HTTP, bad reply), and by upstream with `--metrics-detail full`.',
        type: 'timeseries',
        unit: 'reqps',
        targets: [{ expr: `sum by (upstream, code) (${rate('tenant_dns_upstream_failures_total')})`, legend: '{{upstream}} {{code}}' }],
      },
      {
        title: 'Upstream health',
        description: 'Members up (1) or down (0) by group and upstream, the worst over the selected sidecars.',
        type: 'timeseries',
        unit: 'short',
        width: 12,
        targets: [{ expr: `min by (group, upstream) (tenant_dns_upstream_healthy{${SEL}})`, legend: '{{group}} {{upstream}}' }],
      },
      {
        title: 'Upstream connections',
        description: 'Connections open to each stream upstream (tcp, tls, https).',
        type: 'timeseries',
        unit: 'short',
        width: 12,
        targets: [{ expr: `sum by (upstream) (tenant_dns_upstream_connections{${SEL}})`, legend: '{{upstream}}' }],
      },
    ],
  },
  {
    title: 'Reloads and process',
    panels: [
      {
        title: 'Policy reloads',
        description: 'Policy reload attempts per second by result. A failure keeps the previous policy serving.',
        type: 'timeseries',
        unit: 'short',
        width: 6,
        targets: [{ expr: `sum by (result) (${rate('tenant_dns_policy_reloads_total')})`, legend: '{{result}}' }],
      },
      {
        title: 'Sidecars on a stale policy',
        description: 'Sidecars whose last policy reload failed (they serve the previous policy).',
        type: 'stat',
        width: 6,
        thresholds: [[1, 'red']],
        targets: [{ expr: `count(tenant_dns_policy_last_reload_successful{${SEL}} == 0) or vector(0)` }],
      },
      {
        title: 'Policy age',
        description: 'Time since each sidecar loaded the policy it serves.',
        type: 'timeseries',
        unit: 's',
        width: 6,
        targets: [{ expr: `time() - max by (pod) (tenant_dns_policy_last_reload_success_timestamp_seconds{${SEL}})`, legend: '{{pod}}' }],
      },
      {
        title: 'In-flight queries',
        description: 'Queries being answered right now, per sidecar.',
        type: 'timeseries',
        unit: 'short',
        width: 6,
        targets: [{ expr: `sum by (pod) (tenant_dns_inflight_queries{${SEL}})`, legend: '{{pod}}' }],
      },
      {
        title: 'Sidecar memory',
        description: 'Resident memory of each sidecar process.',
        type: 'timeseries',
        unit: 'bytes',
        width: 8,
        targets: [{ expr: `sum by (pod) (process_resident_memory_bytes{${SEL}})`, legend: '{{pod}}' }],
      },
      {
        title: 'Sidecar CPU',
        description: 'CPU seconds per second used by each sidecar process.',
        type: 'timeseries',
        unit: 'short',
        width: 8,
        targets: [{ expr: `sum by (pod) (${rate('process_cpu_seconds_total')})`, legend: '{{pod}}' }],
      },
      {
        title: 'Versions',
        description: 'Sidecars by tenant-dns and Node.js version.',
        type: 'table',
        unit: 'short',
        width: 8,
        targets: [{ expr: `count by (version, node) (tenant_dns_build_info{${SEL}})`, legend: '{{version}} {{node}}', instant: true }],
      },
    ],
  },
  { title: CONTROL_PLANE_ROW, panels: CONTROL_PLANE_PANELS },
  {
    title: 'Gateway',
    panels: [
      {
        title: 'Gateway answers by rcode',
        description: 'Answers per second of tenant-dns gateway (the authoritative server for the tenants\' delegated domains), by rcode; tenant: whose name or wildcard answered.',
        type: 'timeseries',
        unit: 'reqps',
        stack: true,
        targets: [{ expr: `sum by (rcode) (rate(tenant_dns_gateway_requests_total{${GATEWAY_SEL}}[${RI}]))`, legend: '{{rcode}}' }],
      },
      {
        title: 'Gateway records by tenant',
        description: 'A, AAAA and CNAME records each tenant publishes through the gateway (per gateway replica).',
        type: 'timeseries',
        unit: 'short',
        targets: [{ expr: `max by (tenant) (tenant_dns_gateway_records{${GATEWAY_SEL}})`, legend: '{{tenant}}' }],
      },
      {
        title: 'Gateway rejected claims',
        description: 'Host names tenants claimed and the gateway refused to publish (outside their domains, another tenant\'s, contested, …), by tenant and reason: each counted once when it became rejected, since the replica started.',
        type: 'table',
        unit: 'short',
        targets: [{ expr: `max by (tenant, reason) (tenant_dns_gateway_rejected_total{${GATEWAY_SEL}})`, legend: '{{tenant}} {{reason}}', instant: true }],
      },
    ],
  },
];

/** A Prometheus alerting rule. */
export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: { readonly severity: 'warning' | 'critical' };
  readonly annotations: { readonly summary: string; readonly description: string };
}

/** What every alert groups by: target labels, never what a pod reports about itself (see {@link SEL}). */
const BY = 'namespace, tenant';

/** The alert rules (one group, `tenant-dns`). */
export const ALERTS: readonly AlertRule[] = [
  {
    alert: 'TenantDnsServfailRatioHigh',
    expr:
      `sum by (${BY}) (rate(tenant_dns_responses_total{rcode="SERVFAIL"}[5m]))\n` +
      `  / sum by (${BY}) (rate(tenant_dns_responses_total[5m])) > 0.05\n` +
      `and sum by (${BY}) (rate(tenant_dns_responses_total[5m])) > 0.1`,
    for: '10m',
    labels: { severity: 'warning' },
    annotations: {
      summary: 'More than 5 % of DNS answers for tenant {{ $labels.tenant }} in {{ $labels.namespace }} are SERVFAIL.',
      description: 'SERVFAIL ratio is {{ $value | humanizePercentage }}. Check the Upstreams row of the tenant-dns dashboard: failing or slow upstreams, or a down group.',
    },
  },
  {
    alert: 'TenantDnsUpstreamGroupDown',
    expr: 'max by (namespace, pod, tenant, group) (tenant_dns_upstream_healthy) == 0',
    for: '2m',
    labels: { severity: 'critical' },
    annotations: {
      summary: 'Every upstream of group {{ $labels.group }} is down in pod {{ $labels.namespace }}/{{ $labels.pod }}.',
      description: 'Queries routed to group {{ $labels.group }} get SERVFAIL (or stale answers). The pod is not ready while this lasts.',
    },
  },
  {
    alert: 'TenantDnsPolicyReloadFailing',
    expr: 'max by (namespace, pod, tenant) (tenant_dns_policy_last_reload_successful) == 0',
    for: '5m',
    labels: { severity: 'warning' },
    annotations: {
      summary: 'The DNS policy of tenant {{ $labels.tenant }} failed to reload in pod {{ $labels.namespace }}/{{ $labels.pod }}.',
      description: 'The sidecar keeps serving the previous policy. Validate the tenant ConfigMap with `npx tenant-dns policy validate` (from a checkout); the sidecar log says which field is wrong.',
    },
  },
  {
    alert: 'TenantDnsDenialSpike',
    expr:
      `sum by (${BY}) (rate(tenant_dns_policy_decisions_total{action="deny"}[5m])) > 1\n` +
      `and sum by (${BY}) (rate(tenant_dns_policy_decisions_total{action="deny"}[5m]))\n` +
      `  > 5 * sum by (${BY}) (rate(tenant_dns_policy_decisions_total{action="deny"}[1h] offset 5m))`,
    for: '10m',
    labels: { severity: 'warning' },
    annotations: {
      summary: 'Denied DNS queries for tenant {{ $labels.tenant }} in {{ $labels.namespace }} rose more than fivefold.',
      description: 'Denials are at {{ $value | humanize }}/s. A new deployment may depend on a denied name, or a workload may be misbehaving; the query log (stdout) names the queries.',
    },
  },
];

/**
 * The 99th percentile of the time the injector takes to answer the API
 * server's admission requests (both webhooks, waiting for an admission slot
 * included), per injector namespace: the quantity the latency alert compares.
 */
export const INJECTOR_ADMISSION_P99 =
  'histogram_quantile(0.99, sum by (namespace, le) (rate(tenant_dns_injector_request_duration_seconds_bucket{path=~"/mutate|/validate"}[5m])))';

/** Seconds within which an expiring serving certificate alerts: 7 days (cert-manager renews at 2/3 of the lifetime, 30 days before the end in deploy/). */
export const INJECTOR_CERT_WARNING_SECONDS = 7 * 86_400;

/**
 * The alert rules on the injector's own series (group `tenant-dns-injector`,
 * scraped by deploy/monitoring/injector-podmonitor.yaml). They group by the
 * injector's namespace (and pod or webhook); the injector's series carry no tenant.
 */
export const INJECTOR_ALERTS: readonly AlertRule[] = [
  {
    alert: 'TenantDnsInjectorAdmissionErrors',
    // BAD_REQUEST and TOO_LARGE are bodies the API server never sends: any pod can reach the port (deploy/README.md, section 5).
    expr:
      'sum by (namespace, webhook) (rate(tenant_dns_injector_admissions_total{result="error", reason!~"BAD_REQUEST|TOO_LARGE"}[5m]))\n' +
      '  / sum by (namespace, webhook) (rate(tenant_dns_injector_admissions_total[5m])) > 0.01',
    for: '5m',
    labels: { severity: 'critical' },
    annotations: {
      summary: 'More than 1 % of {{ $labels.webhook }} admissions fail in the tenant-dns injector ({{ $labels.namespace }}).',
      description:
        'Error ratio {{ $value | humanizePercentage }}. Each such pod was denied (failureMode deny) or admitted without its sidecar or checks (allow); ' +
        'reason OVERLOADED means 429s: too many admissions at once. The injector log names the pods and the error code (tenant_dns_injector_admissions_total{result="error"} by reason).',
    },
  },
  {
    alert: 'TenantDnsInjectorAdmissionSlow',
    expr: `${INJECTOR_ADMISSION_P99} > 1`,
    for: '10m',
    labels: { severity: 'warning' },
    annotations: {
      summary: 'The tenant-dns injector in {{ $labels.namespace }} takes more than 1 s to answer 1 % of admissions.',
      description:
        'p99 {{ $value | humanizeDuration }}. The webhooks time out after 5 s, and then the pod is not created (the webhooks fail closed). ' +
        'Look at the injector pods\' CPU throttling and tenant_dns_injector_admissions_waiting, and at the namespace lookups (tenant_dns_injector_tenant_lookups_total{source="fallback"}).',
    },
  },
  {
    alert: 'TenantDnsInjectorCertificateExpiring',
    expr: `min by (namespace, pod) (tenant_dns_injector_certificate_expiry_timestamp_seconds) - time() < ${INJECTOR_CERT_WARNING_SECONDS}`,
    for: '15m',
    labels: { severity: 'critical' },
    annotations: {
      summary: 'The serving certificate of tenant-dns injector {{ $labels.namespace }}/{{ $labels.pod }} expires in {{ $value | humanizeDuration }}.',
      description:
        'When it expires the API server cannot call the webhooks and no pod starts in injected namespaces. cert-manager renews 30 days before the end: ' +
        'check the Certificate tenant-dns-injector (kubectl describe certificate); without cert-manager, re-run deploy/scripts/gen-certs.sh. ' +
        'The injector re-reads the Secret by itself (tenant_dns_injector_cert_reloads_total{result="error"} counts renewals it could not load).',
    },
  },
];

/** Seconds without a successful render, while a replica leads, after which the controller alerts: two resync intervals (5 minutes each). */
export const CONTROLLER_STALE_SECONDS = 600;

/**
 * The alert rules on the policy controller (group `tenant-dns-controller`),
 * on the injector's series like {@link INJECTOR_ALERTS}. A follower keeps
 * the gauges of its last render as leader, so held layers and rejected
 * objects are read from the replica whose `tenant_dns_controller_leader` is 1.
 */
export const CONTROLLER_ALERTS: readonly AlertRule[] = [
  {
    alert: 'TenantDnsControllerNoLeader',
    // max < 1: replicas are scraped and none leads. absent(): no replica is scraped at all (every one down), where max has no series to compare.
    expr: 'max by (namespace) (tenant_dns_controller_leader) < 1\nor absent(tenant_dns_controller_leader)',
    for: '5m',
    labels: { severity: 'critical' },
    annotations: {
      summary: 'No tenant-dns controller replica holds the Lease{{ with $labels.namespace }} in {{ . }}{{ else }}: no injector replica is scraped{{ end }}.',
      description:
        'Nothing renders policy: a new injected namespace gets no tenant-dns-platform ConfigMap, so its pods do not start, and policy changes do not reach pods (running pods keep their config). ' +
        'With a namespace label, replicas run but none leads: the injector log says why (leader election: lease request failed), check the Lease tenant-dns-system/tenant-dns-controller and the RBAC on leases. ' +
        'Without one, no replica is scraped (every one down, or the controller is off everywhere with --controller=false, where this alert does not apply).',
    },
  },
  {
    alert: 'TenantDnsControllerNotRendering',
    expr:
      `time() - max by (namespace) (tenant_dns_controller_last_success_timestamp_seconds) > ${CONTROLLER_STALE_SECONDS}\n` +
      'and on (namespace) max by (namespace) (tenant_dns_controller_leader) == 1',
    for: '2m',
    labels: { severity: 'warning' },
    annotations: {
      summary: 'The tenant-dns controller in {{ $labels.namespace }} has not completed a render for {{ $value | humanizeDuration }} while a replica leads.',
      description:
        'The leader renders on every change and at least every 5 minutes; a render succeeds when all its writes do. Rendered ConfigMaps and statuses are not being updated. ' +
        'tenant_dns_controller_renders_total{result="error"} counts renders that failed (nothing written; the injector log has the error), ' +
        'tenant_dns_controller_writes_total{result="error"} writes the API server refused (RBAC, admission, the API down); the injector log names the object.',
    },
  },
  {
    alert: 'TenantDnsControllerLayersHeld',
    expr: `max by (namespace) (${ofLeader('tenant_dns_controller_held_layers')}) > 0`,
    for: '15m',
    labels: { severity: 'warning' },
    annotations: {
      summary: 'The tenant-dns controller in {{ $labels.namespace }} holds {{ $value }} policy layers.',
      description:
        'A DNSPolicy or ClusterDNSPolicy that was never accepted would change these layers, so their ConfigMaps are not written: the config there stays as it was, later changes to the same namespaces wait. ' +
        'kubectl get dnspolicies -A and kubectl get clusterdnspolicies show Accepted False; the message names the field. Fix or delete the object.',
    },
  },
  {
    alert: 'TenantDnsControllerClusterPolicyRejected',
    expr: `max by (namespace) (${ofLeader('tenant_dns_controller_rejected_objects{kind="ClusterDNSPolicy"}')}) > 0`,
    for: '15m',
    labels: { severity: 'warning' },
    annotations: {
      summary: '{{ $value }} ClusterDNSPolicy objects are not accepted by the tenant-dns controller in {{ $labels.namespace }}.',
      description:
        'A platform policy change is not in effect: the object\'s last accepted spec still applies, or, never accepted, it holds the layers it selects. ' +
        'kubectl get clusterdnspolicies shows Accepted False and the reason (Invalid, Conflict); kubectl describe shows the message naming the field. ' +
        'DNSPolicy objects (the tenants\') are on the dashboard, not alerted: their status tells their owners.',
    },
  },
];

/** Every PromQL expression of the dashboard, with its row's and panel's titles. */
export function panelQueries(): { row: string; panel: string; expr: string; instant: boolean }[] {
  return ROWS.flatMap((r) => r.panels.flatMap((p) => p.targets.map((t) => ({ row: r.title, panel: p.title, expr: t.expr, instant: t.instant ?? false }))));
}

/** The Prometheus rules file (`groups:`): the sidecars' alerts (`tenant-dns`), the injector's (`tenant-dns-injector`) and its controller's (`tenant-dns-controller`). */
export function rulesFile(): { groups: { name: string; rules: AlertRule[] }[] } {
  return {
    groups: [
      { name: 'tenant-dns', rules: ALERTS.map((a) => ({ ...a })) },
      { name: 'tenant-dns-injector', rules: INJECTOR_ALERTS.map((a) => ({ ...a })) },
      { name: 'tenant-dns-controller', rules: CONTROLLER_ALERTS.map((a) => ({ ...a })) },
    ],
  };
}

/** The same rules as a Prometheus Operator PrometheusRule. */
export function prometheusRule(): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'tenant-dns', labels: { 'app.kubernetes.io/name': 'tenant-dns', 'app.kubernetes.io/component': 'monitoring' } },
    spec: rulesFile(),
  };
}

function panelJson(p: PanelSpec, id: number, x: number, y: number, w: number, h: number): Record<string, unknown> {
  const steps = [{ color: 'green', value: null }, ...(p.thresholds ?? []).map(([value, color]) => ({ color, value }))];
  const panel: Record<string, unknown> = {
    id,
    type: p.type,
    title: p.title,
    description: p.description,
    datasource: DS,
    gridPos: { h, w, x, y },
    fieldConfig: {
      defaults: {
        unit: p.unit ?? 'short',
        thresholds: { mode: 'absolute', steps },
        ...(p.type === 'timeseries' ? { custom: { drawStyle: 'line', lineWidth: 1, fillOpacity: p.stack ? 30 : 10, stacking: { mode: p.stack ? 'normal' : 'none', group: 'A' } } } : {}),
      },
      overrides: [],
    },
    options:
      p.type === 'stat'
        ? { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area', textMode: 'auto' }
        : p.type === 'table'
          ? { showHeader: true }
          : { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } },
    targets: p.targets.map((t, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: DS,
      expr: t.expr,
      legendFormat: t.legend ?? '__auto',
      range: !t.instant,
      instant: t.instant ?? false,
      ...(p.type === 'table' ? { format: 'table' } : {}),
    })),
  };
  if (p.type === 'table') panel.transformations = [{ id: 'organize', options: { excludeByName: { Time: true } } }];
  return panel;
}

function variable(name: string, label: string, query: string): Record<string, unknown> {
  return {
    name,
    label,
    type: 'query',
    datasource: DS,
    definition: query,
    query: { query, refId: `${name}-query`, qryType: 1 },
    refresh: 2,
    includeAll: true,
    allValue: '.*',
    multi: true,
    sort: 1,
    current: { selected: true, text: ['All'], value: ['$__all'] },
    options: [],
    hide: 0,
  };
}

/** The Grafana dashboard (importable: `__inputs` asks for the Prometheus datasource). */
export function dashboard(): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of ROWS) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const p of row.panels) {
      const w = p.width ?? 8;
      const h = p.height ?? (p.type === 'stat' ? 5 : 8);
      if (x + w > 24) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      panels.push(panelJson(p, id++, x, y, w, h));
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  const panelTypes = [...new Set(ROWS.flatMap((r) => r.panels.map((p) => p.type)))].sort();
  return {
    __inputs: [{ name: 'DS_PROMETHEUS', label: 'Prometheus', description: 'The Prometheus that scrapes the tenant-dns sidecars.', type: 'datasource', pluginId: 'prometheus', pluginName: 'Prometheus' }],
    __requires: [
      { type: 'grafana', id: 'grafana', name: 'Grafana', version: '10.0.0' },
      { type: 'datasource', id: 'prometheus', name: 'Prometheus', version: '1.0.0' },
      ...panelTypes.map((t) => ({ type: 'panel', id: t, name: t, version: '' })),
    ],
    title: 'tenant-dns',
    uid: 'tenant-dns',
    description: 'Per-tenant DNS telemetry of the tenant-dns sidecars: traffic, denials, latency, cache, upstreams, reloads; and the policy controller.',
    tags: ['dns', 'tenant-dns', 'kubernetes'],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-1h', to: 'now' },
    refresh: '30s',
    timezone: '',
    annotations: { list: [] },
    links: [],
    templating: {
      list: [
        variable('tenant', 'Tenant', 'label_values(tenant_dns_build_info, tenant)'),
        variable('namespace', 'Namespace', 'label_values(tenant_dns_build_info{tenant=~"$tenant"}, namespace)'),
        variable('pod', 'Pod', 'label_values(tenant_dns_build_info{tenant=~"$tenant", namespace=~"$namespace"}, pod)'),
      ],
    },
    panels,
  };
}

const HEADER = '# Generated by dashboards/build.ts: edit that file and run `node dashboards/build.ts`.\n';

/** The generated files, by path relative to the repository root, with their contents. */
export function generatedFiles(): Record<string, string> {
  return {
    'dashboards/tenant-dns.json': JSON.stringify(dashboard(), null, 2) + '\n',
    'dashboards/alerts.rules.yaml': HEADER + stringify(rulesFile(), { lineWidth: 0 }),
    'dashboards/prometheusrule.yaml': HEADER + stringify(prometheusRule(), { lineWidth: 0 }),
    // A copy inside the kustomization (kustomize loads no file outside its root).
    'deploy/monitoring/prometheusrule.yaml': HEADER + stringify(prometheusRule(), { lineWidth: 0 }),
  };
}

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [path, text] of Object.entries(generatedFiles())) {
    const full = resolve(ROOT, path);
    if (check) {
      let old = '';
      try {
        old = readFileSync(full, 'utf8');
      } catch {
        // A missing file is stale.
      }
      if (old !== text) {
        process.stderr.write(`${path} differs from the generator's output: run node dashboards/build.ts\n`);
        stale++;
      }
    } else writeFileSync(full, text);
  }
  process.exitCode = stale > 0 ? 1 : 0;
}
