/**
 * DNS over HTTPS (RFC 8484) with undici over HTTP/2: one multiplexed
 * connection per upstream (up to `maxConcurrentStreams` queries at once, more
 * wait in undici's queue), POST by default, GET selectable.
 *
 * - POST sends the query as it is; GET sends it with ID 0 (RFC 8484 §4.1, so
 *   HTTP caches can work) as `?dns=` base64url without padding.
 * - A reply must have status 200, content type application/dns-message, a
 *   body of at most `maxReplyBytes`, the ID sent and the question asked;
 *   otherwise UPSTREAM_HTTP or UPSTREAM_BAD_REPLY.
 * - The connection goes to the bootstrap IPs given (never a system lookup),
 *   with the trust rules of dot.ts (name, extra CA, SPKI pin).
 * - Idle connections close after `idleTimeoutMs`; undici PINGs the connection
 *   every `pingIntervalMs`; a query that times out while nothing came back on
 *   the connection since it was sent replaces the connection.
 */
import { monotonicMs } from '../runtime/clock.ts';
import { timersPromises } from '../runtime/builtins.ts';
import type { buildConnector, Client } from 'undici';
import { ErrorCodes, SidecarError } from '../errors.ts';
import { staticAddresses } from './bootstrap.ts';
import type { AddressSource } from './bootstrap.ts';
import { connectTls } from './dot.ts';
import type { TlsTrust } from './dot.ts';
import { abortError, checkQuery, matchesQuestion, upstreamError } from './message.ts';
import { formatHostPort } from '../listener/address.ts';
import { redactUrl } from '../redact.ts';
import type { ConnectionHook } from './message.ts';
import { toAbortSignal, type ExchangeReceiver, type ExchangeSignal, type Upstream } from './upstream.ts';

/**
 * undici, loaded on the first DoH exchange: it is the largest dependency
 * (about 60 ms of start-up to compile and evaluate), and a sidecar without a
 * DoH upstream never needs it.
 */
type Undici = typeof import('undici');
let undici: Undici | undefined;
async function loadUndici(): Promise<Undici> {
  // undici is CommonJS: its module.exports is the namespace's default export, both in
  // Node (which also lists named exports) and in the esbuild chunk (which lists only default).
  const mod = (await import('undici')) as Undici & { default?: Undici };
  undici ??= mod.default ?? mod;
  return undici;
}

/** Options of {@link DohUpstream}. Times in milliseconds. */
export interface DohOptions {
  readonly trust: TlsTrust;
  /** 'POST' (default) or 'GET'. */
  readonly method?: 'POST' | 'GET';
  /** An idle connection is closed after this long. Default 10000. */
  readonly idleTimeoutMs?: number;
  /** Opening a connection (TCP + TLS) may take this long. Default 2000. */
  readonly connectTimeoutMs?: number;
  /** HTTP/2 PING interval that detects a dead connection; 0 turns it off. Default 15000. */
  readonly pingIntervalMs?: number;
  /** Concurrent streams on the connection. Default 100. */
  readonly maxConcurrentStreams?: number;
  /** Exchanges in flight (on the connection or queued in undici) at most; beyond, OVERLOADED. Default 1024. */
  readonly maxInFlight?: number;
  /** The largest reply body accepted. Default 65535. */
  readonly maxReplyBytes?: number;
  /** Told of every connection opened (+1) and closed (-1). */
  readonly onConnection?: ConnectionHook;
}

const DNS_MESSAGE = 'application/dns-message';

/**
 * Reads a response body of at most `max` bytes (event listeners: several
 * times cheaper than async iteration on this path).
 */
function readBody(body: NodeJS.ReadableStream & { destroy(): unknown }, max: number, address: string): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        body.destroy();
        reject(upstreamError(ErrorCodes.UPSTREAM_BAD_REPLY, `reply body over ${max} bytes from`, address));
        return;
      }
      chunks.push(chunk);
    });
    body.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    body.once('error', reject);
  });
}

/** Whether an error is an HTTP/2 stream refused by the server (NGHTTP2_REFUSED_STREAM). */
function refusedStream(err: SidecarError): boolean {
  const cause = err.cause as { code?: string; message?: string } | undefined;
  return cause?.code === 'ERR_HTTP2_STREAM_ERROR' && (cause.message ?? '').includes('REFUSED_STREAM');
}

/** Settles like the request `p`, or rejects with the signal's reason as soon as it aborts. */
function untilAborted<T extends { body: { destroy(): unknown } }>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) v.body.destroy(); // too late: nobody reads it
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Errors of a request that met a broken established connection (not a failed connect): retried once. */
const retryable = new WeakSet<Error>();

/**
 * A DoH upstream. `url` is the full endpoint (`https://dns.example/dns-query`),
 * `hosts` the server's IPs (bootstrap, or a source that re-resolves them),
 * tried in turn when a connect fails. Its `address` is the URL redacted to
 * scheme, host and port (`https://dns.example:443`, redact.ts): two DoH
 * upstreams on one host and port share it, and their metric series.
 */
