/**
 * `nodejs_eventloop_lag_*`, with prom-client's names and help, from a timer
 * of the sidecar's own. prom-client's collector records
 * `monitorEventLoopDelay`'s histogram, which holds the time between two
 * ticks of its timer, not how late a tick came: at the sidecar's one sample
 * a second every value was about 1 s, so an idle sidecar reported an
 * event-loop p99 and max of 1.001 s. The histogram also cost a third of a
 * MiB of native memory per pod (test/bench/README.md, "Issue 19: where it
 * stands"). Here a timer due every {@link EVENT_LOOP_SAMPLE_MS} records how
 * late it ran, and each scrape reports the samples since the previous one.
 */
import { monotonicMs } from '../runtime/clock.ts';
import type { Registry } from 'prom-client';
import { Gauge, type MetricsDetail } from './registry.ts';

/** Milliseconds between samples of the event-loop delay behind `nodejs_eventloop_lag_*`. */
export const EVENT_LOOP_SAMPLE_MS = 1000;

/** Samples kept between two scrapes: the newest ones, 17 minutes' worth at one a second, when nobody scrapes. */
export const EVENT_LOOP_MAX_SAMPLES = 1024;

/** What a scrape reports of the samples since the previous one, in seconds. */
export interface DelaySummary {
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly stddev: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

/**
 * The event-loop delay samples of one registry: a timer due every
 * `sampleMs` that records how late it ran (never keeping the process alive).
 */
export class EventLoopDelay {
  readonly #sampleMs: number;
  readonly #samples = new Float64Array(EVENT_LOOP_MAX_SAMPLES);
  /** Samples recorded since the last {@link take} (the newest EVENT_LOOP_MAX_SAMPLES of them are kept). */
  #count = 0;
  #due = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(sampleMs = EVENT_LOOP_SAMPLE_MS) {
    this.#sampleMs = sampleMs;
    this.#arm();
  }

  #arm(): void {
    this.#due = monotonicMs() + this.#sampleMs;
    this.#timer = setTimeout(() => {
      this.record(Math.max(0, monotonicMs() - this.#due));
      this.#arm();
    }, this.#sampleMs).unref();
  }

  /** Records one delay in milliseconds (the timer does; tests too). */
  record(ms: number): void {
    this.#samples[this.#count % EVENT_LOOP_MAX_SAMPLES] = ms;
    this.#count++;
  }

  /** The summary of the samples since the last call, which starts a new period; undefined when there is none. */
  take(): DelaySummary | undefined {
    const n = Math.min(this.#count, EVENT_LOOP_MAX_SAMPLES);
    if (n === 0) return undefined;
    const sorted = this.#samples.slice(0, n).sort();
    this.#count = 0;
    let sum = 0;
    for (const v of sorted) sum += v;
    const mean = sum / n;
    let squares = 0;
    for (const v of sorted) squares += (v - mean) ** 2;
    // Nearest rank: the smallest sample with at least p% of the samples at or below it.
    const rank = (p: number): number => sorted[Math.max(0, Math.ceil((p / 100) * n) - 1)]! / 1000;
    return { min: sorted[0]! / 1000, max: sorted[n - 1]! / 1000, mean: mean / 1000, stddev: Math.sqrt(squares / n) / 1000, p50: rank(50), p90: rank(90), p99: rank(99) };
  }

  /** Stops the timer. */
  stop(): void {
    clearTimeout(this.#timer);
  }
}

/** The gauges beside `nodejs_eventloop_lag_seconds` and what they report; `basic` keeps the max and the p99. */
const SUMMARY_GAUGES: readonly { name: string; help: string; pick: keyof DelaySummary; basic: boolean }[] = [
  { name: 'nodejs_eventloop_lag_min_seconds', help: 'The minimum recorded event loop delay.', pick: 'min', basic: false },
  { name: 'nodejs_eventloop_lag_max_seconds', help: 'The maximum recorded event loop delay.', pick: 'max', basic: true },
  { name: 'nodejs_eventloop_lag_mean_seconds', help: 'The mean of the recorded event loop delays.', pick: 'mean', basic: false },
  { name: 'nodejs_eventloop_lag_stddev_seconds', help: 'The standard deviation of the recorded event loop delays.', pick: 'stddev', basic: false },
  { name: 'nodejs_eventloop_lag_p50_seconds', help: 'The 50th percentile of the recorded event loop delays.', pick: 'p50', basic: false },
  { name: 'nodejs_eventloop_lag_p90_seconds', help: 'The 90th percentile of the recorded event loop delays.', pick: 'p90', basic: false },
  { name: 'nodejs_eventloop_lag_p99_seconds', help: 'The 99th percentile of the recorded event loop delays.', pick: 'p99', basic: true },
];

/**
 * Registers `nodejs_eventloop_lag_seconds` (as prom-client: how long a
 * setImmediate took at the previous scrape) and the summary gauges of the
 * delays sampled since the previous scrape (at `basic` the max and the p99,
 * at `full` prom-client's seven). A scrape that finds no new sample (two
 * scrapes within a second) leaves them as they were. Returns the sampler.
 */
export function registerEventLoopDelay(registry: Registry, detail: MetricsDetail, sampleMs = EVENT_LOOP_SAMPLE_MS): EventLoopDelay {
  const delay = new EventLoopDelay(sampleMs);
  const gauges = SUMMARY_GAUGES.filter((g) => detail === 'full' || g.basic);
  const summary: Gauge[] = [];
  // Registered first: its collect sets the others, which the registry reads after it (prom-client does the same).
  const lag = new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    registers: [registry],
    aggregator: 'average',
    collect() {
      const start = monotonicMs();
      setImmediate(() => lag.set((monotonicMs() - start) / 1000));
      const s = delay.take();
      if (s !== undefined) gauges.forEach((g, i) => summary[i]!.set(s[g.pick]));
    },
  });
  for (const g of gauges) summary.push(new Gauge({ name: g.name, help: g.help, registers: [registry], aggregator: g.pick === 'max' ? 'max' : g.pick === 'min' ? 'min' : 'average' }));
  return delay;
}
