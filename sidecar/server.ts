/**
 * Wiring only: config → stages → composer → listeners → shutdown. No DNS
 * logic lives here: routing is route/, groups are upstream/groups.ts,
 * failures are pipeline/failures.ts, binding is listener/bind.ts.
 */
import { autopathSearch } from './autopath/search.ts';
import { createAutopathStage } from './autopath/stage.ts';
import { CacheStage } from './cache/stage.ts';
import { clusterZones } from './config/cluster.ts';
import type { SidecarConfig } from './config/schema.ts';
import { LOOP_TAG_LENGTH } from './dns/wire.ts';
import { formatHostPort, parseHostPort, type HostPort } from './listener/address.ts';
import { bindListeners, type Listeners } from './listener/bind.ts';
import { InflightGate, type HandlerDeps } from './listener/handle.ts';
import type { Logger } from './log.ts';
import type { LineSink } from './metrics/querylog.ts';
import { Telemetry } from './metrics/telemetry.ts';
import { chain, compose } from './pipeline/compose.ts';
import { failurePath } from './pipeline/failures.ts';
import { PolicyManager, type ReloadResult } from './policy/manager.ts';
import { createSplitStage, innerResolver } from './policy/split.ts';
import { createFamiliesStage } from './policy/families.ts';
import { createPolicyStage } from './policy/stage.ts';
import { Router } from './route/classify.ts';
import { readFileSync } from './runtime/builtins.ts';
import { randomBytes } from './runtime/random.ts';
import { showUrl } from './redact.ts';
import { describeError } from './errors.ts';
import { codeCacheStatus, saveCodeCache } from './runtime/code-cache.ts';
import { compactHeapAfterStartup, compactHeapWhenIdle } from './runtime/heap.ts';
import { usePerformanceClock } from './runtime/clock.ts';
import { nextTurn } from './runtime/turn.ts';
import { checkLoops, defaultUpstreams, groupFactory } from './upstream/from-config.ts';
import type { UpstreamGroup } from './upstream/group.ts';
import { UpstreamGroups } from './upstream/groups.ts';
import { forwardStage } from './upstream/stage.ts';

/** What {@link startSidecar} takes besides the config. */
export interface StartOptions {
  /** Operational log. */
  readonly log: Logger;
  /** The package version. */
  readonly version: string;
  /** Clock in ms for the cache and the failure log's interval (tests inject one); default Date.now. */
  readonly clock?: () => number;
  /** Where query log lines go; default process.stdout. */
  readonly queryLogSink?: LineSink;
}

/** A running sidecar. */
export interface Sidecar {
  /** The operational log. */
  readonly log: Logger;
  /** The addresses served, with the ports actually bound (UDP and TCP share them). */
  readonly addresses: readonly HostPort[];
  /** The effective configuration. */
  readonly config: SidecarConfig;
  /** The policy manager (current policy, reload hooks). */
  readonly policy: PolicyManager;
  /** The cache stage (store stats, flush). */
  readonly cache: CacheStage;
  /** Metrics, query log, and the metrics and admin servers (their bound addresses). */
  readonly telemetry: Telemetry;
  /** Upstream groups by name: default, cluster (when configured), and one per forward zone. */
  groups(): ReadonlyMap<string, UpstreamGroup>;
  /** Reloads the policy files now (SIGHUP). */
  reloadPolicy(): Promise<ReloadResult>;
  /**
   * Stops accepting queries, waits up to `drainMs` for those in flight to be
   * answered, then closes every socket. Idempotent.
   */
  shutdown(drainMs: number): Promise<void>;
}

