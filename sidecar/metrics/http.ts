/**
 * The sidecar's two HTTP servers:
 *
 * - metrics (`--metrics`, default 0.0.0.0:9153): GET /metrics for Prometheus,
 *   and GET /healthz and /readyz, because kubelet probes reach the pod IP,
 *   not loopback. Any pod may be able to reach this port, so its probes
 *   answer with a status only, and it is guarded: connection caps per source
 *   address and in all (sidecar/net/guard.ts), header, request and keep-alive
 *   deadlines, and /metrics rendered at most once a second, shared and in
 *   slices (exposition.ts);
 * - admin (`--admin`, default 127.0.0.1:9901, loopback only unless
 *   `--admin-allow-non-loopback`): /healthz, /readyz (with the details),
 *   /config, /cache and POST /cache/flush.
 *
 * They take what they serve through small interfaces, not the sidecar
 * itself. Each closes its connections when closed.
 */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { isLoopback } from '../config/resolv.ts';
import { describeError, ErrorCodes, SidecarError } from '../errors.ts';
import { formatHostPort, listenOn, parseHostPort, type HostPort } from '../listener/address.ts';
import { throttledLogger, type Logger } from '../log.ts';
import { guardConnections, type ConnectionLimits } from '../net/guard.ts';
import { REDACTED, redactUrls } from '../redact.ts';
import { onlyOptions } from '../upstream/spec.ts';
import { httpModule } from '../runtime/builtins.ts';
import { DEFAULT_EXPOSITION, ExpositionRenderer } from './exposition.ts';

/** The readiness report of /readyz. */
export interface Readiness {
  /** True when the policy is loaded and every upstream group has a healthy member. */
  readonly ready: boolean;
  /** Whether a policy is loaded (the sidecar does not start without one, so false only before start). */
  readonly policyLoaded: boolean;
  /** Every upstream group by name: whether one member is up, and each member's health. */
  readonly groups: Readonly<Record<string, { readonly healthy: boolean; readonly members: readonly { readonly address: string; readonly healthy: boolean }[] }>>;
  /** What is not ready, in words: `policy not loaded`, `group default: no healthy upstream`. */
  readonly notReady: readonly string[];
}

/** The part of an upstream group readiness looks at. */
export interface ReadinessGroup {
  healthy(): boolean;
  members(): readonly { readonly address: string; readonly healthy: boolean }[];
  /** Why the group's upstreams cannot be used; undefined for a working group. */
  readonly unusable?: string;
}

/** Builds the readiness report from the policy state and the upstream groups. */
export function readiness(policyLoaded: boolean, groups: ReadonlyMap<string, ReadinessGroup>): Readiness {
  const notReady: string[] = [];
  if (!policyLoaded) notReady.push('policy not loaded');
  const out: Record<string, { healthy: boolean; members: { address: string; healthy: boolean }[] }> = {};
  for (const [name, g] of groups) {
    const healthy = g.healthy();
    out[name] = { healthy, members: g.members().map((m) => ({ address: m.address, healthy: m.healthy })) };
    if (g.unusable !== undefined) notReady.push(`group ${name}: upstreams unusable: ${g.unusable}`);
    else if (!healthy) notReady.push(`group ${name}: no healthy upstream`);
  }
  return { ready: notReady.length === 0, policyLoaded, groups: out, notReady };
}

/** What the probe endpoints need. */
export interface ProbeSource {
  ready(): Readiness;
}

/** What the admin server needs. */
export interface AdminSource extends ProbeSource {
  /** The effective platform config and the tenant's and platform's policy documents (redacted here). */
  config(): unknown;
  /** Cache counters (CacheStore#stats). */
  cacheStats(): unknown;
  /** Empties the cache; returns how many entries were removed. */
  flushCache(): number;
}

/** A running HTTP server. */
export interface HttpEndpoint {
  /** The address bound (the real port when 0 was asked for). */
  readonly address: HostPort;
  /** Stops accepting and closes every connection. Idempotent. */
  close(): Promise<void>;
}

const SECRET_KEY = /(password|passwd|secret|token|credential|apikey|api_key|private)/i;

