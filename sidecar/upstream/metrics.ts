/**
 * The upstreams' metrics: each exchange with an upstream (its duration by
 * reply rcode, or its failure by error code), the connections open to each,
 * and each group member's health. Groups and transports report through the
 * hooks of {@link UpstreamMetrics.observer}; health and connections are read
 * at scrape time. The `upstream` label is an upstream's address (scheme,
 * host and port: redact.ts), bounded by the configured upstreams: those of
 * the groups serving now ({@link UpstreamMetrics.declareUpstreams}, at start
 * and after each good reload), whose forward zones the policy caps
 * (POLICY_CAPS). The series of an upstream a reload removed are removed.
 */
import type { Registry } from 'prom-client';
import { BASIC_BUCKETS, Gauge, RCODE_VALUES, SlotCounter, SlotHistogram, rcodeSlot, type MetricsDetail } from '../metrics/registry.ts';

/** Buckets of the upstream exchange histogram, in seconds (an upstream round trip starts near 1 ms). */
export const UPSTREAM_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5];

/** The error codes whose failure series an upstream has from its start: timeout and connect; TLS for tls:// and https://, HTTP for https://. */
function usualFailures(upstream: string): string[] {
  const codes = ['UPSTREAM_TIMEOUT', 'UPSTREAM_CONNECT'];
  if (/^(tls|https):/.test(upstream)) codes.push('UPSTREAM_TLS');
  if (upstream.startsWith('https:')) codes.push('UPSTREAM_HTTP');
  return codes;
}

/** The part of an upstream group the health gauge reads. */
export interface HealthSource {
  members(): readonly { readonly address: string; readonly healthy: boolean }[];
  /** Why the group's upstreams cannot be used (a forward zone's stand-in group); undefined for a working group. */
  readonly unusable?: string;
}

/** The hooks {@link UpstreamMetrics.observer} returns: the shape of UpstreamObserver plus fromUrl's `onConnection`. */
export interface UpstreamMetricsObserver {
  onAttempt(upstream: string, rcode: number | null, errorCode: string | null, seconds: number): void;
  onConnection(upstream: string, delta: number): void;
  onDroppedReply(upstream: string): void;
}

/** The upstreams' metrics, declared in `registry`. */
export class UpstreamMetrics {
  readonly duration: SlotHistogram;
  readonly failures: SlotCounter;
  readonly dropped: SlotCounter;

  /** upstream → slot per rcode label (-1: not created yet). */
  readonly #durationSlots = new Map<string, Int32Array>();
  /** upstream → error code → slot. */
  readonly #failureSlots = new Map<string, Map<string, number>>();
  /** udp upstream → slot of its dropped-replies series. */
  readonly #droppedSlots = new Map<string, number>();
  /** upstream → connections open now (entries at 0 kept while the upstream is declared). */
  readonly #connections = new Map<string, number>();
  /**
   * The upstreams serving now and the `tcp://` twins of the `udp://` ones
   * (a TC fallback is counted under the TCP address); undefined until
   * {@link declareUpstreams}: until then every upstream gets series on first use.
   */
  #declared: ReadonlySet<string> | undefined;
  #groups: (() => ReadonlyMap<string, HealthSource>) | undefined;
  /** `basic`: exchanges and failures without the `upstream` (and duration without the `rcode`) label. */
  readonly #basic: boolean;
  /** At the `basic` level: the one duration slot. */
  readonly #basicDuration: number = -1;
  /** At the `basic` level: failure slots by error code. */
  readonly #basicFailures = new Map<string, number>();