/** Builds and starts the sidecar. Throws SidecarError on bad config or a failed bind (nothing is left open). */
export async function startSidecar(config: SidecarConfig, options: StartOptions): Promise<Sidecar> {
  const { log } = options;
  const listen = config.listen.map((l) => parseHostPort(l, '--listen'));
  const defaultUrls = defaultUpstreams(config);
  checkLoops(listen, config, defaultUrls);
  // Checks --metrics and --admin before anything is bound.
  const telemetry = new Telemetry({
    tenant: config.tenant,
    pod: config.pod,
    namespace: config.namespace,
    version: options.version,
    metrics: config.metrics,
    admin: config.admin,
    adminAllowNonLoopback: config.adminAllowNonLoopback,
    logQueries: config.logQueries,
    logSampleEvery: config.logSampleEvery,
    metricsDetail: config.metricsDetail,
    log,
    queryLogSink: options.queryLogSink,
  });
  const zones = clusterZones(config.clusterDomain, config.clusterReverseZones);
  const policy = new PolicyManager({ policy: config.policy, policyOptional: config.policyOptional, platformPolicy: config.platformPolicy, podLabels: config.podLabels, namespace: config.namespace, clusterZones: zones, log, watch: false });
  let groups: UpstreamGroups;
  try {
    groups = new UpstreamGroups({ create: groupFactory(config, log, telemetry.observer), defaultUrls, clusterDns: config.clusterDns, log });
  } catch (err) {
    policy.close();
    throw err;
  }
  groups.follow(policy);

  const cache = new CacheStage({
    config: config.cache,
    clock: options.clock,
    staleMaxAgeSec: config.cache.staleMaxAge,
    staleMaxPerSecond: config.cache.staleMaxPerSecond,
    staleAnswerTimeoutMs: config.cache.staleAnswerTimeoutMs,
  });
  // A random tag per process marks the sidecar's upstream queries, so one that a misconfigured upstream
  // sends back to the sidecar is recognized and answered SERVFAIL instead of going round again.
  const loopTag = randomBytes(LOOP_TAG_LENGTH);
  const forward = forwardStage({ groups, loopTag, ...(config.clusterSpecNamesOnly ? { specNamesOnly: zones[0]! } : {}) });
  const router = new Router(policy, zones);
  const failures = failurePath({ log, now: options.clock, count: (code) => telemetry.metrics.pipeline.failed(code) });
  const autopath = autopathSearch(config, (path) => readFileSync(path, 'utf8'));
  const stages = {
    metrics: telemetry.stage,
    ...(autopath.search ? { autopath: createAutopathStage({ search: autopath.search, router, metrics: telemetry.metrics.autopath }) } : {}),
    policy: createPolicyStage(router),
    families: createFamiliesStage(policy),
    // Split-zone CNAME targets go through the cache and the forwarder only.
    split: createSplitStage(innerResolver(chain({ cache, forward }))),
    cache,
    forward,
  };
  const controller = new AbortController();
  const deps: HandlerDeps = {
    chain: compose(stages, failures.report),
    router,
    gate: new InflightGate(config.listener.maxInflight),
    signal: controller.signal,
    fail: failures.fail,
    observe: telemetry.stage.observe,
    loopTag,
  };
  const limits = { idleTimeoutMs: config.listener.tcpIdleTimeoutMs, maxConnections: config.listener.tcpMaxConnections, maxPipelined: config.listener.tcpMaxPipelined };
  let listeners: Listeners | undefined;
  try {
    // DNS first: the listeners answer from the moment they are bound (the policy is in force already).
    // A turn of the event loop answers the queries that came meanwhile; the metrics and admin servers,
    // whose /readyz says the sidecar is ready, come up after it, a turn apart (runtime/turn.ts).
    listeners = await bindListeners(listen, deps, limits, log);
    await nextTurn();
    await telemetry.start({ policy, cache, groups: () => groups.all(), config });
  } catch (err) {
    await telemetry.close();
    await listeners?.close();
    policy.close();
    await groups.close();
    throw err;
  }
  const bound = listeners;
  // Last: the policy files are read already, and a change made before the watch exists is found by watchFiles.
  policy.watchFiles();
  log('info', 'sidecar serving', {
    version: options.version,
    listen: bound.addresses.map(formatHostPort),
    upstreams: defaultUrls.map(showUrl),
    clusterDns: config.clusterDns ?? null,
    clusterDomain: config.clusterDomain,
    metrics: telemetry.metricsAddress ? formatHostPort(telemetry.metricsAddress) : null,
    admin: telemetry.adminAddress ? formatHostPort(telemetry.adminAddress) : null,
    logQueries: config.logQueries,
    autopath: autopath.search ? { search: autopath.search.domains.map((d) => d.name), ndots: autopath.search.ndots, from: autopath.source } : null,
    codeCache: codeCacheStatus() ?? null,
  });
  const cancelCompaction = compactHeapAfterStartup(
    (c) => {
      usePerformanceClock();
      log('info', 'start-up heap compacted', { rssBeforeMiB: c.rssBeforeMiB, rssAfterMiB: c.rssAfterMiB, pauseMs: c.pauseMs });
    },
    () => {
      try {
        const saved = saveCodeCache();
        if (saved) log('info', 'code cache written', saved);
      } catch (err) {
        log('warn', 'code cache not written', { error: describeError(err) });
      }
    },
  );
  const requests = telemetry.metrics.query.requests;
  const stopIdleCompaction = compactHeapWhenIdle(() => requests.total(), (c) => log('debug', 'idle heap compacted', { rssBeforeMiB: c.rssBeforeMiB, rssAfterMiB: c.rssAfterMiB, pauseMs: c.pauseMs, queries: c.queries }));

  let stopping: Promise<void> | undefined;
  return {
    log,
    addresses: bound.addresses,
    config,
    policy,
    cache,
    telemetry,
    groups: () => groups.all(),
    reloadPolicy: async () => policy.reload(),
    shutdown(drainMs: number) {
      stopping ??= (async () => {
        cancelCompaction();
        stopIdleCompaction();
        bound.stopAccepting();
        let timer: NodeJS.Timeout | undefined;
        const drained = await Promise.race([
          deps.gate.idle().then(() => true),
          new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), drainMs))),
        ]);
        clearTimeout(timer);
        if (!drained) log('warn', 'drain timed out; closing with queries in flight', { inflight: deps.gate.current });
        controller.abort();
        await bound.close();
        policy.close();
        await groups.close();
        await telemetry.close();
        log('info', 'sidecar stopped');
      })();
      return stopping;
    },
  };
}
