/**
 * Telemetry for one sidecar, assembled: the metrics (registry.ts), the query
 * log (querylog.ts), the `metrics` stage (stage.ts), the upstream hooks, and
 * the metrics and admin HTTP servers (http.ts). The server wiring creates it
 * first (so the upstream groups get its hooks), then {@link Telemetry.start}s
 * it once the policy, the cache and the groups exist, and closes it last.
 */
import Registry from 'prom-client/lib/registry.js'; // not the index: see metrics/registry.ts
import type { HostPort } from '../listener/address.ts';
import { parseHostPort } from '../listener/address.ts';
import type { Logger } from '../log.ts';
import { checkAdminAddress, readiness, startAdminServer, startMetricsServer, type HttpEndpoint, type ReadinessGroup } from './http.ts';
import { QueryLog, type LineSink, type LogQueries } from './querylog.ts';
import { SidecarMetrics, type CacheStatsSource } from './registry.ts';
import { createMetricsStage, type MetricsStage } from './stage.ts';

/** Options of {@link Telemetry}: the telemetry fields of the sidecar config, and test seams. */
export interface TelemetryOptions {
  readonly tenant: string;
  readonly pod?: string;
  readonly namespace?: string;
  /** The package version (build_info). */
  readonly version: string;
  /** `--metrics` ADDR:PORT. */
  readonly metrics: string;
  /** `--admin` ADDR:PORT. */
  readonly admin: string;
  /** `--admin-allow-non-loopback`. */
  readonly adminAllowNonLoopback?: boolean;
  /** `--log-queries`. */
  readonly logQueries: LogQueries;
  /** `--log-sample-every`. */
  readonly logSampleEvery?: number;
  readonly log: Logger;
  /** Default: a new Registry. */
  readonly registry?: Registry;
  /** Default: process.stdout. */
  readonly queryLogSink?: LineSink;
  /** Collect prom-client's process metrics (default true). */
  readonly processMetrics?: boolean;
}

/** The policy manager as telemetry sees it. */
export interface TelemetryPolicy {
  readonly current: { readonly tenant: unknown; readonly platform: unknown; readonly podLabels: unknown };
  readonly lastGoodAt: number;
  onReload(cb: (result: 'success' | 'failure') => void): () => void;
}

/** What {@link Telemetry.start} reads from the running sidecar. */
export interface TelemetryTargets {
  readonly policy: TelemetryPolicy;
  /** The cache stage (its store's stats and flush). */
  readonly cache: { readonly store: { stats(): CacheStatsSource; flush(): number } };
  /** The upstream groups by name, as they are now. */
  readonly groups: () => ReadonlyMap<string, ReadinessGroup>;
  /** The effective platform config (redacted before it is served). */
  readonly config: unknown;
}

/** The upstream hooks (the shape of UpstreamObserver plus fromUrl's onConnection). */
export interface TelemetryObserver {
  onAttempt(upstream: string, rcode: number | null, errorCode: string | null, seconds: number): void;
  onConnection(upstream: string, delta: number): void;
}

type Action = 'allow' | 'deny' | 'log';

/**
 * The (action, rule) pairs a policy can decide, as the policy stage names
 * them: tenant rules by name, platform rules as `platform:NAME`, the
 * defaults as `default` and `platform:default`. Reads the documents
 * defensively (they were validated when loaded).
 */
export function policyRules(current: TelemetryPolicy['current']): { action: Action; rule: string }[] {
  const out: { action: Action; rule: string }[] = [];
  const read = (doc: unknown, prefix: string, platform: boolean) => {
    const spec = (doc as { spec?: { rules?: unknown; defaultAction?: unknown } } | undefined)?.spec;
    if (!spec) return;
    const isAction = (a: unknown): a is Action => a === 'allow' || a === 'deny' || a === 'log';
    if (Array.isArray(spec.rules)) {
      for (const r of spec.rules as { name?: unknown; action?: unknown }[]) {
        if (typeof r?.name === 'string' && isAction(r.action)) out.push({ action: r.action, rule: prefix + r.name });
      }
    }
    if (isAction(spec.defaultAction) && (!platform || spec.defaultAction === 'deny')) out.push({ action: spec.defaultAction, rule: prefix + 'default' });
  };
  read(current.tenant, '', false);
  read(current.platform, 'platform:', true);
  return out;
}

