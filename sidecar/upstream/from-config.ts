/**
 * The upstream side of the sidecar's configuration: the default upstream
 * URLs, the forwarding-loop checks at start-up, and the factory that turns a
 * group's URLs into an upstream group.
 */
import { ipFamily } from '../net/ip.ts';
import { assertNoLoop, readResolvConf } from '../config/resolv.ts';
import type { SidecarConfig } from '../config/schema.ts';
import { ErrorCodes, SidecarError, describeError } from '../errors.ts';
import { parseHostPort, type HostPort } from '../listener/address.ts';
import { throttledLogger, type Logger } from '../log.ts';
import { fromUrl, parseBootstrapList, upstreamHostPort, type UpstreamOptions } from './from-url.ts';
import { createGroup, type UpstreamObserver } from './group.ts';
import type { GroupFactory } from './groups.ts';
import { parseUpstreamSpec } from './spec.ts';
import { readFileSync } from '../runtime/builtins.ts';
import { showUrl } from '../redact.ts';

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
 *
 * @throws SidecarError CONFIG_LOOP naming the flag.
 */
export function checkLoops(listen: readonly HostPort[], config: SidecarConfig, upstreams: readonly string[]): void {
  if (config.clusterDns) assertNoLoop(listen, parseHostPort(config.clusterDns, '--cluster-dns'), '--cluster-dns');
  const bootstrap = parseBootstrapList(config.bootstrap);
  for (const text of upstreams) {
    const hp = upstreamHostPort(parseUpstreamSpec(text).url);
    if (ipFamily(hp.host) !== 0) assertNoLoop(listen, hp, '--upstream');
    for (const ip of bootstrap.get(hp.host.toLowerCase()) ?? []) assertNoLoop(listen, { host: ip, port: hp.port }, `--upstream ${showUrl(text)} (bootstrap address)`);
  }
  for (const r of config.bootstrapResolver) assertNoLoop(listen, upstreamHostPort(r, 'bootstrap resolver'), '--bootstrap-resolver');
}

/** The fromUrl options shared by every upstream: bootstrap addresses and resolvers, extra CAs. */
function upstreamOptions(config: SidecarConfig, log: Logger, observer: UpstreamObserver): UpstreamOptions {
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
    udpSockets: config.upstreamTiming.udpSockets,
    udpSocketQueries: config.upstreamTiming.udpSocketQueries,
    udpSocketSeconds: config.upstreamTiming.udpSocketSeconds,
    onBootstrapError: (host, message) => log('warn', 'bootstrap re-resolution failed; keeping the last addresses', { host, error: message }),
    ...(observer.onConnection ? { onConnection: observer.onConnection } : {}),
    ...(observer.onDroppedReply ? { onDroppedReply: observer.onDroppedReply } : {}),
    ...(ca.length > 0 ? { ca } : {}),
  };
}

/** Milliseconds between two log lines about one upstream's failed TLS verification. */
export const TLS_FAILURE_LOG_INTERVAL_MS = 60_000;

/** Whether an upstream URL (with its `#` options) is DoT or DoH. */
function encrypted(text: string): boolean {
  const url = parseUpstreamSpec(text).url;
  return url.startsWith('tls://') || url.startsWith('https://');
}

/**
 * Refuses a group that mixes encrypted and plain upstreams unless
 * `allowPlainFallback`: a TLS upstream that fails verification would
 * otherwise fail over to plain DNS without anyone noticing.
 *
 * @throws SidecarError CONFIG_INVALID naming the group and the flag.
 */
export function checkNoDowngrade(name: string, urls: readonly string[], allowPlainFallback: boolean): void {
  if (allowPlainFallback) return;
  const secure = urls.filter(encrypted).map(showUrl);
  if (secure.length === 0 || secure.length === urls.length) return;
  const plain = urls.filter((u) => !encrypted(u)).map(showUrl);
  throw new SidecarError(
    ErrorCodes.CONFIG_INVALID,
    `upstream group ${name} mixes encrypted (${secure.join(', ')}) and plain (${plain.join(', ')}) upstreams: a failing TLS upstream would fail over to plain DNS; use only one kind, or give --allow-plain-fallback`,
  );
}

/**
 * The factory of the sidecar's upstream groups: each URL (with its `#`
 * options) becomes an upstream, the group gets the configured timing and
 * the metric hooks of `observer`. A group mixing encrypted and plain
 * upstreams is refused ({@link checkNoDowngrade}); a failed TLS verification
 * or pin is logged at most once a minute per upstream (and counted by the
 * upstream metrics, code UPSTREAM_TLS).
 *
 * @throws SidecarError CONFIG_READ when an `--upstream-ca` file cannot be read.
 */
export function groupFactory(config: SidecarConfig, log: Logger, observer: UpstreamObserver): GroupFactory {
  const options = upstreamOptions(config, log, observer);
  const { attemptTimeoutMs, deadlineMs, race } = config.upstreamTiming;
  const tlsLog = throttledLogger(log, TLS_FAILURE_LOG_INTERVAL_MS);
  const observed: UpstreamObserver = {
    ...observer,
    onAttempt(upstream, rcode, code, seconds, error) {
      observer.onAttempt?.(upstream, rcode, code, seconds, error);
      if (code === ErrorCodes.UPSTREAM_TLS) {
        tlsLog(upstream, 'warn', 'upstream failed TLS verification (certificate or pin); no fallback to plain DNS', { upstream, error: describeError(error) });
      }
    },
  };
  return (name, urls) => {
    checkNoDowngrade(name, urls, config.allowPlainFallback);
    const members = urls.map((text) => {
      const spec = parseUpstreamSpec(text);
      return fromUrl(spec.url, { ...options, tlsName: spec.tlsName, spkiPin: spec.spkiPins, dohMethod: spec.dohMethod });
    });
    return createGroup(name, members, { attemptTimeoutMs, deadlineMs, race, observer: observed });
  };
}
