/**
 * The injector's HTTPS server: `POST /mutate` and `POST /validate`
 * (AdmissionReviews for the two webhooks), `/healthz`, `/readyz` and
 * `/metrics`. Certificate and key are re-read when their files change (Secret volumes are updated in place by the kubelet, cert-manager
 * renews), with the old pair kept when the new one does not load. Bodies are
 * limited in size and requests in time, so a bad client gets a 4xx, never a
 * hang.
 */
import { readFileSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { Registry } from 'prom-client';
import { review, validateReview, type AdmissionDeps } from './admission.ts';
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
  /** Milliseconds a whole request may take. Default 10 000. */
  readonly requestTimeoutMs?: number;
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

function readPair(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  try {
    const pair = { cert: readFileSync(certFile), key: readFileSync(keyFile) };
    createSecureContext(pair); // throws on a bad or mismatched pair
    return pair;
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
  let ready = false;

  const send = (res: http.ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8', close = false) => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...(close ? { Connection: 'close' } : {}) });
    res.end(body);
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<number> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return (send(res, 200, 'ok\n'), 200);
    if (path === '/readyz') return ready ? (send(res, 200, 'ok\n'), 200) : (send(res, 503, 'shutting down\n'), 503);
    if (path === '/metrics' && req.method === 'GET') {
      send(res, 200, await registry.metrics(), registry.contentType);
      return 200;
    }
    const webhook = Object.hasOwn(WEBHOOK_PATHS, path) ? WEBHOOK_PATHS[path] : undefined;
    if (!webhook) return (send(res, 404, 'not found\n'), 404);
    if (req.method !== 'POST') return (send(res, 405, 'POST only\n'), 405);
    let body: unknown;
    try {
      const raw = await readBody(req, maxBody);
      body = JSON.parse(raw.toString('utf8'));
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 400;
      const message = err instanceof Error ? err.message : String(err);
      metrics.admissions.inc({ webhook, result: 'error', reason: status === 413 ? InjectorErrorCodes.TOO_LARGE : InjectorErrorCodes.BAD_REQUEST });
      send(res, status, `${status === 413 ? 'request too large' : 'malformed JSON'}: ${message}\n`, undefined, status === 413);
      return status;
    }
    try {
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

  const server = https.createServer(
    {
      ...pair,
      minVersion: 'TLSv1.2',
      requestTimeout: opts.requestTimeoutMs ?? 10_000,
      headersTimeout: Math.min(opts.requestTimeoutMs ?? 10_000, 10_000),
      keepAliveTimeout: 30_000,
      // How often request/headers timeouts are checked (Node's default is 30 s).
      connectionsCheckingInterval: Math.min(1_000, opts.requestTimeoutMs ?? 10_000),
    },
    (req, res) => {
      const start = process.hrtime.bigint();
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
  // A request that breaks HTTP or its deadlines gets a status line when the socket still takes one.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    if (socket.writable && err.code !== 'ECONNRESET') socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });

  const reloadCertificate = (): boolean => {
    let next: { cert: Buffer; key: Buffer };
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
    server.setSecureContext({ ...next, minVersion: 'TLSv1.2' });
    pair = next;
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
