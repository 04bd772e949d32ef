/**
 * Every metric the sidecar exports, declared against a prom-client Registry
 * passed in (tests get a fresh one), namespace `tenant_dns_`, CoreDNS's
 * vocabulary, every series labelled `tenant` (DESIGN §6).
 *
 * The hot path (one request, one response, one decision per query) never
 * calls prom-client: label sets are resolved once to a slot index and a
 * query adds to a number in a typed array. prom-client's own `labels()`
 * hashes the label object on every call; the slot metrics here turn their
 * arrays into prom-client's exposition values only when Prometheus scrapes.
 * Rarer events (upstream attempts, reloads, dropped log lines) use slot
 * metrics too, keyed through small maps; gauges read their sources at scrape
 * time.
 */
import type { CacheStats } from '../cache/store.ts';
import type { Metric, Registry } from 'prom-client';
// prom-client's own modules, not its index: the index also loads the Pushgateway, and with it
// node:https, node:tls and node:zlib, on every start, for nothing the sidecar uses
// (test/bench/README.md, "Start-up and idle memory"; types/prom-client-lib.d.ts gives these
// paths the index's types).
import Counter from 'prom-client/lib/counter.js';
import Gauge from 'prom-client/lib/gauge.js';
import collectDefaultMetrics from 'prom-client/lib/defaultMetrics.js';
import type { Proto, Source } from '../pipeline/stage.ts';

/** Milliseconds between samples of the event-loop delay behind `nodejs_eventloop_lag_*`. */
export const EVENT_LOOP_SAMPLE_MS = 1000;

/** The prefix of every tenant-dns metric. */
export const NAMESPACE = 'tenant_dns_';

/** Query types with their own `qtype` label value; every other type is `other`. */
export const QTYPE_LABELS = ['A', 'AAAA', 'CNAME', 'PTR', 'SRV', 'TXT', 'MX', 'NS', 'SOA', 'HTTPS', 'SVCB', 'ANY'] as const;

const QTYPE_NUMBERS: Readonly<Record<(typeof QTYPE_LABELS)[number], number>> = {
  A: 1,
  AAAA: 28,
  CNAME: 5,
  PTR: 12,
  SRV: 33,
  TXT: 16,
  MX: 15,
  NS: 2,
  SOA: 6,
  HTTPS: 65,
  SVCB: 64,
  ANY: 255,
};

/** `qtype` label values in slot order: the fixed list, then `other`. */
const QTYPE_VALUES: readonly string[] = [...QTYPE_LABELS, 'other'];
const QTYPE_OTHER = QTYPE_LABELS.length;

/** QTYPE number → slot in {@link QTYPE_VALUES}; 64 KiB, built once per process. */
const QTYPE_INDEX: Uint8Array = (() => {
  const t = new Uint8Array(65_536).fill(QTYPE_OTHER);
  QTYPE_LABELS.forEach((name, i) => (t[QTYPE_NUMBERS[name]] = i));
  return t;
})();

/** The `qtype` label of a QTYPE number: its name from the fixed list, else `other`. */
export function qtypeLabel(qtype: number): string {
  return QTYPE_VALUES[QTYPE_INDEX[qtype & 0xffff]!]!;
}

/** RCODE names 0–23 (IANA DNS parameters; 12–15 are unassigned and label as `other`). */
const RCODE_NAMES: readonly (string | undefined)[] = [
  'NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH',
  'NOTZONE', 'DSOTYPENI', undefined, undefined, undefined, undefined, 'BADVERS', 'BADKEY', 'BADTIME', 'BADMODE',
  'BADNAME', 'BADALG', 'BADTRUNC', 'BADCOOKIE',
];

