/**
 * The metrics of this folder: what the `metrics` stage counts per client
 * query (requests, answers, their duration, queries in flight), the query
 * log's dropped lines, build_info, and prom-client's process metrics. The
 * other folders declare their own (see README.md, "Metrics").
 */
import type { Registry } from 'prom-client';
import collectDefaultMetrics from 'prom-client/lib/defaultMetrics.js'; // not the index: see registry.ts
import type { Proto, Source } from '../pipeline/stage.ts';
import { Gauge, PROTOS, QTYPE_VALUES, RCODE_VALUES, SlotCounter, SlotHistogram, protoSlot, qtypeSlot, rcodeSlot } from './registry.ts';

/** Milliseconds between samples of the event-loop delay behind `nodejs_eventloop_lag_*`. */
export const EVENT_LOOP_SAMPLE_MS = 1000;

/** `source` label values (see {@link Source}). */
export const SOURCES: readonly Source[] = ['policy', 'cache', 'upstream', 'local', 'listener'];
const SOURCE_SLOT: Readonly<Record<Source, number>> = { policy: 0, cache: 1, upstream: 2, local: 3, listener: 4 };
/** Sources whose series exist before their first answer: all but `listener` (overload, loops: rare, and seen when they happen). */
const EAGER_SOURCES = SOURCES.filter((s) => s !== 'listener');

/** Rcodes whose response series exist (at 0) before the first such answer, so ratios never lack a denominator. */
const RCODE_ALWAYS = new Set(['NOERROR', 'SERVFAIL', 'NXDOMAIN', 'REFUSED']);

/**
 * Buckets of the request duration histograms, in seconds: 100 µs (a cache
 * hit) to 5 s (the client resolver's whole timeout).
 */
export const DURATION_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Options of {@link QueryMetrics}. */
export interface QueryMetricsOptions {
  /** The package version, for build_info. */
  readonly version: string;
  /** Also collect prom-client's default process and Node.js metrics (default true). */
  readonly processMetrics?: boolean;
}

/** The metrics stage's per-query metrics, the query log's drops, build_info and the process metrics. */
export class QueryMetrics {
  readonly requests: SlotCounter;
  readonly responses: SlotCounter;
  readonly duration: SlotHistogram;
  readonly queryLogDropped: SlotCounter;
  /** Queries the metrics stage is working on now. */
  inflight = 0;

  /** [proto][qtype] → slot. */
  readonly #requestSlots: Int32Array;
  /** source × rcode → slot (-1: not created yet). */
  readonly #responseSlots: Int32Array;
  readonly #durationSlots: Int32Array;
  readonly #droppedSlot: number;

  constructor(registry: Registry, options: QueryMetricsOptions) {
    this.requests = new SlotCounter(registry, 'tenant_dns_requests_total', 'Client queries received, by transport and query type (fixed list, else other).', ['proto', 'qtype']);
    this.#requestSlots = new Int32Array(PROTOS.length * QTYPE_VALUES.length);
    PROTOS.forEach((proto, p) =>
      QTYPE_VALUES.forEach((qtype, q) => (this.#requestSlots[p * QTYPE_VALUES.length + q] = this.requests.slot({ proto, qtype }))),
    );

    this.responses = new SlotCounter(registry, 'tenant_dns_responses_total', 'Answers to client queries, by rcode (none: dropped) and source (policy, cache, upstream, local, listener).', ['rcode', 'source']);
    this.#responseSlots = new Int32Array(SOURCES.length * RCODE_VALUES.length).fill(-1);
    EAGER_SOURCES.forEach((source, s) =>
      RCODE_VALUES.forEach((rcode, r) => {
        if (RCODE_ALWAYS.has(rcode)) this.#responseSlots[s * RCODE_VALUES.length + r] = this.responses.slot({ rcode, source });
      }),
    );

    this.duration = new SlotHistogram(registry, 'tenant_dns_request_duration_seconds', 'Seconds from receiving a client query to having its answer, by source.', ['source'], DURATION_BUCKETS);
    // The listener's own answers (drops, refusals) take no time worth a histogram.
    this.#durationSlots = Int32Array.from(SOURCES.map((source) => (source === 'listener' ? -1 : this.duration.slot({ source }))));

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
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
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
