/**
 * `fromUrl`: builds an upstream from its URL, by scheme (DESIGN §3).
 *
 * | URL                                | transport | default port |
 * |------------------------------------|-----------|--------------|
 * | `udp://10.0.0.10[:53]`             | udp.ts    | 53           |
 * | `tcp://10.0.0.10[:53]`             | tcp.ts    | 53           |
 * | `tls://dns.example[:853]`          | dot.ts    | 853          |
 * | `https://dns.example[:443][/path]` | doh.ts    | 443 (path /dns-query) |
 *
 * IPv6 addresses go in brackets (`udp://[fd00::10]:53`). A host name is never
 * resolved through the system resolver (the sidecar may be that resolver):
 * its addresses come from the bootstrap map, and a name without one is
 * CONFIG_INVALID at construction. Plain udp/tcp upstreams take IPs only.
 */
import { ipFamily } from '../net/ip.ts';
import { ErrorCodes, SidecarError } from '../errors.ts';
import { showUrl } from '../redact.ts';
import { ReResolvingAddresses } from './bootstrap.ts';
import { checkUpstreamUrl } from './spec.ts';
import type { AddressSource } from './bootstrap.ts';
import { DohUpstream } from './doh.ts';
import { DotUpstream } from './dot.ts';
import type { TlsTrust } from './dot.ts';
import type { ConnectionHook } from './message.ts';
import type { StreamTuning } from './stream.ts';
import { TcpUpstream } from './tcp.ts';
import { UdpUpstream } from './udp.ts';
import type { Upstream } from './upstream.ts';

/** Options of {@link fromUrl}; all optional. Times in milliseconds. */
export interface UpstreamOptions {
  /** Host name → IP addresses, for tls:// and https:// upstreams named by host. */
  readonly bootstrap?: ReadonlyMap<string, readonly string[]> | Readonly<Record<string, readonly string[]>>;
  /** Extra trusted CA certificates (PEM), added to the system roots. */
  readonly ca?: readonly Buffer[];
  /** The name the certificate must carry when it differs from the URL's host (e.g. an upstream given by IP). */
  readonly tlsName?: string;
  /** Accepted SPKI pins (base64 SHA-256 of the certificate's SubjectPublicKeyInfo). */
  readonly spkiPin?: string | readonly string[];
  /** DoH request method. Default 'POST'. */
  readonly dohMethod?: 'POST' | 'GET';
  /** Idle connections (tcp, tls, https) are closed after this long. Default 10000. */
  readonly idleTimeoutMs?: number;
  /** Opening a connection (TCP + TLS) may take this long. Default 2000. */
  readonly connectTimeoutMs?: number;
  /** Queries in flight on one stream connection (tcp, tls) before another opens. Default 128. */
  readonly maxInFlightPerConnection?: number;
  /** Stream connections (tcp, tls) per upstream at most. Default 4. */
  readonly maxConnections?: number;
  /** udp and https: exchanges in flight at most (udp 2048, https 1024); beyond, OVERLOADED. */
  readonly maxInFlight?: number;
  /**
   * Plain DNS resolvers by URL (`udp://IP[:port]`, `tcp://…`) through which a
   * tls/https upstream named by host re-resolves its addresses every
   * `bootstrapRefreshMs`; the configured bootstrap addresses are used until the
   * first answer and whenever a refresh fails. Empty: no re-resolution.
   */
  readonly bootstrapResolvers?: readonly string[];
  /** Interval of re-resolution through `bootstrapResolvers`. Default 300000 (5 min). */
  readonly bootstrapRefreshMs?: number;
  /** Told of a failed re-resolution (the last good addresses stay in use). */
  readonly onBootstrapError?: (host: string, message: string) => void;
  /** Told of connections opened (+1) and closed (-1); pass a group observer's `onConnection`. */
  readonly onConnection?: ConnectionHook;
  /** udp: sockets (source ports) open at once per upstream. Default 8 (udp.ts, UDP_POOL_DEFAULTS). */
  readonly udpSockets?: number;
  /** udp: a socket is retired after a random count of queries between half this and this. Default 32. */
  readonly udpSocketQueries?: number;
  /** udp: a socket takes no new query once this many seconds old. Default 2. */
  readonly udpSocketSeconds?: number;
  /** udp: told of each datagram dropped because it matched no query in flight (the spoofing signal). */
  readonly onDroppedReply?: (upstream: string) => void;
}


/**
 * Host (an IPv6 literal without brackets) and port of an upstream URL
 * (`udp://1.2.3.4:53`, `tls://[::1]:853`), with the scheme's default port.
 * The loop check reads these before {@link fromUrl} builds the upstreams, so
 * a URL {@link checkUpstreamUrl} refuses is CONFIG_INVALID here already, naming
 * `what` (a port over 65535 made the URL parser throw, which was reported as
 * an INTERNAL error).
 */
export function upstreamHostPort(url: string, what = 'upstream'): { host: string; port: number } {
  const checked = checkUpstreamUrl(url);
  if (typeof checked === 'string') throw invalid(url, checked, what);
  return { host: checked.host, port: checked.port };
}

/** CONFIG_INVALID naming the upstream by its redacted URL (`why` must not repeat the URL). */
function invalid(url: string, why: string, what = 'upstream'): SidecarError {
  return new SidecarError(ErrorCodes.CONFIG_INVALID, `${what} ${showUrl(url)}: ${why}`);
}