/** `rcode` label values in slot order: the named codes, `other`, and `none` (a dropped query: nothing was sent). */
const RCODE_VALUES: readonly string[] = [...RCODE_NAMES.map((n) => n ?? 'other').filter((n, i, a) => a.indexOf(n) === i), 'none'];
const RCODE_SLOT: Int8Array = (() => {
  const t = new Int8Array(RCODE_NAMES.length);
  RCODE_NAMES.forEach((n, i) => (t[i] = RCODE_VALUES.indexOf(n ?? 'other')));
  return t;
})();
const RCODE_OTHER = RCODE_VALUES.indexOf('other');
const RCODE_NONE = RCODE_VALUES.indexOf('none');
/** Rcodes whose response series exist (at 0) before the first such answer, so ratios never lack a denominator. */
const RCODE_ALWAYS = new Set(['NOERROR', 'SERVFAIL', 'NXDOMAIN', 'REFUSED']);

function rcodeSlot(rcode: number): number {
  if (rcode < 0) return RCODE_NONE;
  return rcode < RCODE_SLOT.length ? RCODE_SLOT[rcode]! : RCODE_OTHER;
}

/** The `rcode` label of a full rcode: its name (NOERROR, NXDOMAIN, …), `other` when unnamed, `none` for a drop (-1). */
export function rcodeLabel(rcode: number): string {
  return RCODE_VALUES[rcodeSlot(rcode)]!;
}

/** `source` label values (see {@link Source}). */
export const SOURCES: readonly Source[] = ['policy', 'cache', 'upstream', 'local', 'listener'];
const SOURCE_SLOT: Readonly<Record<Source, number>> = { policy: 0, cache: 1, upstream: 2, local: 3, listener: 4 };
/** Sources whose series exist before their first answer: all but `listener` (overload, loops: rare, and seen when they happen). */
const EAGER_SOURCES = SOURCES.filter((s) => s !== 'listener');
const PROTOS: readonly Proto[] = ['udp', 'tcp'];
/** `action` label values of policy decisions. */
export const ACTIONS = ['allow', 'deny', 'log'] as const;
const ACTION_SLOT: Readonly<Record<(typeof ACTIONS)[number], number>> = { allow: 0, deny: 1, log: 2 };

/**
 * Buckets of the request duration histograms, in seconds: 100 µs (a cache
 * hit) to 5 s (the client resolver's whole timeout).
 */
export const DURATION_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Buckets of the upstream exchange histogram, in seconds (an upstream round trip starts near 1 ms). */
export const UPSTREAM_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5];

type Labels = Readonly<Record<string, string>>;

/** One exposition value as prom-client's registry formats it. */
interface ExpositionValue {
  readonly labels: Labels;
  readonly value: number;
  readonly metricName?: string;
}

/**
 * A counter whose label sets are resolved once to slots; {@link add} is a
 * typed-array write. Conforms to what prom-client's Registry reads (`name`,
 * `help`, `type`, `get()`), so it is exported with the others.
 */
