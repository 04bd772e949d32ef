/**
 * The metrics of this folder: what the `metrics` stage counts per client
 * query (requests, answers, their duration, queries in flight), the query
 * log's dropped lines, build_info, and prom-client's process metrics. The
 * other folders declare their own (see README.md, "Metrics").
 */
import type { Registry } from 'prom-client';
// prom-client's process metrics one module each (not the index: see registry.ts), so that `basic` collects a few;
// the ones only `full` collects are imported when it asks (fullOnlyProcessMetrics).
import heapSizeAndUsed from 'prom-client/lib/metrics/heapSizeAndUsed.js';
import osMemoryHeap from 'prom-client/lib/metrics/osMemoryHeap.js';
import processMaxFileDescriptors from 'prom-client/lib/metrics/processMaxFileDescriptors.js';
import processOpenFileDescriptors from 'prom-client/lib/metrics/processOpenFileDescriptors.js';
import processStartTime from 'prom-client/lib/metrics/processStartTime.js';
import type { Proto, Source } from '../pipeline/stage.ts';
import { registerEventLoopDelay } from './event-loop.ts';
import { BASIC_BUCKETS, Gauge, PROTOS, QTYPE_VALUES, RCODE_VALUES, SlotCounter, SlotHistogram, protoSlot, qtypeSlot, rcodeSlot, scrapeCounter, type MetricsDetail } from './registry.ts';

/** `source` label values (see {@link Source}). */
export const SOURCES: readonly Source[] = ['policy', 'cache', 'upstream', 'local', 'listener'];
const SOURCE_SLOT: Readonly<Record<Source, number>> = { policy: 0, cache: 1, upstream: 2, local: 3, listener: 4 };
/** Sources whose series exist before their first answer: all but `listener` (overload, loops: rare, and seen when they happen). */
const EAGER_SOURCES = SOURCES.filter((s) => s !== 'listener');

/** Rcodes whose response series exist (at 0) before the first such answer, so ratios never lack a denominator. */
const RCODE_ALWAYS: Readonly<Record<MetricsDetail, ReadonlySet<string>>> = {
  basic: new Set(['NOERROR', 'SERVFAIL', 'NXDOMAIN']),
  full: new Set(['NOERROR', 'SERVFAIL', 'NXDOMAIN', 'REFUSED']),
};

/** `qtype` label values at the `basic` level: the two types every application asks, the rest `other`. */
export const BASIC_QTYPES: readonly string[] = ['A', 'AAAA'];

type ProcessMetric = (registry: Registry) => void;

/**
 * prom-client's process CPU counters (the same names and help: CPU seconds
 * since they were registered), each read from process.cpuUsage() at its own
 * scrape. Not prom-client's module: it loads @opentelemetry/api (45 KB of
 * start-up source, test/bench/README.md, "Marginal memory") for exemplars
 * the sidecar never asks for, and sets all three from the user counter's
 * collect, so at `basic`, which leaves that counter out,
 * process_cpu_seconds_total stayed 0.
 */
const processCpuTotal: ProcessMetric = (registry) => {
  const start = process.cpuUsage();
  const seconds = (pick: (u: NodeJS.CpuUsage) => number) => () => pick(process.cpuUsage(start)) / 1e6;
  scrapeCounter(registry, 'process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', seconds((u) => u.user));
  scrapeCounter(registry, 'process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', seconds((u) => u.system));
  scrapeCounter(registry, 'process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', seconds((u) => u.user + u.system));
};

/**
 * The process metrics of both levels: prom-client's few that `basic` keeps,
 * and the event-loop delay's, which are the sidecar's own (event-loop.ts).
 */
const basicProcessMetrics = (detail: MetricsDetail): readonly ProcessMetric[] => [
  processCpuTotal,
  processStartTime,
  osMemoryHeap,
  processOpenFileDescriptors,
  processMaxFileDescriptors,
  (r) => registerEventLoopDelay(r, detail),
  heapSizeAndUsed,
];

/**
 * The rest of prom-client's default set, which only `full` collects, imported
 * when it does: heapSpacesSizeAndUsed.js loads node:v8 as it loads, which a
 * sidecar at the default `basic` then only loads for its start-up heap
 * compaction, after its first answer (test/bench/README.md, "Issue 19: where
 * it stands").
 */
async function fullOnlyProcessMetrics(): Promise<ProcessMetric[]> {
  const modules = await Promise.all([
    import('prom-client/lib/metrics/processResources.js'),
    import('prom-client/lib/metrics/processHandles.js'),
    import('prom-client/lib/metrics/processRequests.js'),
    import('prom-client/lib/metrics/heapSpacesSizeAndUsed.js'),
    import('prom-client/lib/metrics/version.js'),
    import('prom-client/lib/metrics/gc.js'),
  ]);
  return modules.map((m) => m.default);
}

/** Gauges of those modules left out at the `basic` level (the event-loop delay's own collector registers only its last sample, p99 and max there). */
const BASIC_PROCESS_OMITTED: readonly string[] = [
  'process_virtual_memory_bytes',
  // process_cpu_seconds_total is their sum; process_resident_memory_bytes and nodejs_heap_size_* say more than the heap segment.
  'process_cpu_user_seconds_total',
  'process_cpu_system_seconds_total',
  'process_heap_bytes',
];

/**
 * Registers prom-client's process and Node.js metrics at `detail` (a few at
 * `basic`, its whole default set at `full`), the event-loop delay sampled once
 * a second. The sidecar's and the gateway's registries use it. Those of
 * `basic` are registered when it returns (a failure throws, as a metric
 * registered twice does); the promise settles once `full`'s others are too
 * (at `basic`, at once).
 */