function lookupBootstrap(options: UpstreamOptions, host: string): readonly string[] | undefined {
  const b = options.bootstrap;
  if (!b) return undefined;
  const key = host.toLowerCase().replace(/\.$/, '');
  if (b instanceof Map) return b.get(key) ?? b.get(host);
  const rec = b as Readonly<Record<string, readonly string[]>>;
  return Object.hasOwn(rec, key) ? rec[key] : Object.hasOwn(rec, host) ? rec[host] : undefined;
}

/**
 * Builds the upstream for `url`. Throws SidecarError CONFIG_INVALID for an
 * unknown scheme, a bad port, a path on a udp/tcp/tls URL, a host name on a
 * udp/tcp URL, or a host name without a bootstrap address.
 */
export function fromUrl(url: string, options: UpstreamOptions = {}): Upstream {
  const checked = checkUpstreamUrl(url);
  if (typeof checked === 'string') throw invalid(url, checked);
  const { u, host, port } = checked;
  const ip = ipFamily(host) !== 0;
  const tuning: StreamTuning = {
    connectTimeoutMs: options.connectTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    maxInFlightPerConnection: options.maxInFlightPerConnection,
    maxConnections: options.maxConnections,
    onConnection: options.onConnection,
  };

  if (u.protocol === 'udp:' || u.protocol === 'tcp:') {
    if (u.protocol === 'tcp:') return new TcpUpstream(host, port, tuning);
    return new UdpUpstream(host, port, {
      tcp: tuning,
      maxInFlight: options.maxInFlight,
      sockets: options.udpSockets,
      socketQueries: options.udpSocketQueries,
      socketSeconds: options.udpSocketSeconds,
      onDroppedReply: options.onDroppedReply,
    });
  }

  const pins = options.spkiPin === undefined ? [] : typeof options.spkiPin === 'string' ? [options.spkiPin] : [...options.spkiPin];
  for (const pin of pins) {
    if (Buffer.from(pin, 'base64').length !== 32) throw invalid(url, `SPKI pin ${pin} is not a base64 SHA-256 digest`);
  }
  let hosts: readonly string[] | AddressSource;
  if (ip) {
    hosts = [host];
  } else {
    const found = lookupBootstrap(options, host);
    if (!found || found.length === 0) {
      throw invalid(url, `host name ${host} has no bootstrap address (--bootstrap ${host}=IP[,IP]); it is never resolved through the system resolver`);
    }
    for (const a of found) if (ipFamily(a) === 0) throw invalid(url, `bootstrap address ${a} of ${host} is not an IP address`);
    hosts = found;
    const resolvers = options.bootstrapResolvers ?? [];
    if (resolvers.length > 0) {
      const built = resolvers.map((r) => {
        if (!/^(udp|tcp):\/\//.test(r)) throw invalid(url, `bootstrap resolver ${showUrl(r)} must be udp:// or tcp:// with an IP address`);
        return fromUrl(r);
      });
      hosts = new ReResolvingAddresses(host, found, {
        resolvers: built,
        intervalMs: options.bootstrapRefreshMs ?? 300_000,
        onError: options.onBootstrapError,
      });
    }
  }
  const trust: TlsTrust = { tlsName: options.tlsName ?? host, ca: options.ca, spkiPin: pins };

  if (u.protocol === 'tls:') {
    const address = `tls://${u.host}${u.port === '' ? `:${port}` : ''}`;
    return new DotUpstream(address, hosts, port, { ...tuning, trust });
  }
  // RFC 8484 names no path; /dns-query is the one servers use by default.
  if (u.pathname === '/' && !url.endsWith('/')) u.pathname = '/dns-query';
  return new DohUpstream(u, hosts, {
    trust,
    method: options.dohMethod,
    idleTimeoutMs: options.idleTimeoutMs,
    connectTimeoutMs: options.connectTimeoutMs,
    maxInFlight: options.maxInFlight,
    onConnection: options.onConnection,
  });
}

/**
 * Parses one bootstrap entry, `host=IP[,IP]`, into the host (lower case, no
 * trailing dot) and its addresses. Throws CONFIG_INVALID when malformed.
 */
export function parseBootstrap(entry: string): { host: string; addresses: string[] } {
  const eq = entry.indexOf('=');
  if (eq <= 0) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `bootstrap ${entry}: expected host=IP[,IP]`);
  const host = entry.slice(0, eq).trim().toLowerCase().replace(/\.$/, '');
  const addresses = entry
    .slice(eq + 1)
    .split(',')
    .map((a) => a.trim().replace(/^\[(.*)\]$/, '$1'))
    .filter((a) => a !== '');
  if (host === '' || addresses.length === 0) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `bootstrap ${entry}: expected host=IP[,IP]`);
  for (const a of addresses) {
    if (ipFamily(a) === 0) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `bootstrap ${entry}: ${a} is not an IP address`);
  }
  return { host, addresses };
}

/** Parses several bootstrap entries into the map {@link UpstreamOptions.bootstrap} takes; later entries add addresses. */
export function parseBootstrapList(entries: readonly string[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const e of entries) {
    const { host, addresses } = parseBootstrap(e);
    const list = map.get(host) ?? [];
    for (const a of addresses) if (!list.includes(a)) list.push(a);
    map.set(host, list);
  }
  return map;
}