export class SlotCounter {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter' as const;
  readonly aggregator = 'sum' as const;
  readonly labelNames: readonly string[];
  #labels: Labels[] = [];
  #values = new Float64Array(16);
  /** Slots exported even at 0; the others appear once counted. */
  #always: boolean[] = [];

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    registry.registerMetric(this as unknown as Metric);
  }

  /** A new slot for `labels` (call once per label set and keep the number). `always`: export it at 0 too. */
  slot(labels: Labels, always = true): number {
    const i = this.#labels.length;
    if (i === this.#values.length) {
      const grown = new Float64Array(i * 2);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#labels.push(Object.freeze({ ...labels }));
    this.#always.push(always);
    return i;
  }

  /** Adds `n` (default 1) to a slot. */
  add(slot: number, n = 1): void {
    this.#values[slot]! += n;
  }

  /** The value of a slot (tests). */
  value(slot: number): number {
    return this.#values[slot]!;
  }

  /** Sets every slot back to 0 (prom-client's `registry.resetMetrics()`). */
  reset(): void {
    this.#values.fill(0);
  }

  /** The exposition object prom-client's registry formats. */
  get(): { name: string; help: string; type: 'counter'; aggregator: 'sum'; values: ExpositionValue[] } {
    const values: ExpositionValue[] = [];
    for (let i = 0; i < this.#labels.length; i++) {
      const v = this.#values[i]!;
      if (v !== 0 || this.#always[i]) values.push({ labels: this.#labels[i]!, value: v });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** A histogram with slot-resolved label sets; {@link observe} walks the bounds and writes two typed arrays. */
export class SlotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly labelNames: readonly string[];
  readonly buckets: readonly number[];
  readonly #bounds: Float64Array;
  /** Per slot: one count per bucket (not cumulative), then +Inf, then the observation count. */
  #counts: Float64Array;
  #sums: Float64Array;
  #labels: Labels[] = [];
  readonly #width: number;

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    this.buckets = buckets;
    this.#bounds = Float64Array.from(buckets);
    this.#width = buckets.length + 2;
    this.#counts = new Float64Array(this.#width * 8);
    this.#sums = new Float64Array(8);
    registry.registerMetric(this as unknown as Metric);
  }

  /** A new slot for `labels` (call once per label set and keep the number). */
  slot(labels: Labels): number {
    const i = this.#labels.length;
    if (i === this.#sums.length) {
      const counts = new Float64Array(this.#counts.length * 2);
      counts.set(this.#counts);
      this.#counts = counts;
      const sums = new Float64Array(i * 2);
      sums.set(this.#sums);
      this.#sums = sums;
    }
    this.#labels.push(Object.freeze({ ...labels }));
    return i;
  }

  /** Records one observation of `value` (seconds) in a slot. */
  observe(slot: number, value: number): void {
    const bounds = this.#bounds;
    let b = 0;
    while (b < bounds.length && value > bounds[b]!) b++;
    const base = slot * this.#width;
    this.#counts[base + b]! += 1;
    this.#counts[base + this.#width - 1]! += 1;
    this.#sums[slot]! += value;
  }

  /** Observations in a slot (tests). */
  count(slot: number): number {
    return this.#counts[slot * this.#width + this.#width - 1]!;
  }

  /** Sets every slot back to 0. */
  reset(): void {
    this.#counts.fill(0);
    this.#sums.fill(0);
  }

  /** The exposition object prom-client's registry formats: `_bucket` (cumulative), `_sum`, `_count` per slot. */
  get(): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: ExpositionValue[] } {
    const values: ExpositionValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (let i = 0; i < this.#labels.length; i++) {
      const labels = this.#labels[i]!;
      const base = i * this.#width;
      let acc = 0;
      for (let b = 0; b < this.buckets.length; b++) {
        acc += this.#counts[base + b]!;
        values.push({ labels: { ...labels, le: String(this.buckets[b]) }, value: acc, metricName: bucket });
      }
      const count = this.#counts[base + this.#width - 1]!;
      values.push({ labels: { ...labels, le: '+Inf' }, value: count, metricName: bucket });
      values.push({ labels, value: this.#sums[i]!, metricName: `${this.name}_sum` });
      values.push({ labels, value: count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** The cache counters the metrics read at scrape time: what CacheStore#stats returns. */
export type CacheStatsSource = CacheStats;

/** The part of an upstream group the health gauge reads. */
export interface HealthSource {
  members(): readonly { readonly address: string; readonly healthy: boolean }[];
}

/** Where scrape-time gauges read their values; each optional (absent: the series is 0 or missing). */
export interface MetricSources {
  /** The cache's counters. */
  readonly cacheStats?: () => CacheStatsSource;
  /** The upstream groups by name. */
  readonly groups?: () => ReadonlyMap<string, HealthSource>;
  /** When the current policy was loaded, ms since the epoch. */
  readonly lastReloadSuccess?: () => number;
}

/** Options of {@link SidecarMetrics}. */
export interface SidecarMetricsOptions {
  /** The tenant: the `tenant` label of every series (a registry default label). */
  readonly tenant: string;
  /** The package version, for build_info. */
  readonly version: string;
  /** Also collect prom-client's default process and Node.js metrics (default true). */
  readonly processMetrics?: boolean;
}

/** The result label of a policy reload. */
export type ReloadOutcome = 'success' | 'failure';

/**
 * All tenant-dns metrics of one sidecar, registered in `registry` with the
 * default label `tenant`. The methods are what the stages and hooks call.
 */
export class SidecarMetrics {
  readonly registry: Registry;
  readonly requests: SlotCounter;
  readonly responses: SlotCounter;
  readonly decisions: SlotCounter;
  readonly rejected: SlotCounter;
  readonly duration: SlotHistogram;
  readonly upstreamDuration: SlotHistogram;
  readonly upstreamFailures: SlotCounter;
  readonly reloads: SlotCounter;
  readonly queryLogDropped: SlotCounter;
  readonly upstreamConnections: Gauge<'upstream'>;
  /** Queries the metrics stage is working on now. */
  inflight = 0;

  /** [proto][qtype] → slot. */
  readonly #requestSlots: Int32Array;
  /** source × rcode → slot (-1: not created yet). */
  readonly #responseSlots: Int32Array;
  /** proto × rcode → slot (-1: not created yet). */
  readonly #rejectedSlots: Int32Array;
  /** rule → slot per action (-1: not created yet). */
  readonly #decisionSlots = new Map<string, Int32Array>();
  readonly #durationSlots: Int32Array;
  /** upstream → slot per rcode label (-1: not created yet). */
  readonly #upstreamSlots = new Map<string, Int32Array>();
  /** upstream → error code → slot. */
  readonly #failureSlots = new Map<string, Map<string, number>>();
  readonly #reloadSlots: Readonly<Record<ReloadOutcome, number>>;
  readonly #droppedSlot: number;
  readonly #connectionChildren = new Map<string, { inc(n: number): void }>();
  readonly #reloadOk: Gauge;
  #flushed = 0;
  #sources: MetricSources = {};

  constructor(registry: Registry, options: SidecarMetricsOptions) {
    this.registry = registry;
    registry.setDefaultLabels({ tenant: options.tenant });
    const n = (s: string) => NAMESPACE + s;

    this.requests = new SlotCounter(registry, n('requests_total'), 'Client queries received, by transport and query type (fixed list, else other).', ['proto', 'qtype']);
    this.#requestSlots = new Int32Array(PROTOS.length * QTYPE_VALUES.length);
    PROTOS.forEach((proto, p) =>
      QTYPE_VALUES.forEach((qtype, q) => (this.#requestSlots[p * QTYPE_VALUES.length + q] = this.requests.slot({ proto, qtype }))),
    );

    this.responses = new SlotCounter(registry, n('responses_total'), 'Answers to client queries, by rcode (none: dropped) and source (policy, cache, upstream, local, listener).', ['rcode', 'source']);
    this.#responseSlots = new Int32Array(SOURCES.length * RCODE_VALUES.length).fill(-1);
    EAGER_SOURCES.forEach((source, s) =>
      RCODE_VALUES.forEach((rcode, r) => {
        if (RCODE_ALWAYS.has(rcode)) this.#responseSlots[s * RCODE_VALUES.length + r] = this.responses.slot({ rcode, source });
      }),
    );

    this.rejected = new SlotCounter(registry, n('rejected_requests_total'), 'Client messages refused before the pipeline (not in requests_total): unreadable or not a query, by transport and the rcode answered (FORMERR, BADVERS, …; none: dropped without an answer).', ['proto', 'rcode']);
    this.#rejectedSlots = new Int32Array(PROTOS.length * RCODE_VALUES.length).fill(-1);
    PROTOS.forEach((proto, p) =>
      ['FORMERR', 'none'].forEach((rcode) => (this.#rejectedSlots[p * RCODE_VALUES.length + RCODE_VALUES.indexOf(rcode)] = this.rejected.slot({ proto, rcode }))),
    );

    this.decisions = new SlotCounter(registry, n('policy_decisions_total'), 'Policy decisions for client queries, by action (allow, deny, log) and deciding rule name (default: the default action; platform:NAME: a platform rule).', ['action', 'rule']);

    this.duration = new SlotHistogram(registry, n('request_duration_seconds'), 'Seconds from receiving a client query to having its answer, by source.', ['source'], DURATION_BUCKETS);
    this.#durationSlots = Int32Array.from(SOURCES.map((source) => (source === 'listener' ? -1 : this.duration.slot({ source }))));

    const self = this;
    const cache = (key: keyof CacheStatsSource) => () => self.#sources.cacheStats?.()[key] ?? 0;
    const counterFrom = (name: string, help: string, read: () => number) =>
      new Counter({
        name: n(name),
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    const gaugeFrom = (name: string, help: string, read: () => number) =>
      new Gauge({
        name: n(name),
        help,
        registers: [registry],
        collect() {
          this.set(read());
        },
      });
    counterFrom('cache_hits_total', 'Cache lookups answered by a fresh entry.', cache('hits'));
    counterFrom('cache_misses_total', 'Cache lookups without a fresh entry.', cache('misses'));
    gaugeFrom('cache_entries', 'Entries in the cache, stale ones included.', cache('entries'));
    gaugeFrom('cache_bytes', 'Bytes of stored replies in the cache, stale ones included.', cache('bytes'));
    counterFrom('cache_stale_served_total', 'Stale answers served because the upstreams failed (RFC 8767).', cache('staleServed'));
    new Counter({
      name: n('cache_evictions_total'),
      help: 'Entries removed from the cache, by reason: capacity (LRU, to stay within the bounds), expired, flush (admin POST /cache/flush).',
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        const s = self.#sources.cacheStats?.();
        this.reset();
        this.inc({ reason: 'capacity' }, s?.evictions ?? 0);
        this.inc({ reason: 'expired' }, s?.expired ?? 0);
        this.inc({ reason: 'flush' }, self.#flushed);
      },
    });

    this.upstreamDuration = new SlotHistogram(registry, n('upstream_request_duration_seconds'), 'Seconds one exchange with one upstream took, by upstream address and the reply rcode (failed exchanges are in upstream_failures_total).', ['upstream', 'rcode'], UPSTREAM_BUCKETS);
    this.upstreamFailures = new SlotCounter(registry, n('upstream_failures_total'), 'Exchanges with an upstream that failed without a reply, by upstream address and error code (UPSTREAM_TIMEOUT, UPSTREAM_CONNECT, …).', ['upstream', 'code']);
    this.upstreamConnections = new Gauge({
      name: n('upstream_connections'),
      help: 'Connections open to an upstream (tcp, tls, https), by upstream address.',
      labelNames: ['upstream'],
      registers: [registry],
    });
    new Gauge({
      name: n('upstream_healthy'),
      help: 'Whether an upstream is up (1) or marked down after consecutive failures (0), by group and upstream address.',
      labelNames: ['group', 'upstream'],
      registers: [registry],
      collect() {
        this.reset();
        const groups = self.#sources.groups?.();
        if (!groups) return;
        for (const [group, g] of groups) for (const m of g.members()) this.set({ group, upstream: m.address }, m.healthy ? 1 : 0);
      },
    });

    new Gauge({
      name: n('inflight_queries'),
      help: 'Client queries being answered now.',
      registers: [registry],
      collect() {
        this.set(self.inflight);
      },
    });
    this.reloads = new SlotCounter(registry, n('policy_reloads_total'), 'Policy reload attempts (file change or SIGHUP), by result (success, failure).', ['result']);
    this.#reloadSlots = { success: this.reloads.slot({ result: 'success' }), failure: this.reloads.slot({ result: 'failure' }) };
    this.#reloadOk = new Gauge({
      name: n('policy_last_reload_successful'),
      help: 'Whether the last policy reload attempt succeeded (1) or failed and the previous policy still serves (0).',
      registers: [registry],
    });
    this.#reloadOk.set(1);
    gaugeFrom('policy_last_reload_success_timestamp_seconds', 'Unix time in seconds when the policy serving now was loaded.', () => (self.#sources.lastReloadSuccess?.() ?? 0) / 1000);
    this.queryLogDropped = new SlotCounter(registry, n('query_log_dropped_total'), 'Query log lines dropped because the log buffer was full (stdout slower than the queries).', []);
    this.#droppedSlot = this.queryLogDropped.slot({});
    const info = new Gauge({ name: n('build_info'), help: 'Always 1; the labels say which build runs.', labelNames: ['version', 'node'], registers: [registry] });
    info.set({ version: options.version, node: process.versions.node }, 1);

    // The event-loop delay is sampled once a second. prom-client's default (every 10 ms) is a
    // timer that woke an idle sidecar 100 times a second: ~3 ms of CPU per second per pod for a
    // gauge no dashboard reads (measured with perf stat, issue 7).
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /** Sets where the scrape-time gauges read from (the cache, the upstream groups, the policy manager). */
  bindSources(sources: MetricSources): void {
    this.#sources = { ...this.#sources, ...sources };
  }

  /** Counts a client query. Hot path. */
  request(proto: Proto, qtype: number): void {
    this.requests.add(this.#requestSlots[(proto === 'udp' ? 0 : QTYPE_VALUES.length) + QTYPE_INDEX[qtype & 0xffff]!]!);
  }

  /** Counts an answer (`rcode` -1: dropped) and records how long it took in seconds. Hot path. */
  response(source: Source, rcode: number, seconds: number): void {
    const s = SOURCE_SLOT[source];
    const i = s * RCODE_VALUES.length + rcodeSlot(rcode);
    let slot = this.#responseSlots[i]!;
    if (slot < 0) slot = this.#responseSlots[i] = this.responses.slot({ rcode: RCODE_VALUES[i % RCODE_VALUES.length]!, source });
    this.responses.add(slot);
    const d = this.#durationSlots[s]!;
    if (d >= 0) this.duration.observe(d, seconds);
  }

  /** Counts a client message the listener refused before the pipeline (HandlerDeps.onRejected): `rcode` answered, -1 when dropped. */
  rejectedRequest(proto: Proto, rcode: number): void {
    const i = (proto === 'udp' ? 0 : RCODE_VALUES.length) + rcodeSlot(rcode);
    let slot = this.#rejectedSlots[i]!;
    if (slot < 0) slot = this.#rejectedSlots[i] = this.rejected.slot({ proto, rcode: RCODE_VALUES[i % RCODE_VALUES.length]! });
    this.rejected.add(slot);
  }

  /** Counts a policy decision. Hot path: one map lookup by rule name. */
  decision(action: 'allow' | 'deny' | 'log', rule: string): void {
    let slots = this.#decisionSlots.get(rule);
    if (slots === undefined) {
      slots = new Int32Array(ACTIONS.length).fill(-1);
      this.#decisionSlots.set(rule, slots);
    }
    const a = ACTION_SLOT[action];
    let slot = slots[a]!;
    if (slot < 0) slot = slots[a] = this.decisions.slot({ action, rule });
    this.decisions.add(slot);
  }

  /** Records one upstream exchange (see UpstreamObserver.onAttempt): a reply's rcode, or an error code. */
  upstreamAttempt(upstream: string, rcode: number | null, code: string | null, seconds: number): void {
    if (rcode === null) {
      let byCode = this.#failureSlots.get(upstream);
      if (byCode === undefined) this.#failureSlots.set(upstream, (byCode = new Map()));
      const c = code ?? 'INTERNAL';
      let slot = byCode.get(c);
      if (slot === undefined) byCode.set(c, (slot = this.upstreamFailures.slot({ upstream, code: c })));
      this.upstreamFailures.add(slot);
      return;
    }
    let slots = this.#upstreamSlots.get(upstream);
    if (slots === undefined) this.#upstreamSlots.set(upstream, (slots = new Int32Array(RCODE_VALUES.length).fill(-1)));
    const r = rcodeSlot(rcode);
    let slot = slots[r]!;
    if (slot < 0) slot = slots[r] = this.upstreamDuration.slot({ upstream, rcode: RCODE_VALUES[r]! });
    this.upstreamDuration.observe(slot, seconds);
  }

  /**
   * Creates the series of each upstream at 0: failures for the usual error
   * codes (timeout and connect; TLS for tls:// and https://, HTTP for
   * https://) and the duration of NOERROR and NXDOMAIN replies, so that the
   * first events of an upstream show in rate() and increase().
   */
  declareUpstreams(addresses: Iterable<string>): void {
    for (const upstream of addresses) {
      let byCode = this.#failureSlots.get(upstream);
      if (byCode === undefined) this.#failureSlots.set(upstream, (byCode = new Map()));
      const codes = ['UPSTREAM_TIMEOUT', 'UPSTREAM_CONNECT'];
      if (/^(tls|https):/.test(upstream)) codes.push('UPSTREAM_TLS');
      if (upstream.startsWith('https:')) codes.push('UPSTREAM_HTTP');
      for (const code of codes) if (!byCode.has(code)) byCode.set(code, this.upstreamFailures.slot({ upstream, code }));
      let slots = this.#upstreamSlots.get(upstream);
      if (slots === undefined) this.#upstreamSlots.set(upstream, (slots = new Int32Array(RCODE_VALUES.length).fill(-1)));
      for (const rcode of ['NOERROR', 'NXDOMAIN']) {
        const r = RCODE_VALUES.indexOf(rcode);
        if (slots[r]! < 0) slots[r] = this.upstreamDuration.slot({ upstream, rcode });
      }
    }
  }

  /** Connections to `upstream` opened (+1) or closed (-1). */
  upstreamConnection(upstream: string, delta: number): void {
    let child = this.#connectionChildren.get(upstream);
    if (child === undefined) {
      this.upstreamConnections.set({ upstream }, 0);
      child = this.upstreamConnections.labels({ upstream });
      this.#connectionChildren.set(upstream, child);
    }
    child.inc(delta);
  }

  /** The hooks to pass to every upstream group (`createGroup(..., { observer })`) and `fromUrl` (`onConnection`). */
  upstreamObserver(): { onAttempt(u: string, rcode: number | null, code: string | null, seconds: number): void; onConnection(u: string, delta: number): void } {
    return {
      onAttempt: (u, rcode, code, seconds) => this.upstreamAttempt(u, rcode, code, seconds),
      onConnection: (u, delta) => this.upstreamConnection(u, delta),
    };
  }

  /** Counts a policy reload attempt. */
  policyReload(result: ReloadOutcome): void {
    this.reloads.add(this.#reloadSlots[result]);
    this.#reloadOk.set(result === 'success' ? 1 : 0);
  }

  /**
   * Creates the decision series of the policy's rules at 0, so that the
   * first decision of a rule is seen as an increase by rate() and increase()
   * (a counter that appears with a value hides its first increments).
   */
  declareRules(rules: Iterable<{ readonly action: 'allow' | 'deny' | 'log'; readonly rule: string }>): void {
    for (const { action, rule } of rules) {
      let slots = this.#decisionSlots.get(rule);
      if (slots === undefined) this.#decisionSlots.set(rule, (slots = new Int32Array(ACTIONS.length).fill(-1)));
      const a = ACTION_SLOT[action];
      if (slots[a]! < 0) slots[a] = this.decisions.slot({ action, rule });
    }
  }

  /** Counts `n` query log lines dropped. */
  logDropped(n = 1): void {
    this.queryLogDropped.add(this.#droppedSlot, n);
  }

  /** Counts `n` entries removed by an admin flush. */
  cacheFlushed(n: number): void {
    this.#flushed += n;
  }
}