export function collectProcessMetrics(registry: Registry, detail: MetricsDetail): Promise<void> {
  for (const collect of basicProcessMetrics(detail)) collect(registry);
  if (detail !== 'full') {
    for (const name of BASIC_PROCESS_OMITTED) registry.removeSingleMetric(name);
    return Promise.resolve();
  }
  return fullOnlyProcessMetrics().then((collectors) => {
    for (const collect of collectors) collect(registry);
  });
}

/**
 * Buckets of the request duration histograms, in seconds: 100 µs (a cache
 * hit) to 5 s (the client resolver's whole timeout).
 */
export const DURATION_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Options of {@link QueryMetrics}. */
export interface QueryMetricsOptions {
  /** The package version, for build_info. */
  readonly version: string;
  /** Also collect prom-client's process and Node.js metrics (default true): all of them at `full`, a few at `basic`. */
  readonly processMetrics?: boolean;
  /** Labels and buckets (default `full`; the sidecar's `--metrics-detail` defaults to `basic`): README.md, "Detail levels". */
  readonly detail?: MetricsDetail;
}

/** The metrics stage's per-query metrics, the query log's drops, build_info and the process metrics. */
export class QueryMetrics {
  readonly requests: SlotCounter;
  readonly responses: SlotCounter;
  readonly duration: SlotHistogram;
  readonly queryLogDropped: SlotCounter;
  /** Settles once every metric is registered (the process metrics `full` imports on demand). */
  readonly ready: Promise<void>;
  /** Queries the metrics stage is working on now. */
  inflight = 0;

  /** [proto][qtype] → slot. */
  readonly #requestSlots: Int32Array;
  /** source × rcode → slot (-1: not created yet). */
  readonly #responseSlots: Int32Array;
  readonly #durationSlots: Int32Array;
  readonly #droppedSlot: number;

  constructor(registry: Registry, options: QueryMetricsOptions) {
    const detail = options.detail ?? 'full';
    const full = detail === 'full';
    this.requests = new SlotCounter(registry, 'tenant_dns_requests_total', 'Client queries received, by transport and query type (fixed list, else other).', ['proto', 'qtype']);
    this.#requestSlots = new Int32Array(PROTOS.length * QTYPE_VALUES.length);
    PROTOS.forEach((proto, p) => {
      const slots = new Map<string, number>();
      QTYPE_VALUES.forEach((name, q) => {
        const qtype = full || BASIC_QTYPES.includes(name) ? name : 'other';
        let slot = slots.get(qtype);
        if (slot === undefined) slots.set(qtype, (slot = this.requests.slot({ proto, qtype })));
        this.#requestSlots[p * QTYPE_VALUES.length + q] = slot;
      });
    });

    this.responses = new SlotCounter(registry, 'tenant_dns_responses_total', 'Answers to client queries, by rcode (none: dropped) and source (policy, cache, upstream, local, listener).', ['rcode', 'source']);
    this.#responseSlots = new Int32Array(SOURCES.length * RCODE_VALUES.length).fill(-1);
    EAGER_SOURCES.forEach((source, s) =>
      RCODE_VALUES.forEach((rcode, r) => {
        if (RCODE_ALWAYS[detail].has(rcode)) this.#responseSlots[s * RCODE_VALUES.length + r] = this.responses.slot({ rcode, source });
      }),
    );

    // The listener's own answers (drops, refusals) take no time worth a histogram.
    if (full) {
      this.duration = new SlotHistogram(registry, 'tenant_dns_request_duration_seconds', 'Seconds from receiving a client query to having its answer, by source.', ['source'], DURATION_BUCKETS);
      this.#durationSlots = Int32Array.from(SOURCES.map((source) => (source === 'listener' ? -1 : this.duration.slot({ source }))));
    } else {
      this.duration = new SlotHistogram(registry, 'tenant_dns_request_duration_seconds', 'Seconds from receiving a client query to having its answer (by source with --metrics-detail full).', [], BASIC_BUCKETS);
      const all = this.duration.slot({});
      this.#durationSlots = Int32Array.from(SOURCES.map((source) => (source === 'listener' ? -1 : all)));
    }

    const self = this;
    new Gauge({
      name: 'tenant_dns_inflight_queries',
      help: 'Client queries being answered now.',
      registers: [registry],
      collect() {
        this.set(self.inflight);
      },
    });
    this.queryLogDropped = new SlotCounter(registry, 'tenant_dns_query_log_dropped_total', 'Query log lines dropped because the log buffer was full (stdout slower than the queries).', []);
    this.#droppedSlot = this.queryLogDropped.slot({});
    const info = new Gauge({ name: 'tenant_dns_build_info', help: 'Always 1; the labels say which build runs.', labelNames: ['version', 'node'], registers: [registry] });
    info.set({ version: options.version, node: process.versions.node }, 1);

    // The event-loop delay is sampled once a second. prom-client's default (every 10 ms) is a
    // timer that woke an idle sidecar 100 times a second: ~3 ms of CPU per second per pod for a
    // gauge no dashboard reads (measured with perf stat, issue 7).
    this.ready = options.processMetrics ?? true ? collectProcessMetrics(registry, detail) : Promise.resolve();
    // Telemetry.start awaits it and fails with its error; a registry nobody starts must not crash on it.
    this.ready.catch(() => {});
  }

  /** Counts a client query. Hot path. */
  request(proto: Proto, qtype: number): void {
    this.requests.add(this.#requestSlots[protoSlot(proto) * QTYPE_VALUES.length + qtypeSlot(qtype)]!);
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

  /** Counts `n` query log lines dropped. */
  logDropped(n = 1): void {
    this.queryLogDropped.add(this.#droppedSlot, n);
  }
}