  /** `detail`: `full` (default) labels exchanges by upstream and rcode, failures by upstream and code; `basic` failures by code only. */
  constructor(registry: Registry, detail: MetricsDetail = 'full') {
    this.#basic = detail === 'basic';
    if (this.#basic) {
      this.duration = new SlotHistogram(registry, 'tenant_dns_upstream_request_duration_seconds', 'Seconds one exchange with an upstream took (by upstream address and reply rcode with --metrics-detail full; failed exchanges are in upstream_failures_total).', [], BASIC_BUCKETS);
      this.#basicDuration = this.duration.slot({});
      this.failures = new SlotCounter(registry, 'tenant_dns_upstream_failures_total', 'Exchanges with an upstream that failed without a reply, by error code (UPSTREAM_TIMEOUT, UPSTREAM_CONNECT, …; by upstream address too with --metrics-detail full).', ['code']);
    } else {
      this.duration = new SlotHistogram(registry, 'tenant_dns_upstream_request_duration_seconds', 'Seconds one exchange with one upstream took, by upstream address and the reply rcode (failed exchanges are in upstream_failures_total).', ['upstream', 'rcode'], UPSTREAM_BUCKETS);
      this.failures = new SlotCounter(registry, 'tenant_dns_upstream_failures_total', 'Exchanges with an upstream that failed without a reply, by upstream address and error code (UPSTREAM_TIMEOUT, UPSTREAM_CONNECT, …).', ['upstream', 'code']);
    }
    // Both levels: one series per udp:// upstream (a handful), the spoofing signal.
    this.dropped = new SlotCounter(registry, 'tenant_dns_upstream_replies_dropped_total', 'Datagrams received on a UDP upstream\'s sockets that matched no query in flight (wrong source, ID or question; also replies arriving after their query timed out), by upstream address: spoofing attempts show here.', ['upstream']);
    const self = this;
    new Gauge({
      name: 'tenant_dns_upstream_connections',
      help: 'Connections open to an upstream (tcp, tls, https), by upstream address.',
      labelNames: ['upstream'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [upstream, n] of self.#connections) this.set({ upstream }, n);
      },
    });
    new Gauge({
      name: 'tenant_dns_upstream_healthy',
      help: 'Whether an upstream is up (1) or marked down after consecutive failures (0), by group and upstream address.',
      labelNames: ['group', 'upstream'],
      registers: [registry],
      collect() {
        this.reset();
        const groups = self.#groups?.();
        if (!groups) return;
        for (const [group, g] of groups) for (const m of g.members()) this.set({ group, upstream: m.address }, m.healthy ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tenant_dns_upstream_groups_unusable',
      help: 'Forward zones whose upstreams cannot be used (a tls:// host without a bootstrap address, a group mixing encrypted and plain upstreams): their names are answered SERVFAIL until the policy or the config is fixed.',
      registers: [registry],
      collect() {
        let n = 0;
        for (const g of self.#groups?.().values() ?? []) if (g.unusable !== undefined) n++;
        this.set(n);
      },
    });
  }

  /** Sets where the health gauges read the upstream groups, by name, as they are at each scrape. */
  bindGroups(groups: () => ReadonlyMap<string, HealthSource>): void {
    this.#groups = groups;
  }

  /**
   * Records one upstream exchange (see UpstreamObserver.onAttempt): a
   * reply's rcode, or an error code. An exchange of an upstream no longer
   * declared (a retired group finishing its queries after the reload that
   * removed it) is not recorded: its series went with the reload.
   */
  attempt(upstream: string, rcode: number | null, code: string | null, seconds: number): void {
    if (this.#basic) {
      if (rcode !== null) this.duration.observe(this.#basicDuration, seconds);
      else this.failures.add(this.#basicFailureSlot(code ?? 'INTERNAL'));
      return;
    }
    if (rcode === null) {
      const c = code ?? 'INTERNAL';
      let slot = this.#failureSlots.get(upstream)?.get(c);
      if (slot === undefined) {
        if (!this.#isDeclared(upstream)) return;
        this.#failuresOf(upstream).set(c, (slot = this.failures.slot({ upstream, code: c })));
      }
      this.failures.add(slot);
      return;
    }
    const slot = this.#durationSlot(upstream, rcodeSlot(rcode));
    if (slot >= 0) this.duration.observe(slot, seconds);
  }

  /**
   * Connections to `upstream` opened (+1) or closed (-1). Counted for an
   * upstream no longer declared too, while it has connections open: they
   * are real until its retired group closes them.
   */
  connection(upstream: string, delta: number): void {
    const n = (this.#connections.get(upstream) ?? 0) + delta;
    if (n === 0 && !this.#isDeclared(upstream)) this.#connections.delete(upstream);
    else this.#connections.set(upstream, n);
  }

  /** A datagram a UDP upstream dropped (it matched no query in flight); not counted for an upstream no longer declared. */
  droppedReply(upstream: string): void {
    let slot = this.#droppedSlots.get(upstream);
    if (slot === undefined) {
      if (!this.#isDeclared(upstream)) return;
      this.#droppedSlots.set(upstream, (slot = this.dropped.slot({ upstream })));
    }
    this.dropped.add(slot);
  }

  /** The hooks to pass to every upstream group (`createGroup(..., { observer })`) and `fromUrl` (`onConnection`). */
  observer(): UpstreamMetricsObserver {
    return {
      onAttempt: (u, rcode, code, seconds) => this.attempt(u, rcode, code, seconds),
      onConnection: (u, delta) => this.connection(u, delta),
      onDroppedReply: (u) => this.droppedReply(u),
    };
  }

  /**
   * Makes the upstream series those of `addresses`, the upstreams of the
   * groups serving now: each gets its series at 0, failures for the usual
   * error codes (timeout and connect; TLS for tls:// and https://, HTTP for
   * https://) and the duration of NOERROR and NXDOMAIN replies, so that the
   * first events of an upstream show in rate() and increase(); the series of
   * every other upstream are removed (its connections once they are closed).
   */
  declareUpstreams(addresses: Iterable<string>): void {
    const list = [...addresses];
    const declared = new Set(list);
    for (const a of list) if (a.startsWith('udp://')) declared.add(`tcp://${a.slice('udp://'.length)}`);
    this.#declared = declared;
    for (const upstream of new Set([...this.#failureSlots.keys(), ...this.#durationSlots.keys(), ...this.#droppedSlots.keys()])) if (!declared.has(upstream)) this.#forget(upstream);
    for (const [upstream, n] of this.#connections) if (n === 0 && !declared.has(upstream)) this.#connections.delete(upstream);
    for (const upstream of list) if (upstream.startsWith('udp://') && !this.#droppedSlots.has(upstream)) this.#droppedSlots.set(upstream, this.dropped.slot({ upstream }));
    if (this.#basic) {
      // Series by code only: those of every upstream's usual codes, kept across reloads (a counter never goes back).
      for (const upstream of list) for (const code of usualFailures(upstream)) this.#basicFailureSlot(code);
      return;
    }
    for (const upstream of list) {
      const byCode = this.#failuresOf(upstream);
      for (const code of usualFailures(upstream)) if (!byCode.has(code)) byCode.set(code, this.failures.slot({ upstream, code }));
      for (const rcode of ['NOERROR', 'NXDOMAIN']) this.#durationSlot(upstream, RCODE_VALUES.indexOf(rcode));
    }
  }

  /** The failure slot of `code` at the `basic` level, created on first use. */
  #basicFailureSlot(code: string): number {
    let slot = this.#basicFailures.get(code);
    if (slot === undefined) this.#basicFailures.set(code, (slot = this.failures.slot({ code })));
    return slot;
  }

  /** Removes every failure and duration series of `upstream`. */
  #forget(upstream: string): void {
    for (const slot of this.#failureSlots.get(upstream)?.values() ?? []) this.failures.remove(slot);
    this.#failureSlots.delete(upstream);
    for (const slot of this.#durationSlots.get(upstream) ?? []) if (slot >= 0) this.duration.remove(slot);
    this.#durationSlots.delete(upstream);
    const dropped = this.#droppedSlots.get(upstream);
    if (dropped !== undefined) this.dropped.remove(dropped);
    this.#droppedSlots.delete(upstream);
  }

  /** The failure slots of `upstream` by error code. */
  #failuresOf(upstream: string): Map<string, number> {
    let byCode = this.#failureSlots.get(upstream);
    if (byCode === undefined) this.#failureSlots.set(upstream, (byCode = new Map()));
    return byCode;
  }

  /** Whether `upstream` may have series: declared now, or nothing declared yet. */
  #isDeclared(upstream: string): boolean {
    return this.#declared === undefined || this.#declared.has(upstream);
  }

  /** The duration slot of `upstream` for the rcode label at index `r` of RCODE_VALUES, created on first use; -1 for an upstream not declared. */
  #durationSlot(upstream: string, r: number): number {
    let slots = this.#durationSlots.get(upstream);
    if (slots === undefined) {
      if (!this.#isDeclared(upstream)) return -1;
      this.#durationSlots.set(upstream, (slots = new Int32Array(RCODE_VALUES.length).fill(-1)));
    }
    let slot = slots[r]!;
    if (slot < 0) slot = slots[r] = this.duration.slot({ upstream, rcode: RCODE_VALUES[r]! });
    return slot;
  }
}