/** One sidecar's telemetry. */
export class Telemetry {
  readonly registry: Registry;
  readonly metrics: SidecarMetrics;
  readonly queryLog: QueryLog;
  /** The `metrics` pipeline stage, and the observer of the listener's own outcomes. */
  readonly stage: MetricsStage;
  /** The hooks for every upstream group and every `fromUrl`. */
  readonly observer: TelemetryObserver;
  readonly #options: TelemetryOptions;
  #servers: HttpEndpoint[] = [];
  #unsubscribe: (() => void) | undefined;
  #metricsAddress: HostPort | undefined;
  #adminAddress: HostPort | undefined;

  /**
   * Declares the metrics and checks both addresses (so a bad `--admin` fails
   * before any socket is bound).
   *
   * @throws SidecarError CONFIG_INVALID for a malformed address or a non-loopback admin address not allowed.
   */
  constructor(options: TelemetryOptions) {
    this.#options = options;
    parseHostPort(options.metrics, '--metrics');
    checkAdminAddress(options.admin, options.adminAllowNonLoopback ?? false);
    this.registry = options.registry ?? new Registry();
    this.metrics = new SidecarMetrics(this.registry, { tenant: options.tenant, version: options.version, processMetrics: options.processMetrics });
    this.queryLog = new QueryLog({
      mode: options.logQueries,
      sampleEvery: options.logSampleEvery,
      tenant: options.tenant,
      pod: options.pod,
      namespace: options.namespace,
      sink: options.queryLogSink,
      onDrop: (n) => this.metrics.logDropped(n),
    });
    this.stage = createMetricsStage(this.metrics, this.queryLog);
    this.observer = this.metrics.upstreamObserver();
  }

  /** The metrics server's address once started. */
  get metricsAddress(): HostPort | undefined {
    return this.#metricsAddress;
  }

  /** The admin server's address once started. */
  get adminAddress(): HostPort | undefined {
    return this.#adminAddress;
  }

  /**
   * Binds the metrics sources and starts both servers.
   *
   * @throws SidecarError LISTEN_FAILED when a server cannot bind (whatever was started is closed).
   */
  async start(targets: TelemetryTargets): Promise<void> {
    const { policy, cache, groups } = targets;
    this.metrics.bindSources({
      cacheStats: () => cache.store.stats(),
      groups,
      lastReloadSuccess: () => policy.lastGoodAt,
    });
    const declare = () => {
      this.metrics.declareRules(policyRules(policy.current));
      this.metrics.declareUpstreams([...groups().values()].flatMap((g) => g.members().map((m) => m.address)));
    };
    declare();
    // Registered after the server's own listener, which rebuilds the forward-zone groups first.
    this.#unsubscribe = policy.onReload((result) => {
      this.metrics.policyReload(result);
      if (result === 'success') declare();
    });
    const ready = () => readiness(true, groups());
    const o = this.#options;
    try {
      const m = await startMetricsServer({ address: o.metrics, registry: this.registry, probes: { ready }, log: o.log });
      this.#servers.push(m);
      this.#metricsAddress = m.address;
      const a = await startAdminServer({
        address: o.admin,
        allowNonLoopback: o.adminAllowNonLoopback,
        log: o.log,
        source: {
          ready,
          config: () => ({
            platform: targets.config,
            policy: { tenant: policy.current.tenant, platform: policy.current.platform, podLabels: policy.current.podLabels },
            policyLoadedAt: new Date(policy.lastGoodAt).toISOString(),
          }),
          cacheStats: () => cache.store.stats(),
          flushCache: () => {
            const n = cache.store.flush();
            this.metrics.cacheFlushed(n);
            return n;
          },
        },
      });
      this.#servers.push(a);
      this.#adminAddress = a.address;
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** Writes the buffered query log lines and closes both servers. Idempotent. */
  async close(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.queryLog.flushNow();
    await Promise.all(this.#servers.splice(0).map((s) => s.close()));
  }
}
