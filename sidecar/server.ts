/**
 * Wiring only: config → stages → chain → listeners. No DNS logic lives here.
 */
import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { CacheStage } from './cache/stage.ts';
import { readResolvConf, assertNoLoop } from './config/resolv.ts';
import type { SidecarConfig } from './config/schema.ts';
import { buildQuery } from './dns/query.ts';
import { clusterZoneOf, clusterZones } from './config/cluster.ts';
import { LOOP_TAG_LENGTH } from './dns/wire.ts';
import { describeError, errorCode, ErrorCodes, SidecarError } from './errors.ts';
import { formatHostPort, parseHostPort, type HostPort } from './listener/address.ts';
import { InflightGate, type HandlerDeps } from './listener/handle.ts';
import { listenTcp, type TcpListener } from './listener/tcp.ts';
import { listenUdp, type UdpListener } from './listener/udp.ts';
import type { Logger } from './log.ts';
import type { LineSink } from './metrics/querylog.ts';
import { Telemetry } from './metrics/telemetry.ts';
import { compose } from './pipeline/compose.ts';
import type { Next, QueryContext, Stage } from './pipeline/stage.ts';
import type { StageName } from './pipeline/order.ts';
import type { CompiledPolicy } from './policy/compile.ts';
import { findForwardZone } from './policy/evaluate.ts';
import { PolicyManager, type ReloadResult } from './policy/manager.ts';
import { createSplitStage } from './policy/split.ts';
import { createPolicyStage } from './policy/stage.ts';
import { fromUrl, parseBootstrapList, upstreamHostPort, type UpstreamOptions } from './upstream/from-url.ts';
import { parseUpstreamSpec } from './upstream/spec.ts';
import { createGroup, type UpstreamGroup } from './upstream/group.ts';
import { forwardStage, type Route } from './upstream/stage.ts';
import { randomBytes, readFileSync } from './runtime/builtins.ts';
import { compactHeapAfterStartup } from './runtime/heap.ts';

/** What {@link startSidecar} takes besides the config. */
export interface StartOptions {
  /** Operational log. */
  readonly log: Logger;
  /** The package version. */
  readonly version: string;
  /** Clock for the cache in ms (tests inject one); default Date.now. */
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

/** The cluster zone test: the cluster domain and the configured reverse zones. */
export function clusterZoneMatcher(config: SidecarConfig): (qname: string) => boolean {
  const zones = clusterZones(config.clusterDomain, config.clusterReverseZones);
  return (qname) => clusterZoneOf(qname, zones) !== undefined;
}

/** The default upstream URLs: `--upstream`, else the non-loopback nameservers of resolv.conf. */
export function defaultUpstreams(config: SidecarConfig): string[] {
  if (config.upstream.length > 0) return [...config.upstream];
  const found = readResolvConf(config.resolvConf);
  if (found.length === 0) {
    throw new SidecarError(
      ErrorCodes.CONFIG_INVALID,
      `--upstream: none given and ${config.resolvConf} has no non-loopback nameserver; give at least one --upstream URL`,
    );
  }
  return found;
}

/**
 * Checks that no server the sidecar sends to is one of its own listen
 * addresses: the cluster DNS, every upstream given by IP, the bootstrap
 * addresses of upstreams given by host, and the bootstrap resolvers.
 */
function checkLoops(listen: readonly HostPort[], config: SidecarConfig, upstreams: readonly string[]): void {
  if (config.clusterDns) assertNoLoop(listen, parseHostPort(config.clusterDns, '--cluster-dns'), '--cluster-dns');
  const bootstrap = parseBootstrapList(config.bootstrap);
  for (const text of upstreams) {
    const hp = upstreamHostPort(parseUpstreamSpec(text).url);
    if (isIP(hp.host) !== 0) assertNoLoop(listen, hp, '--upstream');
    for (const ip of bootstrap.get(hp.host.toLowerCase()) ?? []) assertNoLoop(listen, { host: ip, port: hp.port }, `--upstream ${text} (bootstrap address)`);
  }
  for (const r of config.bootstrapResolver) assertNoLoop(listen, upstreamHostPort(r), '--bootstrap-resolver');
}

/** The fromUrl options shared by every upstream: bootstrap addresses and resolvers, extra CAs. */
function buildUpstreamOptions(config: SidecarConfig, log: Logger): UpstreamOptions {
  const ca = config.upstreamCa.map((path) => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new SidecarError(ErrorCodes.CONFIG_READ, `reading --upstream-ca ${path}`, { cause: err });
    }
  });
  return {
    bootstrap: parseBootstrapList(config.bootstrap),
    bootstrapResolvers: config.bootstrapResolver,
    bootstrapRefreshMs: config.upstreamTiming.bootstrapRefreshMs,
    onBootstrapError: (host, message) => log('warn', 'bootstrap re-resolution failed; keeping the last addresses', { host, error: message }),
    ...(ca.length > 0 ? { ca } : {}),
  };
}