/**
 * A deep copy of `value` with secrets replaced: every upstream URL shows
 * scheme, host and port only (`https://u:p@dns.example/dns-query/profile-X?key=Y`
 * → `https://dns.example:443`; redact.ts), keeping its `#` per-upstream
 * options (tls-name, spki-pin, method: public), and the values of keys that
 * name a secret (password, token, secret, …) become `[redacted]`. SPKI pins
 * and CA certificates are public and stay.
 */
export function redact(value: unknown): unknown {
  if (typeof value === 'string') return redactUrls(value, onlyOptions);
  if (Array.isArray(value)) return value.map(redact);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) && v !== undefined && v !== null ? REDACTED : redact(v);
    return out;
  }
  return value;
}

/**
 * Parses the admin address and refuses a non-loopback one unless `allowNonLoopback`.
 *
 * @throws SidecarError CONFIG_INVALID.
 */
export function checkAdminAddress(address: string, allowNonLoopback: boolean): HostPort {
  const at = parseHostPort(address, '--admin');
  if (!isLoopback(at.host) && !allowNonLoopback) {
    throw new SidecarError(
      ErrorCodes.CONFIG_INVALID,
      `--admin: ${address} is not a loopback address; the admin endpoints (config, cache flush) stay on loopback unless --admin-allow-non-loopback is given`,
    );
  }
  return at;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;
type Routes = Readonly<Record<string, Readonly<Partial<Record<'GET' | 'POST', Handler>>>>>;

function send(res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8', headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  send(res, status, JSON.stringify(body, null, 2) + '\n', 'application/json');
}

/**
 * /healthz and /readyz. `detailed`: /readyz answers the whole readiness
 * report as JSON (the loopback admin port); otherwise `ok` or `not ready` and
 * the status code only (the metrics port, which other pods may reach: the
 * groups and upstream URLs are not theirs to read).
 */
function probeRoutes(source: ProbeSource, detailed: boolean): Routes {
  return {
    '/healthz': { GET: (_req, res) => send(res, 200, 'ok\n') },
    '/readyz': {
      GET: (_req, res) => {
        const r = source.ready();
        if (detailed) sendJson(res, r.ready ? 200 : 503, r);
        else send(res, r.ready ? 200 : 503, r.ready ? 'ok\n' : 'not ready\n');
      },
    },
  };
}

/** Connection caps and deadlines of one HTTP server (milliseconds). */
export interface HttpLimits {
  readonly connections: ConnectionLimits;
  /** Until the request's headers are in, counted from its first byte (or from the connection for the first request). */
  readonly headersTimeoutMs: number;
  /** Until the whole request is in. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this (Node adds a second of grace). */
  readonly keepAliveTimeoutMs: number;
  /** Requests one connection may carry; then it is closed after the answer. */
  readonly maxRequestsPerSocket: number;
}

/**
 * The metrics server's limits: Prometheus holds one connection per
 * replica and scrape job, the kubelet opens one per probe, so 8 per source
 * address leaves room; 64 in all bounds what idle connections cost (about
 * 10 KiB each: 12,000 took a sidecar from 58 to 179 MiB, test/bench/README.md,
 * "The metrics port under a flood").
 */
export const METRICS_LIMITS: HttpLimits = {
  connections: { perSource: 8, total: 64 },
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxRequestsPerSocket: 100,
};

/** The admin server's limits: loopback only, so every client is 127.0.0.1 and one cap serves both. */
export const ADMIN_LIMITS: HttpLimits = { ...METRICS_LIMITS, connections: { perSource: 16, total: 16 } };

async function serve(at: HostPort, routes: Routes, what: string, log: Logger, limits: HttpLimits): Promise<HttpEndpoint> {
  const server = httpModule().createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // How often the header and request deadlines are checked (Node's default, 30 s, would stretch them).
      connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
      maxHeaderSize: 8 * 1024,
    },
    (req, res) => {
      // Request bodies are never read; drain them so the connection can be reused.
      req.resume();
      res.once('close', guard.busy(req.socket));
      const path = (req.url ?? '/').split('?')[0]!;
      const route = routes[path];
      if (!route) return send(res, 404, 'not found\n');
      const method = req.method === 'HEAD' ? 'GET' : req.method;
      const handler = route[method as 'GET' | 'POST'];
      if (!handler) {
        res.setHeader('allow', Object.keys(route).join(', '));
        return send(res, 405, 'method not allowed\n');
      }
      Promise.resolve()
        .then(() => handler(req, res))
        .catch((err: unknown) => {
          log('error', `${what} request failed`, { path, error: describeError(err) });
          if (!res.headersSent) send(res, 500, 'internal error\n');
          else res.destroy();
        });
    },
  );
  server.maxHeadersCount = 50;
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket;
  // At most one line a minute per reason, however many connections a flood brings.
  const throttled = throttledLogger(log, 60_000);
  const guard = guardConnections(server, limits.connections, (reason, source) =>
    throttled(reason, 'warn', `${what} server closed a connection: ${reason}`, { source, ...limits.connections }),
  );
  // Dual-stack on an IPv6 address, as node:http listens by default.
  await listenOn(server, at, { backlog: 511, ipv6Only: false }).catch((err: unknown) => {
    throw new SidecarError(ErrorCodes.LISTEN_FAILED, `binding the ${what} server to ${formatHostPort(at)}`, { cause: err });
  });
  server.on('error', (err) => log('warn', `${what} server error`, { error: describeError(err) }));
  const bound = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    address: { host: at.host, port: bound.port, family: at.family },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  /** ADDR:PORT (`--metrics`). */
  readonly address: string;
  readonly registry: Registry;
  readonly probes: ProbeSource;
  readonly log: Logger;
  /** Default {@link METRICS_LIMITS}. */
  readonly limits?: HttpLimits;
  /** What renders /metrics; default a renderer of `registry` with {@link DEFAULT_EXPOSITION}. */
  readonly renderer?: ExpositionRenderer;
}

