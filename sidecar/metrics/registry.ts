/**
 * The shared plumbing of the sidecar's metrics: slot metrics, label helpers
 * and scrape-time counters and gauges. Each folder declares its own metrics
 * with these against a registry passed in (`cache/metrics.ts`,
 * `upstream/metrics.ts`, `policy/metrics.ts`, `listener/metrics.ts`,
 * `metrics/metrics.ts`); `telemetry.ts` assembles them. Namespace
 * `tenant_dns_`, CoreDNS's vocabulary, every series labelled `tenant`
 * (DESIGN §6).
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
import type { Metric, Registry } from 'prom-client';
// prom-client's own modules, not its index: the index also loads the Pushgateway, and with it
// node:https, node:tls and node:zlib, on every start, for nothing the sidecar uses
// (test/bench/README.md, "Start-up and idle memory"; types/prom-client-lib.d.ts gives these
// paths the index's types). The folder modules take Counter and Gauge from here.
import Counter from 'prom-client/lib/counter.js';
import Gauge from 'prom-client/lib/gauge.js';
import type { Proto } from '../pipeline/stage.ts';

export { Counter, Gauge };

/**
 * How much detail the sidecar's metrics carry (`--metrics-detail`): `basic`
 * keeps an idle pod within the series budget (README.md, "Detail levels"),
 * `full` adds the per-qtype, per-source, per-rule and per-upstream labels
 * and the fine histogram buckets.
 */
export type MetricsDetail = 'basic' | 'full';

/** Histogram buckets at the `basic` level, in seconds: a cache hit, a fast and a slow upstream, a retry, a timeout. */
export const BASIC_BUCKETS: readonly number[] = [0.0005, 0.002, 0.01, 0.05, 0.25, 1];

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
export const QTYPE_VALUES: readonly string[] = [...QTYPE_LABELS, 'other'];
const QTYPE_OTHER = QTYPE_LABELS.length;

/**
 * QTYPE number → slot in {@link QTYPE_VALUES}, up to the highest number of
 * the fixed list (ANY, 255); every number above it is `other`. 256 bytes: a
 * table of all 65,536 numbers was 64 KiB of private memory in every sidecar.
 */
const QTYPE_INDEX: Uint8Array = (() => {
  const t = new Uint8Array(Math.max(...Object.values(QTYPE_NUMBERS)) + 1).fill(QTYPE_OTHER);
  QTYPE_LABELS.forEach((name, i) => (t[QTYPE_NUMBERS[name]] = i));
  return t;
})();

/** The index in {@link QTYPE_VALUES} of a QTYPE number's label. */
export function qtypeSlot(qtype: number): number {
  const n = qtype & 0xffff;
  return n < QTYPE_INDEX.length ? QTYPE_INDEX[n]! : QTYPE_OTHER;
}

/** The `qtype` label of a QTYPE number: its name from the fixed list, else `other`. */
export function qtypeLabel(qtype: number): string {
  return QTYPE_VALUES[qtypeSlot(qtype)]!;
}

/** RCODE names 0–23 (IANA DNS parameters; 12–15 are unassigned and label as `other`). */
const RCODE_NAMES: readonly (string | undefined)[] = [
  'NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH',
  'NOTZONE', 'DSOTYPENI', undefined, undefined, undefined, undefined, 'BADVERS', 'BADKEY', 'BADTIME', 'BADMODE',
  'BADNAME', 'BADALG', 'BADTRUNC', 'BADCOOKIE',
];

/** `rcode` label values in slot order: the named codes, `other`, and `none` (a dropped query: nothing was sent). */
export const RCODE_VALUES: readonly string[] = [...RCODE_NAMES.map((n) => n ?? 'other').filter((n, i, a) => a.indexOf(n) === i), 'none'];
const RCODE_SLOT: Int8Array = (() => {
  const t = new Int8Array(RCODE_NAMES.length);
  RCODE_NAMES.forEach((n, i) => (t[i] = RCODE_VALUES.indexOf(n ?? 'other')));
  return t;
})();
const RCODE_OTHER = RCODE_VALUES.indexOf('other');
const RCODE_NONE = RCODE_VALUES.indexOf('none');

/** The index in {@link RCODE_VALUES} of a full rcode's label (-1, a drop: `none`). */
export function rcodeSlot(rcode: number): number {
  if (rcode < 0) return RCODE_NONE;
  return rcode < RCODE_SLOT.length ? RCODE_SLOT[rcode]! : RCODE_OTHER;
}