/** Builds and starts the sidecar. Throws SidecarError on bad config or a failed bind (nothing is left open). */
export async function startSidecar(config: SidecarConfig, options: StartOptions): Promise<Sidecar> {
  const { log } = options;
  const listen = config.listen.map((l) => parseHostPort(l, '--listen'));
  const upstreamUrls = defaultUpstreams(config);
  checkLoops(listen, config, upstreamUrls);
  const isCluster = clusterZoneMatcher(config);
  const timing = { attemptTimeoutMs: config.upstreamTiming.attemptTimeoutMs, deadlineMs: config.upstreamTiming.deadlineMs };
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
    log,
    queryLogSink: options.queryLogSink,
  });
  const observer = telemetry.observer;

  const policy = new PolicyManager({
    policy: config.policy,
    platformPolicy: config.platformPolicy,
    podLabels: config.podLabels,
    log,
  });

  // Upstream groups. Forward-zone groups follow the policy: rebuilt on reload when their upstreams change.
  const groups = new Map<string, UpstreamGroup>();
  const forwardKeys = new Map<string, string>();
  /** Every group not yet closed: the current ones and replaced ones still finishing their queries. */
  const opened = new Set<UpstreamGroup>();
  const upstreamOptions: UpstreamOptions = { ...buildUpstreamOptions(config, log), onConnection: observer.onConnection };
  const newGroup = (name: string, urls: readonly string[]) => {
    const members = urls.map((text) => {
      const spec = parseUpstreamSpec(text);
      return fromUrl(spec.url, { ...upstreamOptions, tlsName: spec.tlsName, spkiPin: spec.spkiPins, dohMethod: spec.dohMethod });
    });
    const group = createGroup(name, members, { ...timing, race: config.upstreamTiming.race, observer });
    opened.add(group);
    return group;
  };
  try {
    groups.set('default', newGroup('default', upstreamUrls));
    if (config.clusterDns) {
      // Plain DNS to kube-dns, TCP preferred (one pipelined connection), UDP as the fallback.
      const hp = config.clusterDns;
      groups.set('cluster', newGroup('cluster', [`tcp://${hp}`, `udp://${hp}`]));
    }
  } catch (err) {
    policy.close();
    await Promise.all([...opened].map((g) => g.close()));
    throw err;
  }
  const syncForwardGroups = (compiled: CompiledPolicy) => {
    const seen = new Set<string>();
    for (const fz of compiled.forwardZoneList) {
      seen.add(fz.name);
      const key = fz.upstreams.join(' ');
      if (forwardKeys.get(fz.name) === key) continue;
      const old = groups.get(fz.name);
      try {
        groups.set(fz.name, newGroup(fz.name, fz.upstreams));
        forwardKeys.set(fz.name, key);
      } catch (err) {
        log('error', 'forward zone upstreams are unusable', { zone: fz.name, error: describeError(err) });
        continue;
      }
      if (old) retire(old);
    }
    for (const name of [...forwardKeys.keys()]) {
      if (seen.has(name)) continue;
      const old = groups.get(name);
      groups.delete(name);
      forwardKeys.delete(name);
      if (old) retire(old);
    }
  };
  // A replaced group may still be answering queries: close it once its deadline has passed.
  const retire = (group: UpstreamGroup) => {
    const t = setTimeout(() => {
      opened.delete(group);
      void group.close();
    }, timing.deadlineMs + 1000);
    t.unref();
  };
  syncForwardGroups(policy.current);
  policy.onReload((result) => {
    if (result === 'success') syncForwardGroups(policy.current);
  });

  const route = (ctx: QueryContext): Route => {
    if (ctx.via) {
      const g = groups.get(ctx.via);
      if (g) return { group: g };
      if (ctx.via === 'cluster') return { local: 'no-cluster-dns' };
    }
    const qname = ctx.query.qname;
    if (isCluster(qname)) {
      const g = groups.get('cluster');
      return g ? { group: g } : { local: 'no-cluster-dns' };
    }
    const fz = findForwardZone(policy.current, qname);
    if (fz) {
      const g = groups.get(fz.zone.name);
      if (g) return { group: g };
    }
    return { group: groups.get('default')! };
  };

  const onError = (err: unknown, ctx: QueryContext, stage: string) =>
    log('error', 'query failed with an unexpected error', { stage, qtype: ctx.query.qtype, code: errorCode(err), error: describeError(err) });

  const cache = new CacheStage({
    config: config.cache,
    clock: options.clock,
    isClusterName: isCluster,
    staleMaxAgeSec: config.cache.staleMaxAge,
    staleMaxPerSecond: config.cache.staleMaxPerSecond,
    staleAnswerTimeoutMs: config.cache.staleAnswerTimeoutMs,
  });
  // A random tag per process marks the sidecar's upstream queries, so one that a misconfigured upstream
  // sends back to the sidecar is recognized and answered SERVFAIL instead of going round again.
  const loopTag = randomBytes(LOOP_TAG_LENGTH);
  let lastLoopLog = 0;
  const onLoop = (qname: string, qtype: number) => {
    const now = Date.now();
    if (now - lastLoopLog < 10_000) return;
    lastLoopLog = now;
    log('error', 'forwarding loop: a query the sidecar sent upstream came back to it; answering SERVFAIL (check the upstreams and the cluster DNS: one of them forwards to this sidecar)', { qname, qtype });
  };
  const forward = forwardStage({ route, log, loopTag });
  // Internal queries (split-zone CNAME targets) go through the cache and the forwarder only.
  const inner: Next = compose({ cache, forward }, onError);
  const controller = new AbortController();
  const split = createSplitStage({
    holder: policy,
    resolve: async (name, qtype, via, signal) => {
      const { wire, query } = buildQuery(name, qtype);
      const out = await inner({ wire, query, proto: 'udp', signal, startedAt: performance.now(), internal: true, via });
      return out.body;
    },
  });
  const stages: Partial<Record<StageName, Stage>> = {
    metrics: telemetry.stage,
    policy: createPolicyStage(policy),
    split,
    cache,
    forward,
  };
  const chain = compose(stages, onError);

  const deps: HandlerDeps = {
    chain, gate: new InflightGate(config.listener.maxInflight), signal: controller.signal, loopTag, onLoop,
    onRejected: (rcode, proto) => telemetry.metrics.rejectedRequest(proto, rcode),
  };
  const limits = {
    idleTimeoutMs: config.listener.tcpIdleTimeoutMs,
    maxConnections: config.listener.tcpMaxConnections,
    maxPipelined: config.listener.tcpMaxPipelined,
  };
  const udp: UdpListener[] = [];
  const tcp: TcpListener[] = [];
  const addresses: HostPort[] = [];
  try {
    for (const at of listen) {
      // Bind UDP first; with port 0 the TCP listener takes the same port, which another
      // socket may hold already: then try another kernel-chosen port.
      for (let attempt = 0; ; attempt++) {
        const u = await listenUdp(at, deps, log);
        try {
          tcp.push(await listenTcp(u.address, deps, limits, log));
        } catch (err) {
          await u.close();
          if (at.port !== 0 || attempt >= 20 || errorCode(err) !== ErrorCodes.LISTEN_FAILED) throw err;
          continue;
        }
        udp.push(u);
        addresses.push(u.address);
        break;
      }
    }
    await telemetry.start({ policy, cache, groups: () => groups, config });
  } catch (err) {
    await telemetry.close();
    await Promise.all([...udp.map((l) => l.close()), ...tcp.map((l) => l.close())]);
    policy.close();
    await Promise.all([...opened].map((g) => g.close()));
    throw err;
  }
  log('info', 'sidecar serving', {
    version: options.version,
    listen: addresses.map((a) => `${a.host}:${a.port}`),
    upstreams: upstreamUrls,
    clusterDns: config.clusterDns ?? null,
    clusterDomain: config.clusterDomain,
    metrics: telemetry.metricsAddress ? formatHostPort(telemetry.metricsAddress) : null,
    admin: telemetry.adminAddress ? formatHostPort(telemetry.adminAddress) : null,
    logQueries: config.logQueries,
  });
  const cancelCompaction = compactHeapAfterStartup((c) => log('info', 'start-up heap compacted', { rssBeforeMiB: c.rssBeforeMiB, rssAfterMiB: c.rssAfterMiB, pauseMs: c.pauseMs }));

  let shutdownPromise: Promise<void> | undefined;
  return {
    log,
    addresses,
    config,
    policy,
    cache,
    telemetry,
    groups: () => groups,
    reloadPolicy: async () => policy.reload(),
    shutdown(drainMs: number) {
      shutdownPromise ??= (async () => {
        cancelCompaction();
        for (const l of udp) l.stopAccepting();
        for (const l of tcp) l.stopAccepting();
        const until = Date.now() + drainMs;
        while (deps.gate.current > 0 && Date.now() < until) await sleep(5);
        if (deps.gate.current > 0) log('warn', 'drain timed out; closing with queries in flight', { inflight: deps.gate.current });
        controller.abort();
        await Promise.all([...udp.map((l) => l.close()), ...tcp.map((l) => l.close())]);
        policy.close();
        await Promise.all([...opened].map((g) => g.close()));
        await telemetry.close();
        log('info', 'sidecar stopped');
      })();
      return shutdownPromise;
    },
  };
}
