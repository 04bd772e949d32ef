/**
 * The query log: one JSON line per logged query on stdout (the operational
 * log is on stderr). Which queries are logged is `--log-queries`:
 *
 * - `none`: nothing;
 * - `denied` (default): queries whose policy decision says log (deny rules
 *   unless `log: false`, `log` rules, rules with `log: true`);
 * - `all`: every client query, one in `--log-sample-every` N, plus every
 *   decision that says log (never sampled away).
 *
 * Writing never blocks answering: lines go into a bounded buffer that is
 * written in one chunk on the next turn of the event loop (setImmediate), and
 * not again until the sink drains after it reported back-pressure. When the
 * buffer is full, lines are dropped and counted.
 */
import type { Outcome, QueryContext } from '../pipeline/stage.ts';
import { rcodeLabel } from './registry.ts';

/** Which queries are logged. */
export type LogQueries = 'all' | 'denied' | 'none';

/** Where lines go: a Writable (process.stdout) or a test double. */
export interface LineSink {
  /** Writes a chunk; false when the caller should wait for `drain`. */
  write(chunk: string): boolean;
  /** Registers a one-time `drain` listener. */
  once(event: 'drain', listener: () => void): unknown;
}

/** One query log line, as written. */
export interface QueryLogLine {
  /** ISO 8601 time the answer was ready. */
  readonly time: string;
  readonly tenant: string;
  readonly pod: string;
  readonly namespace: string;
  /** The query name as the sidecar reads it (lower case, no trailing dot). */
  readonly qname: string;
  /** The query type's mnemonic (A, AAAA, …), `TYPEn` when unnamed (RFC 3597). */
  readonly qtype: string;
  /** udp or tcp. */
  readonly proto: string;
  /** The policy decision: allow, deny or log; `none` when the policy stage is off. */
  readonly action: string;
  /** The deciding rule (`default`, `platform:NAME`), empty when the policy stage is off. */
  readonly rule: string;
  /** Who answered: policy, cache, upstream, local. */
  readonly source: string;
  /** The outcome's reason: rule, zone, upstream group, error code. */
  readonly reason: string;
  /** The answer's rcode name; `none` when nothing was sent (drop). */
  readonly rcode: string;
  /** The upstream that answered, empty when none did. */
  readonly upstream: string;
  /** Milliseconds from receiving the query to having its answer. */
  readonly duration_ms: number;
}

/** Options of {@link QueryLog}. */
export interface QueryLogOptions {
  readonly mode: LogQueries;
  /** Mode `all`: log one query in N (1, the default: every query). */
  readonly sampleEvery?: number;
  readonly tenant: string;
  readonly pod?: string;
  readonly namespace?: string;
  /** Default: process.stdout. */
  readonly sink?: LineSink;
  /** Most characters of lines waiting to be written (default 1 Mi, about 1 MiB of ASCII JSON); past it lines are dropped. */
  readonly maxBufferBytes?: number;
  /** Called with the number of lines dropped (for `tenant_dns_query_log_dropped_total`). */
  readonly onDrop?: (n: number) => void;
  /** Clock for `time`, ms since the epoch (default Date.now). */
  readonly now?: () => number;
}

const QTYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 13: 'HINFO', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 35: 'NAPTR',
  39: 'DNAME', 41: 'OPT', 43: 'DS', 46: 'RRSIG', 47: 'NSEC', 48: 'DNSKEY', 50: 'NSEC3', 52: 'TLSA', 64: 'SVCB', 65: 'HTTPS',
  251: 'IXFR', 252: 'AXFR', 255: 'ANY', 257: 'CAA',
};

/** A QTYPE's mnemonic, or `TYPEn` (RFC 3597 §5). */
export function qtypeName(qtype: number): string {
  return QTYPE_NAMES[qtype] ?? `TYPE${qtype}`;
}

/** The bounded, non-blocking query log. */
export class QueryLog {
  readonly mode: LogQueries;
  readonly #sampleEvery: number;
  readonly #tenant: string;
  readonly #pod: string;
  readonly #namespace: string;
  /** The sink; undefined until the first write when it is process.stdout (its stream is made on first use). */
  #sink: LineSink | undefined;
  readonly #maxBytes: number;
  readonly #onDrop: ((n: number) => void) | undefined;
  readonly #now: () => number;
  #seen = 0;
  #lines: string[] = [];
  #bytes = 0;
  #scheduled = false;
  #waitingDrain = false;
  #dropped = 0;
  #written = 0;

  constructor(options: QueryLogOptions) {
    this.mode = options.mode;
    this.#sampleEvery = Math.max(1, Math.floor(options.sampleEvery ?? 1));
    this.#tenant = options.tenant;
    this.#pod = options.pod ?? '';
    this.#namespace = options.namespace ?? '';
    this.#sink = options.sink;
    this.#maxBytes = options.maxBufferBytes ?? 1 << 20;
    this.#onDrop = options.onDrop;
    this.#now = options.now ?? Date.now;
  }

  /** Lines dropped so far because the buffer was full. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Lines handed to the sink so far. */
  get written(): number {
    return this.#written;
  }

  /** Lines waiting in the buffer. */
  get pending(): number {
    return this.#lines.length;
  }

  /**
   * Logs the query when the mode says so. Called by the metrics stage for
   * every client query after its answer; cheap when the query is not logged.
   */
  observe(ctx: QueryContext, outcome: Outcome, seconds: number): void {
    if (this.mode === 'none') return;
    const d = ctx.decision;
    if (d === undefined || !d.log) {
      if (this.mode !== 'all' || ++this.#seen % this.#sampleEvery !== 0) return;
    }
    const q = ctx.query;
    const line: QueryLogLine = {
      time: new Date(this.#now()).toISOString(),
      tenant: this.#tenant,
      pod: this.#pod,
      namespace: this.#namespace,
      qname: q.qname,
      qtype: qtypeName(q.qtype),
      proto: ctx.proto,
      action: d?.action ?? 'none',
      rule: d?.rule ?? '',
      source: outcome.source,
      reason: outcome.reason,
      rcode: rcodeLabel(outcome.rcode),
      upstream: outcome.upstream ?? '',
      duration_ms: Math.round(seconds * 1e6) / 1e3,
    };
    this.push(JSON.stringify(line) + '\n');
  }

  /** Queues one complete line (ending in a newline); drops and counts it when the buffer is full. */
  push(line: string): void {
    if (this.#bytes + line.length > this.#maxBytes) {
      this.#dropped++;
      this.#onDrop?.(1);
      return;
    }
    this.#lines.push(line);
    this.#bytes += line.length;
    if (!this.#scheduled && !this.#waitingDrain) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  #flush(): void {
    this.#scheduled = false;
    if (this.#waitingDrain || this.#lines.length === 0) return;
    const chunk = this.#lines.length === 1 ? this.#lines[0]! : this.#lines.join('');
    this.#written += this.#lines.length;
    this.#lines = [];
    this.#bytes = 0;
    const sink = (this.#sink ??= process.stdout);
    if (!sink.write(chunk)) {
      this.#waitingDrain = true;
      sink.once('drain', () => {
        this.#waitingDrain = false;
        if (this.#lines.length > 0 && !this.#scheduled) {
          this.#scheduled = true;
          setImmediate(() => this.#flush());
        }
      });
    }
  }

  /** Writes what is buffered now, unless the sink is waiting to drain (shutdown). */
  flushNow(): void {
    this.#flush();
  }
}