/** The `rcode` label of a full rcode: its name (NOERROR, NXDOMAIN, …), `other` when unnamed, `none` for a drop (-1). */
export function rcodeLabel(rcode: number): string {
  return RCODE_VALUES[rcodeSlot(rcode)]!;
}

/** `proto` label values in slot order (see {@link Proto}). */
export const PROTOS: readonly Proto[] = ['udp', 'tcp'];

/** The index in {@link PROTOS} of a transport. */
export function protoSlot(proto: Proto): number {
  return proto === 'udp' ? 0 : 1;
}

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
 * `help`, `type`, `get()`), so it is exported with the others. A slot
 * {@link remove}d is no longer exported and its number is handed out again
 * by {@link slot}, so label sets that come and go (rules, upstreams) keep
 * the arrays bounded.
 */
export class SlotCounter {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter' as const;
  readonly aggregator = 'sum' as const;
  readonly labelNames: readonly string[];
  /** Per slot: its labels, undefined once removed. */
  #labels: (Labels | undefined)[] = [];
  #values = new Float64Array(16);
  /** Slots exported even at 0; the others appear once counted. */
  #always: boolean[] = [];
  /** Removed slots, reused first. */
  #free: number[] = [];

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    registry.registerMetric(this as unknown as Metric);
  }

  /** A new slot for `labels` (call once per label set and keep the number). `always`: export it at 0 too. */
  slot(labels: Labels, always = true): number {
    const reused = this.#free.pop();
    if (reused !== undefined) {
      this.#labels[reused] = Object.freeze({ ...labels });
      this.#always[reused] = always;
      return reused;
    }
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

  /**
   * Removes a slot's series from the exposition and frees the slot for a
   * later {@link slot}; the caller forgets the number (adding to it
   * afterwards would count into whichever label set gets it next). Idempotent.
   */
  remove(slot: number): void {
    if (this.#labels[slot] === undefined) return;
    this.#labels[slot] = undefined;
    this.#values[slot] = 0;
    this.#always[slot] = false;
    this.#free.push(slot);
  }

  /** The value of a slot (tests). */
  value(slot: number): number {
    return this.#values[slot]!;
  }

  /** The sum of every slot: the counter without its labels. */
  total(): number {
    let sum = 0;
    for (const v of this.#values) sum += v;
    return sum;
  }

  /** Sets every slot back to 0 (prom-client's `registry.resetMetrics()`). */
  reset(): void {
    this.#values.fill(0);
  }

  /** The exposition object prom-client's registry formats. */
  get(): { name: string; help: string; type: 'counter'; aggregator: 'sum'; values: ExpositionValue[] } {
    const values: ExpositionValue[] = [];
    for (let i = 0; i < this.#labels.length; i++) {
      const labels = this.#labels[i];
      if (labels === undefined) continue;
      const v = this.#values[i]!;
      if (v !== 0 || this.#always[i]) values.push({ labels, value: v });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/**
 * A histogram with slot-resolved label sets; {@link observe} walks the
 * bounds and writes two typed arrays. Slots are removed and reused as
 * {@link SlotCounter}'s are.
 */
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
  /** Per slot: its labels, undefined once removed. */
  #labels: (Labels | undefined)[] = [];
  /** Removed slots, reused first. */
  #free: number[] = [];
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
    const reused = this.#free.pop();
    if (reused !== undefined) {
      this.#labels[reused] = Object.freeze({ ...labels });
      return reused;
    }
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

  /** Removes a slot's series (buckets, sum, count) and frees the slot, as {@link SlotCounter.remove}. Idempotent. */
  remove(slot: number): void {
    if (this.#labels[slot] === undefined) return;
    this.#labels[slot] = undefined;
    this.#counts.fill(0, slot * this.#width, (slot + 1) * this.#width);
    this.#sums[slot] = 0;
    this.#free.push(slot);
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
      const labels = this.#labels[i];
      if (labels === undefined) continue;
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

/** A counter whose value is read from `read` at each scrape (a source that keeps its own count, like the cache store). */
export function scrapeCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A gauge whose value is read from `read` at each scrape. */
export function scrapeGauge(registry: Registry, name: string, help: string, read: () => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}
