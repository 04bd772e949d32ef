/**
 * The upstream contract (DESIGN §3): one interface, one file per transport,
 * `fromUrl` (in from-url.ts) picks the transport by URL scheme.
 */

/** What an {@link ExchangeSignal} calls when it aborts (`this` is the listener: no closure per exchange). */
export interface AbortListener {
  handleEvent(): void;
}

/**
 * The deadline of an exchange as a transport sees it: the abort part of
 * AbortSignal, which is one. The groups pass a lighter one of their own
 * (group.ts: one object per query instead of an AbortController, its
 * AbortSignal and EventTarget bookkeeping); a transport that hands the
 * deadline to a library wanting an AbortSignal converts it
 * ({@link toAbortSignal}).
 */
export interface ExchangeSignal {
  readonly aborted: boolean;
  /** Why it aborted: a TimeoutError (DOMException or Error named so) when a deadline passed. */
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: AbortListener): void;
  removeEventListener(type: 'abort', listener: AbortListener): void;
}

/** A follower of an {@link ExchangeSignal}: a real AbortSignal that aborts with it, and the release of its listener. */
class SignalFollower implements AbortListener {
  readonly #controller = new AbortController();
  readonly #source: ExchangeSignal;

  constructor(source: ExchangeSignal) {
    this.#source = source;
    if (source.aborted) this.#controller.abort(source.reason);
    else source.addEventListener('abort', this);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  handleEvent(): void {
    this.#controller.abort(this.#source.reason);
  }

  release(): void {
    this.#source.removeEventListener('abort', this);
  }
}

/**
 * `signal` as an AbortSignal (for undici, timers/promises): itself when it is
 * one, else one that follows it until `release()` (call it when the exchange ends).
 */
export function toAbortSignal(signal: ExchangeSignal): { readonly signal: AbortSignal; release(): void } {
  return signal instanceof AbortSignal ? { signal, release: noop } : new SignalFollower(signal);
}

const noop = (): void => {};

/**
 * Where the end of a callback-form operation goes (a transport's
 * {@link Upstream.send}, a group's `start`): exactly one of the two methods
 * is called, once, possibly before the call that started it returns.
 */
export interface Receiver<T> {
  onReply(reply: T): void;
  /** The SidecarError it failed with (what its promise form rejects with). */
  onError(err: unknown): void;
}

/**
 * Where the end of an exchange started with {@link Upstream.send} goes; its
 * reply's ID is the query's and its question matches (RFC 5452). The groups'
 * attempts are receivers, so a miss costs no promise between a group and its
 * transport.
 */
export type ExchangeReceiver = Receiver<Buffer>;

/** The promise form of a callback-form operation: `start` is given a receiver that settles it. */
export function promiseOf<T>(start: (to: Receiver<T>) => void): Promise<T> {
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  start({ onReply: resolve, onError: reject });
  return promise;
}

/** {@link Upstream.exchange} for a transport that implements {@link Upstream.send}. */
export function exchangeBySend(upstream: Pick<Upstream, 'send'>, query: Buffer, signal: ExchangeSignal): Promise<Buffer> {
  return promiseOf<Buffer>((to) => upstream.send(query, signal, to));
}

/** A DNS server the sidecar forwards to. */
export interface Upstream {
  /**
   * The upstream as a URL of scheme, host and port only (`udp://10.0.0.10:53`,
   * `tls://dns.example:853`, `https://dns.example:443`; never user info, a
   * path or a query: redact.ts): its identity in logs, errors, /readyz and
   * the `upstream` metric label.
   */
  readonly address: string;
  /**
   * Sends `query` (a complete DNS message, not modified) and resolves with
   * the reply: a message whose ID equals the query's ID and whose question
   * matches the query's (RFC 5452), or rejects with a SidecarError
   * (UPSTREAM_TIMEOUT, UPSTREAM_CONNECT, UPSTREAM_BAD_REPLY, UPSTREAM_TLS,
   * UPSTREAM_HTTP, UPSTREAM_ABORTED, CLOSED). Safe to call concurrently.
   * Rejects with UPSTREAM_ABORTED when `signal` aborts (UPSTREAM_TIMEOUT when
   * its reason is a TimeoutError); the caller sets the deadline through the
   * signal (e.g. AbortSignal.timeout, or a group's deadline).
   */
  exchange(query: Buffer, signal: ExchangeSignal): Promise<Buffer>;
  /** {@link exchange} in callback form: the reply or the error goes to `to` instead of a promise. */
  send(query: Buffer, signal: ExchangeSignal, to: ExchangeReceiver): void;
  /** Closes sockets and fails pending exchanges with CLOSED. Idempotent. */
  close(): Promise<void>;
}