/** Starts the metrics server: GET /metrics, /healthz, /readyz (a status only). */
export function startMetricsServer(options: MetricsServerOptions): Promise<HttpEndpoint> {
  const at = parseHostPort(options.address, '--metrics');
  const { registry } = options;
  const renderer = options.renderer ?? new ExpositionRenderer(registry, DEFAULT_EXPOSITION);
  return serve(
    at,
    {
      '/metrics': {
        GET: async (_req, res) => {
          const text = renderer.render();
          if (!text) return send(res, 503, 'too many scrapes waiting\n', undefined, { 'retry-after': '1' });
          send(res, 200, await text, registry.contentType);
        },
      },
      ...probeRoutes(options.probes, false),
    },
    'metrics',
    options.log,
    options.limits ?? METRICS_LIMITS,
  );
}

/** Options of {@link startAdminServer}. */
export interface AdminServerOptions {
  /** ADDR:PORT (`--admin`); must be loopback unless `allowNonLoopback`. */
  readonly address: string;
  readonly allowNonLoopback?: boolean;
  readonly source: AdminSource;
  readonly log: Logger;
}

/**
 * Starts the admin server: GET /healthz, /readyz, /config, /cache; POST /cache/flush.
 *
 * @throws SidecarError CONFIG_INVALID for a non-loopback address not allowed, LISTEN_FAILED when binding fails.
 */
export function startAdminServer(options: AdminServerOptions): Promise<HttpEndpoint> {
  const at = checkAdminAddress(options.address, options.allowNonLoopback ?? false);
  const { source, log } = options;
  return serve(
    at,
    {
      ...probeRoutes(source, true),
      '/config': { GET: (_req, res) => sendJson(res, 200, redact(source.config())) },
      '/cache': { GET: (_req, res) => sendJson(res, 200, source.cacheStats()) },
      '/cache/flush': {
        POST: (_req, res) => {
          const flushed = source.flushCache();
          log('info', 'cache flushed by the admin endpoint', { entries: flushed });
          sendJson(res, 200, { flushed });
        },
      },
    },
    'admin',
    log,
    ADMIN_LIMITS,
  );
}
