/**
 * Telemetry for one sidecar, assembled: the metrics each folder declares
 * (this folder's `metrics.ts`, `listener/`, `policy/`, `cache/`, `upstream/`),
 * the query log (querylog.ts), the `metrics` stage (stage.ts), the upstream
 * hooks, and the metrics and admin HTTP servers (http.ts). The server wiring
 * creates it first (so the upstream groups get its hooks), then
 * {@link Telemetry.start}s it once the policy, the cache and the groups
 * exist, and closes it last.
 */
import Registry from 'prom-client/lib/registry.js'; // not the index: see metrics/registry.ts
import { AutopathMetrics } from '../autopath/metrics.ts';
import { CacheMetrics } from '../cache/metrics.ts';
import type { CacheStats } from '../cache/store.ts';
import type { HostPort } from '../listener/address.ts';
import { parseHostPort } from '../listener/address.ts';
import { ListenerMetrics } from '../listener/metrics.ts';
import { PipelineMetrics } from '../pipeline/metrics.ts';
import type { Logger } from '../log.ts';
import type { RuleId } from '../policy/compile.ts';
import { PolicyMetrics } from '../policy/metrics.ts';
import { UpstreamMetrics, type UpstreamMetricsObserver } from '../upstream/metrics.ts';
import { checkAdminAddress, readiness, startAdminServer, startMetricsServer, type HttpEndpoint, type ReadinessGroup } from './http.ts';
import { QueryMetrics } from './metrics.ts';
import type { MetricsDetail } from './registry.ts';
import { QueryLog, type LineSink, type LogQueries } from './querylog.ts';
import { createMetricsStage, type MetricsStage } from './stage.ts';
import { nextTurn } from '../runtime/turn.ts';

/** Options of {@link SidecarMetrics}. */
export interface SidecarMetricsOptions {
  /** The tenant: the `tenant` label of every series (a registry default label). */
  readonly tenant: string;
  /** The package version, for build_info. */
  readonly version: string;
  /** Also collect prom-client's default process and Node.js metrics (default true). */
  readonly processMetrics?: boolean;
  /** `--metrics-detail` (default `full`; the sidecar's flag defaults to `basic`). */
  readonly detail?: MetricsDetail;
}

/**
 * All tenant-dns metrics of one sidecar: each folder's metrics module,
 * declared in `registry` with the default label `tenant`.
 */
export class SidecarMetrics {
  readonly registry: Registry;
  /** The metrics stage's per-query metrics, the query log's drops, build_info, process metrics. */
  readonly query: QueryMetrics;
  readonly listener: ListenerMetrics;
  /** The errors that ended client queries (pipeline/failures.ts). */
  readonly pipeline: PipelineMetrics;
  readonly policy: PolicyMetrics;
  readonly cache: CacheMetrics;
  readonly upstream: UpstreamMetrics;
  /** The autopath stage's answers and the client queries they saved. */
  readonly autopath: AutopathMetrics;

  constructor(registry: Registry, options: SidecarMetricsOptions) {
    this.registry = registry;
    registry.setDefaultLabels({ tenant: options.tenant });
    const detail = options.detail ?? 'full';
    this.query = new QueryMetrics(registry, { version: options.version, processMetrics: options.processMetrics, detail });
    this.listener = new ListenerMetrics(registry);
    this.pipeline = new PipelineMetrics(registry);
    this.policy = new PolicyMetrics(registry, detail);
    this.cache = new CacheMetrics(registry);
    this.upstream = new UpstreamMetrics(registry, detail);
    this.autopath = new AutopathMetrics(registry);
  }
}

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
  /** `--metrics-detail` (default `full`). */
  readonly metricsDetail?: MetricsDetail;
}

/** The policy manager as telemetry sees it. */
export interface TelemetryPolicy {
  readonly current: { readonly tenant: unknown; readonly platform: unknown; readonly podLabels: unknown; readonly ruleIds: readonly RuleId[] };
  readonly lastGoodAt: number;
  onReload(cb: (result: 'success' | 'failure') => void): () => void;
}

/** What {@link Telemetry.start} reads from the running sidecar. */
export interface TelemetryTargets {
  readonly policy: TelemetryPolicy;
  /** The cache stage (its store's stats and flush). */
  readonly cache: { readonly store: { stats(): CacheStats; flush(): number } };
  /** The upstream groups by name, as they are now. */
  readonly groups: () => ReadonlyMap<string, ReadinessGroup>;
  /** The effective platform config (redacted before it is served). */
  readonly config: unknown;
}

/** One sidecar's telemetry. */
export class Telemetry {
  readonly registry: Registry;
  readonly metrics: SidecarMetrics;
  readonly queryLog: QueryLog;
  /** The `metrics` pipeline stage, and the observer of the listener's own outcomes. */
  readonly stage: MetricsStage;
  /** The hooks for every upstream group and every `fromUrl`. */
  readonly observer: UpstreamMetricsObserver;
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
    this.metrics = new SidecarMetrics(this.registry, { tenant: options.tenant, version: options.version, processMetrics: options.processMetrics, detail: options.metricsDetail });
    this.queryLog = new QueryLog({
      mode: options.logQueries,
      sampleEvery: options.logSampleEvery,
      tenant: options.tenant,
      pod: options.pod,
      namespace: options.namespace,
      sink: options.queryLogSink,
      onDrop: (n) => this.metrics.query.logDropped(n),
    });
    this.stage = createMetricsStage(this.metrics, this.queryLog);
    this.observer = this.metrics.upstream.observer();
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
    const metrics = this.metrics;
    await metrics.query.ready; // every series exists before the first scrape
    metrics.cache.bindStats(() => cache.store.stats());
    metrics.upstream.bindGroups(groups);
    metrics.policy.bindLastReloadSuccess(() => policy.lastGoodAt);
    // The series of the rules and upstreams serving now: new ones at 0, those a reload removed gone.
    const declare = () => {
      metrics.policy.declareRules(policy.current.ruleIds);
      metrics.upstream.declareUpstreams([...groups().values()].flatMap((g) => g.members().map((member) => member.address)));
    };
    declare();
    // Registered after the server's own listener, which rebuilds the forward-zone groups first.
    this.#unsubscribe = policy.onReload((result) => {
      metrics.policy.reload(result);
      if (result === 'success') declare();
    });
    const ready = () => readiness(true, groups());
    const o = this.#options;
    try {
      const m = await startMetricsServer({ address: o.metrics, registry: this.registry, probes: { ready }, log: o.log });
      this.#servers.push(m);
      this.#metricsAddress = m.address;
      await nextTurn();
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
            metrics.cache.flushed(n);
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