export class DohUpstream implements Upstream {
  readonly address: string;
  readonly #url: URL;
  readonly #source: AddressSource;
  readonly #port: number;
  readonly #options: DohOptions;
  readonly #method: 'POST' | 'GET';
  readonly #maxReplyBytes: number;
  #hostIndex = 0;
  #session: Buffer | undefined;
  #client: Client | undefined;
  /** monotonicMs() of the last reply headers received on the current client. */
  #lastReplyAt = 0;
  #closed = false;
  #inFlight = 0;
  #idleTimer: NodeJS.Timeout | undefined;
  /** Connections opened so far (for tests and diagnostics). */
  connectionsOpened = 0;

  constructor(url: URL, hosts: readonly string[] | AddressSource, options: DohOptions) {
    // Shown in logs, errors, metric labels and /readyz: scheme, host and port only. The path and
    // query (which may carry a profile ID or a key) stay in #url, used only to send requests.
    this.address = redactUrl(url.href);
    if (url.protocol !== 'https:') throw new SidecarError(ErrorCodes.CONFIG_INVALID, `DoH upstream ${this.address} is not https://`);
    const source = 'addresses' in hosts ? hosts : staticAddresses(hosts);
    if (source.addresses().length === 0) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `DoH upstream ${this.address} has no address`);
    this.#url = url;
    this.#source = source;
    this.#port = url.port === '' ? 443 : Number(url.port);
    this.#options = options;
    this.#method = options.method ?? 'POST';
    this.#maxReplyBytes = options.maxReplyBytes ?? 65535;
  }

  #connector(): buildConnector.connector {
    return (_opts, callback) => {
      const list = this.#source.addresses();
      const host = list[this.#hostIndex % list.length]!;
      const where = `${this.address} (${formatHostPort({ host, port: this.#port })})`;
      connectTls({
        host,
        port: this.#port,
        trust: this.#options.trust,
        timeoutMs: this.#options.connectTimeoutMs ?? 2000,
        address: where,
        alpn: ['h2', 'http/1.1'],
        session: this.#session,
        onSession: (s) => {
          this.#session = s;
        },
      }).then(
        (socket) => {
          this.connectionsOpened++;
          const hook = this.#options.onConnection;
          hook?.(this.address, 1);
          socket.once('close', () => hook?.(this.address, -1));
          callback(null, socket);
        },
        (err: unknown) => {
          if (err instanceof SidecarError && err.code !== ErrorCodes.UPSTREAM_TLS) this.#hostIndex++;
          callback(err instanceof Error ? err : new Error(String(err)), null);
        },
      );
    };
  }

  #getClient(lib: Undici): Client {
    if (this.#client && !this.#client.destroyed && !this.#client.closed) return this.#client;
    const idle = this.#options.idleTimeoutMs ?? 10_000;
    const streams = this.#options.maxConcurrentStreams ?? 100;
    this.#client = new lib.Client(this.#url.origin, {
      allowH2: true,
      connect: this.#connector(),
      maxConcurrentStreams: streams,
      pipelining: streams,
      keepAliveTimeout: idle,
      keepAliveMaxTimeout: idle,
      pingInterval: this.#options.pingIntervalMs ?? 15_000,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    this.#lastReplyAt = 0;
    return this.#client;
  }

  send(query: Buffer, signal: ExchangeSignal, to: ExchangeReceiver): void {
    this.exchange(query, signal).then(
      (reply) => to.onReply(reply),
      (err: unknown) => to.onError(err),
    );
  }

  async exchange(query: Buffer, deadline: ExchangeSignal): Promise<Buffer> {
    const cap = this.#options.maxInFlight ?? 1024;
    if (this.#inFlight >= cap) throw upstreamError(ErrorCodes.OVERLOADED, `${cap} exchanges already in flight to`, this.address);
    this.#inFlight++;
    if (this.#idleTimer) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = undefined;
    }
    // undici and the retry back-off take an AbortSignal.
    const signal = toAbortSignal(deadline);
    try {
      return await this.#exchangeWithRetries(query, signal.signal);
    } finally {
      signal.release();
      if (--this.#inFlight === 0 && !this.#closed) this.#startIdleTimer();
    }
  }

  /** Closes the connection after `idleTimeoutMs` with nothing in flight (undici does not for HTTP/2). */
  #startIdleTimer(): void {
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      const client = this.#client;
      if (this.#inFlight > 0 || !client) return;
      this.#client = undefined;
      client.close().catch(() => {});
    }, this.#options.idleTimeoutMs ?? 10_000);
    this.#idleTimer.unref();
  }

  async #exchangeWithRetries(query: Buffer, signal: AbortSignal): Promise<Buffer> {
    let reconnected = false;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#exchangeOnce(query, signal);
      } catch (err) {
        if (!(err instanceof SidecarError) || signal.aborted || this.#closed) throw err;
        if (refusedStream(err) && attempt < 16) {
          // REFUSED_STREAM: the server did not process the request, which is safe
          // to repeat (RFC 9113 §8.7); some servers refuse concurrent POST streams.
          await timersPromises().setTimeout(1 + Math.random() * Math.min(50, 2 ** attempt), undefined, { signal }).catch(() => {});
          continue;
        }
        // A request that met a connection going away (GOAWAY, reset) is retried
        // once on a fresh connection; undici reconnects by itself.
        if (retryable.has(err) && !reconnected) {
          reconnected = true;
          continue;
        }
        throw err;
      }
    }
  }

  async #exchangeOnce(query: Buffer, signal: AbortSignal): Promise<Buffer> {
    const address = this.address;
    if (this.#closed) throw upstreamError(ErrorCodes.CLOSED, 'sending query to closed upstream', address);
    if (signal.aborted) throw abortError(signal, 'sending query to', address);
    const qEnd = checkQuery(query, address);
    const originalId = query.readUInt16BE(0);
    const get = this.#method === 'GET';
    let sentId = originalId;
    let path: string;
    let body: Buffer | undefined;
    if (get) {
      const wire = Buffer.from(query);
      wire.writeUInt16BE(0, 0);
      sentId = 0;
      const sep = this.#url.search === '' ? '?' : '&';
      path = `${this.#url.pathname}${this.#url.search}${sep}dns=${wire.toString('base64url')}`;
    } else {
      path = `${this.#url.pathname}${this.#url.search}`;
      body = query;
    }
    const lib = undici ?? (await loadUndici());
    if (this.#closed) throw upstreamError(ErrorCodes.CLOSED, 'sending query to closed upstream', address);
    const client = this.#getClient(lib);
    const sentAt = monotonicMs();
    let reply: Buffer;
    try {
      // undici honours the signal only once a connection exists; race it so a
      // hanging connect or handshake cannot hold the caller past its deadline.
      const res = await untilAborted(
        client.request({
          path,
          method: this.#method,
          headers: get ? { accept: DNS_MESSAGE } : { accept: DNS_MESSAGE, 'content-type': DNS_MESSAGE },
          body,
          signal,
          idempotent: true,
        }),
        signal,
      );
      this.#lastReplyAt = monotonicMs();
      const type = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (res.statusCode !== 200 || type !== DNS_MESSAGE) {
        res.body.destroy();
        throw upstreamError(ErrorCodes.UPSTREAM_HTTP, `HTTP status ${res.statusCode}, content type '${type}' from`, address);
      }
      const declared = Number(res.headers['content-length'] ?? 0);
      if (declared > this.#maxReplyBytes) {
        res.body.destroy();
        throw upstreamError(ErrorCodes.UPSTREAM_BAD_REPLY, `reply body of ${declared} bytes, over ${this.#maxReplyBytes}, from`, address);
      }
      reply = await readBody(res.body, this.#maxReplyBytes, address);
    } catch (err) {
      throw this.#mapError(err, signal, client, sentAt, lib.errors);
    }
    if (reply.length < 12 || reply.readUInt16BE(0) !== sentId || !matchesQuestion(query, qEnd, reply)) {
      throw upstreamError(ErrorCodes.UPSTREAM_BAD_REPLY, 'reply with a wrong ID or question (RFC 5452) from', address);
    }
    if (sentId !== originalId) reply.writeUInt16BE(originalId, 0);
    return reply;
  }

  #mapError(err: unknown, signal: AbortSignal, client: Client, sentAt: number, undiciErrors: Undici['errors']): SidecarError {
    if (signal.aborted) {
      const timedOut = signal.reason instanceof Error && signal.reason.name === 'TimeoutError';
      if (timedOut && this.#lastReplyAt < sentAt && client === this.#client) {
        // Nothing came back on this connection since the query left: replace it.
        this.#client = undefined;
        client.destroy().catch(() => {});
      }
      return abortError(signal, 'waiting for reply from', this.address);
    }
    if (err instanceof SidecarError) return err;
    if (this.#closed) return upstreamError(ErrorCodes.CLOSED, 'closing upstream', this.address, err);
    // undici wraps connector errors; find a SidecarError among the causes.
    let cur: unknown = err;
    for (let depth = 0; cur instanceof Error && depth < 4; depth++, cur = cur.cause) {
      if (cur instanceof SidecarError) return cur;
    }
    if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
      return upstreamError(ErrorCodes.UPSTREAM_TIMEOUT, 'waiting for reply from', this.address, err);
    }
    if (err instanceof undiciErrors.ResponseError) {
      return upstreamError(ErrorCodes.UPSTREAM_HTTP, 'exchanging with', this.address, err);
    }
    const e = upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'exchanging with', this.address, err);
    retryable.add(e);
    return e;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#source.close();
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    const client = this.#client;
    this.#client = undefined;
    if (client) await client.destroy(upstreamError(ErrorCodes.CLOSED, 'closing upstream', this.address)).catch(() => {});
  }
}
