/**
 * The injector's HTTPS server: `POST /mutate` and `POST /validate`
 * (AdmissionReviews for the two webhooks), `/healthz`, `/readyz` and
 * `/metrics`. Certificate and key are re-read when their files change (Secret volumes are updated in place by the kubelet, cert-manager
 * renews), with the old pair kept when the new one does not load; the
 * serving certificate's notAfter is exported (certificateExpiry) at start and
 * on every reload.
 *
 * Any pod may be able to reach it, and with failurePolicy Fail an injector
 * that cannot answer stops pod creation for every tenant, so a hostile
 * client's connections must neither exhaust its memory nor lock the API
 * server out (injector/README.md, "Overload", says what happens at each
 * limit): connections are capped per source address and in all
 * (sidecar/net/guard.ts); a connection that does not finish its TLS handshake,
 * its headers or its request in time is closed; bodies are limited in size;
 * admissions in progress are bounded (admission-gate.ts), with a bounded
 * number waiting and 429 past it; and /metrics is rendered at most once a
 * second however many scrape it.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { createSecureContext } from 'node:tls';
import type { Registry } from 'prom-client';
import { DEFAULT_EXPOSITION, ExpositionRenderer } from '../sidecar/metrics/exposition.ts';
import { guardConnections, type ConnectionLimits } from '../sidecar/net/guard.ts';
import { review, validateReview, type AdmissionDeps } from './admission.ts';
import { AdmissionAborted, AdmissionGate, DEFAULT_ADMISSION_GATE, type AdmissionGateLimits } from './admission-gate.ts';
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import type { InjectorMetrics, Webhook } from './metrics.ts';

/** The webhook each HTTPS path serves (the paths the webhook configurations in deploy/ name). */
export const WEBHOOK_PATHS: Readonly<Record<string, Webhook>> = { '/mutate': 'mutate', '/validate': 'validate' };

const ANSWER = { mutate: review, validate: validateReview } as const;

/** Options of {@link startInjectorServer}. */
export interface InjectorServerOptions {
  /** Address to bind, e.g. `0.0.0.0`; port 0 picks a free one. */
  readonly host: string;
  readonly port: number;
  readonly certFile: string;
  readonly keyFile: string;
  readonly deps: AdmissionDeps & { readonly metrics: InjectorMetrics };
  /** Registry served on /metrics. */
  readonly registry: Registry;
  /** Largest request body in bytes; larger gets 413. Default 3 MiB (the API server's own request limit). */
  readonly maxBodyBytes?: number;
  /** Milliseconds a whole request may take, from its first byte. Default 10 000. */
  readonly requestTimeoutMs?: number;
  /** Milliseconds until a request's headers are in (for the first request, from the end of the handshake). Default 5 000, at most `requestTimeoutMs`. */
  readonly headersTimeoutMs?: number;
  /** Milliseconds a client has to finish the TLS handshake after connecting. Default 5 000 (the webhooks' timeoutSeconds in deploy/). */
  readonly handshakeTimeoutMs?: number;
  /** Connection caps. Default {@link DEFAULT_INJECTOR_CONNECTIONS}. */
  readonly connections?: ConnectionLimits;
  /** The bound on admissions in progress. Default {@link DEFAULT_ADMISSION_GATE}. */
  readonly admissions?: AdmissionGateLimits;
  /** Milliseconds between checks of the certificate files. Default 10 000; 0 disables. */
  readonly certCheckIntervalMs?: number;
}

/** A running injector server. */
export interface InjectorServer {
  readonly address: AddressInfo;
  /** Re-reads the certificate and key now; true when a new pair was loaded. */
  reloadCertificate(): boolean;
  /** Stops accepting, lets requests in flight finish (up to `graceMs`), and closes. */
  close(graceMs?: number): Promise<void>;
}

const DEFAULT_MAX_BODY = 3 * 1024 * 1024;

/**
 * Default connection caps: 256 per source address (an API server opens one
 * per concurrent webhook call) and 1,024 in all (a connection that has not
 * finished its handshake costs about 28 KiB: 5,000 took the injector from 68
 * to 205 MiB, test/bench/README.md, "Injector under a connection flood").
 */
export const DEFAULT_INJECTOR_CONNECTIONS: ConnectionLimits = { perSource: 256, total: 1024 };

/** A certificate and its key as loaded, with the certificate's notAfter. */
interface TlsPair {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** When the (first, serving) certificate of `cert` expires: seconds since the epoch. */
  readonly notAfterSeconds: number;
}

function readPair(certFile: string, keyFile: string): TlsPair {
  try {
    const cert = readFileSync(certFile);
    const key = readFileSync(keyFile);
    createSecureContext({ cert, key }); // throws on a bad or mismatched pair
    // The first certificate of the file is the one served (a chain's intermediates follow it).
    return { cert, key, notAfterSeconds: new X509Certificate(cert).validToDate.getTime() / 1000 };
  } catch (err) {
    throw new InjectorError(InjectorErrorCodes.TLS, `loading TLS certificate ${certFile} and key ${keyFile}`, { cause: err });
  }
}

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${limit}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        reject(new HttpError(413, `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Starts the HTTPS server; rejects when the certificate cannot be loaded or the port bound. */
export async function startInjectorServer(opts: InjectorServerOptions): Promise<InjectorServer> {
  const { deps, registry } = opts;
  const metrics = deps.metrics;
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  let pair = readPair(opts.certFile, opts.keyFile);
  metrics.certificateExpiry.set(pair.notAfterSeconds);
  let ready = false;

  const send = (res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8', close = false) => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...(close ? { Connection: 'close' } : {}) });
    res.end(body);
  };

  // Scrapes in a loop cost one rendering a second, not one each (sidecar/metrics/exposition.ts).
  const exposition = new ExpositionRenderer(registry, DEFAULT_EXPOSITION);
  const gate = new AdmissionGate(opts.admissions ?? DEFAULT_ADMISSION_GATE, (n) => metrics.admissionsWaiting.set(n));

  /**
   * Waits for an admission slot (admission-gate.ts) and returns its release
   * (also called when the response closes); `busy` when too many requests
   * wait already (the caller answers 429), `gone` when the client went away
   * while it waited.
   */
  const enterGate = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<(() => void) | 'busy' | 'gone'> => {
    const left = new AbortController();
    const onClose = () => left.abort();
    res.once('close', onClose);
    const entered = gate.enter(req.socket.remoteAddress ?? '', Number(req.headers['content-length'] ?? NaN), left.signal);
    if (!entered) {
      res.off('close', onClose);
      return 'busy';
    }
    try {
      const release = await entered;
      res.off('close', onClose);
      res.once('close', release);
      return release;
    } catch (err) {
      if (err instanceof AdmissionAborted) return 'gone';
      throw err;
    }
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<number> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return (send(res, 200, 'ok\n'), 200);
    if (path === '/readyz') return ready ? (send(res, 200, 'ok\n'), 200) : (send(res, 503, 'shutting down\n'), 503);
    if (path === '/metrics' && req.method === 'GET') {
      const text = exposition.render();
      if (!text) {
        res.setHeader('Retry-After', '1');
        return (send(res, 503, 'too many scrapes waiting\n'), 503);
      }
      send(res, 200, await text, registry.contentType);
      return 200;
    }
    const webhook = Object.hasOwn(WEBHOOK_PATHS, path) ? WEBHOOK_PATHS[path] : undefined;
    if (!webhook) return (send(res, 404, 'not found\n'), 404);
    if (req.method !== 'POST') return (send(res, 405, 'POST only\n'), 405);
    const declared = Number(req.headers['content-length']);
    if (!(declared > maxBody)) {
      // An oversized body is refused below without waiting for a slot.
      const slot = await enterGate(req, res);
      if (slot === 'gone') return 499;
      if (slot === 'busy') {
        metrics.admissions.inc({ webhook, result: 'error', reason: InjectorErrorCodes.OVERLOADED });
        res.setHeader('Retry-After', '1');
        send(res, 429, `too many admissions waiting (${gate.waiting}); retry\n`, undefined, true);
        return 429;
      }
    }
    let body: unknown;
    // A large review is worked on in turns of the event loop (body, parse, answer): parsing and patching a
    // 3 MiB review takes tens of milliseconds each, and small reviews get in between.
    let large = false;
    try {
      const raw = await readBody(req, maxBody);
      large = raw.length > gate.limits.smallBodyBytes;
      if (large) await yieldToLoop();
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 400;
      const message = err instanceof Error ? err.message : String(err);
      metrics.admissions.inc({ webhook, result: 'error', reason: status === 413 ? InjectorErrorCodes.TOO_LARGE : InjectorErrorCodes.BAD_REQUEST });
      send(res, status, `${status === 413 ? 'request too large' : 'malformed JSON'}: ${message}\n`, undefined, status === 413);
      return status;
    }
    try {
      if (large) await yieldToLoop();
      const answer = await ANSWER[webhook](body, deps);
      send(res, 200, JSON.stringify(answer), 'application/json');
      return 200;
    } catch (err) {
      if (err instanceof InjectorError && err.code === InjectorErrorCodes.BAD_REQUEST) {
        metrics.admissions.inc({ webhook, result: 'error', reason: err.code });
        send(res, 400, `${err.message}\n`);
        return 400;
      }
      throw err;
    }
  };

  const requestTimeout = opts.requestTimeoutMs ?? 10_000;
  const headersTimeout = Math.min(opts.headersTimeoutMs ?? 5_000, requestTimeout);
  const server = https.createServer(
    {
      cert: pair.cert,
      key: pair.key,
      minVersion: 'TLSv1.2',
      handshakeTimeout: opts.handshakeTimeoutMs ?? 5_000,
      requestTimeout,
      headersTimeout,
      keepAliveTimeout: 30_000,
      // How often request/headers timeouts are checked (Node's default is 30 s).
      connectionsCheckingInterval: Math.min(1_000, headersTimeout),
    },
    (req, res) => {
      const start = process.hrtime.bigint();
      res.once('close', guard.busy(req.socket));
      const url = (req.url ?? '/').split('?')[0]!;
      const path = Object.hasOwn(WEBHOOK_PATHS, url) ? url : 'other';
      handle(req, res).then(
        (code) => metrics.requestDuration.observe({ path, code: String(code) }, Number(process.hrtime.bigint() - start) / 1e9),
        (err: unknown) => {
          deps.log?.('error', 'request failed', { error: err instanceof Error ? err.message : String(err) });
          if (!res.headersSent) send(res, 500, 'internal error\n');
          else res.destroy();
          metrics.requestDuration.observe({ path, code: '500' }, Number(process.hrtime.bigint() - start) / 1e9);
        },
      );
    },
  );
  const guard = guardConnections(server, opts.connections ?? DEFAULT_INJECTOR_CONNECTIONS, (reason) => metrics.connectionsClosed.inc({ reason }));
  // node:https hands TLS errors (a handshake timeout, a broken handshake) to 'clientError' too, and then
  // leaves the connection to the listener: those connections never spoke HTTP and are destroyed.
  const secured = new WeakSet<object>();
  server.on('secureConnection', (socket) => secured.add(socket));
  // A request that breaks HTTP or its deadlines gets a status line when the socket still takes one.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!secured.has(socket)) {
      if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') metrics.connectionsClosed.inc({ reason: 'handshake-timeout' });
      else if (err.code !== 'ECONNRESET') metrics.connectionsClosed.inc({ reason: 'tls-error' });
      socket.destroy();
      return;
    }
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if (err.code !== 'ECONNRESET') metrics.connectionsClosed.inc({ reason: timedOut ? 'request-timeout' : 'bad-request' });
    const status = timedOut ? '408 Request Timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    if (socket.writable && err.code !== 'ECONNRESET') socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });

  const reloadCertificate = (): boolean => {
    let next: TlsPair;
    try {
      const cert = readFileSync(opts.certFile);
      const key = readFileSync(opts.keyFile);
      if (cert.equals(pair.cert) && key.equals(pair.key)) return false;
      next = readPair(opts.certFile, opts.keyFile);
    } catch (err) {
      metrics.certReloads.inc({ result: 'error' });
      deps.log?.('warn', 'TLS certificate reload failed; keeping the current one', { error: err instanceof Error ? err.message : String(err) });
      return false;
    }
    server.setSecureContext({ cert: next.cert, key: next.key, minVersion: 'TLSv1.2' });
    pair = next;
    metrics.certificateExpiry.set(pair.notAfterSeconds);
    metrics.certReloads.inc({ result: 'ok' });
    deps.log?.('info', 'TLS certificate reloaded', { cert: opts.certFile });
    return true;
  };
  const interval = opts.certCheckIntervalMs ?? 10_000;
  const timer = interval > 0 ? setInterval(reloadCertificate, interval) : undefined;
  timer?.unref();

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  ready = true;

  return {
    address: server.address() as AddressInfo,
    reloadCertificate,
    close(graceMs = 5_000) {
      ready = false;
      clearInterval(timer);
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}
