/**
 * The length-prefixed stream transport shared by TCP (RFC 7766) and DoT
 * (RFC 7858): persistent connections, pipelined queries, out-of-order replies
 * matched by a rewritten message ID.
 *
 * - Each query goes out with an ID that is random and unique among the queries
 *   in flight on its connection; the caller's ID is restored on the reply.
 * - A reply whose question does not match is ignored (RFC 5452); a reply for
 *   an ID not in flight (e.g. a query that was aborted) is ignored.
 * - A connection carries at most `maxInFlightPerConnection` queries; more
 *   queries open another connection, up to `maxConnections`, then OVERLOADED.
 * - A connection with nothing in flight for `idleTimeoutMs` is closed.
 * - A query that times out on a connection that has delivered nothing since
 *   the query was written marks the connection dead: it is destroyed.
 * - When a connection dies, each exchange in flight on it that was written to
 *   an already-established connection is retried once on a fresh connection
 *   (the server may have closed an idle connection just as the query left);
 *   the others fail with UPSTREAM_CONNECT.
 */
import { monotonicMs } from '../runtime/clock.ts';
import type { OnReadOpts, Socket } from 'node:net';
import { ErrorCodes, SidecarError } from '../errors.ts';
import { abortError, checkQuery, matchesQuestion, randomId, upstreamError } from './message.ts';
import type { ConnectionHook } from './message.ts';
import { IdTable } from '../runtime/tables.ts';
import { exchangeBySend, type ExchangeReceiver, type ExchangeSignal, type Upstream } from './upstream.ts';

/** Tuning shared by the stream transports. All times in milliseconds. */
export interface StreamTuning {
  /** How long opening a connection (TCP and TLS handshakes) may take. Default 2000. */
  readonly connectTimeoutMs?: number;
  /** A connection with nothing in flight is closed after this long. Default 10000; must be > 0. */
  readonly idleTimeoutMs?: number;
  /** Queries in flight on one connection before another is opened. Default 128. */
  readonly maxInFlightPerConnection?: number;
  /** Connections to one upstream at most; beyond them exchanges fail with OVERLOADED. Default 4. */
  readonly maxConnections?: number;
  /** Told of every connection opened (+1) and closed (-1). */
  readonly onConnection?: ConnectionHook;
}

/**
 * Opens one connection, ready to carry DNS messages (handshakes done), or
 * rejects with a SidecarError (UPSTREAM_CONNECT, UPSTREAM_TLS,
 * UPSTREAM_TIMEOUT). The stream transport owns and closes the socket. A
 * connector should pass `onread` to net.connect / tls.connect: what the
 * connection receives is then read into one buffer per connection and
 * handed to the transport in place, instead of a new Buffer and a 'data'
 * event per read; a socket that emits 'data' instead works too.
 */
export type Connector = (timeoutMs: number, onread: OnReadOpts) => Promise<Socket>;

/** Size of a connection's read buffer (`onread`): a few dozen replies per read. */
const READ_BUFFER_BYTES = 16 * 1024;

/** One exchange: also its signal's abort listener (handleEvent), so no closure per query. */
class Pending {
  readonly query: Buffer;
  readonly qEnd: number;
  readonly originalId: number;
  readonly signal: ExchangeSignal;
  readonly to: ExchangeReceiver;
  readonly #onAbort: (p: Pending) => void;
  conn: Connection | undefined = undefined;
  id = 0;
  /** monotonicMs() when written, 0 while queued. */
  writtenAt = 0;
  /** Whether the connection was already established when the query was written. */
  reused = false;
  retried = false;
  done = false;

  constructor(query: Buffer, qEnd: number, signal: ExchangeSignal, to: ExchangeReceiver, onAbort: (p: Pending) => void) {
    this.query = query;
    this.qEnd = qEnd;
    this.originalId = query.readUInt16BE(0);
    this.signal = signal;
    this.to = to;
    this.#onAbort = onAbort;
  }

  handleEvent(): void {
    this.#onAbort(this);
  }
}

const DEFAULTS = {
  connectTimeoutMs: 2000,
  idleTimeoutMs: 10_000,
  maxInFlightPerConnection: 128,
  maxConnections: 4,
} as const;

class Connection {
  socket: Socket | undefined;
  open = false;
  dead = false;
  /** The exchanges written and waiting for their reply, by the ID they were written with (not a Map: runtime/tables.ts). */
  readonly pending: IdTable<Pending>;
  readonly queued: Pending[] = [];
  lastReadAt = 0;
  /**
   * Closes the connection once it has had nothing in flight for `idleTimeoutMs`. Armed when the connection
   * first goes idle and left armed while it works (a query only clears `idleSince`), so a connection whose
   * last reply leaves it idle between two batches does not make and cancel a timer each time.
   */
  idleTimer: NodeJS.Timeout | undefined;
  /** monotonicMs() when the last query in flight was settled; -1 while queries are in flight. */
  idleSince = -1;
  chunks: Buffer[] = [];
  buffered = 0;
  need = -1;
  /** Queries given IDs in this turn of the event loop, written together in the check phase ({@link flush}). */
  readonly outbox: Pending[] = [];

  constructor(maxInFlight: number) {
    this.pending = new IdTable<Pending>(maxInFlight);
  }
}

/**
 * Writes a connection's outbox: every query of this turn of the event loop,
 * length-prefixed with its rewritten ID, in one buffer and one write (one TLS
 * record and one syscall for the batch instead of one each, and no per-query
 * stream bookkeeping). A query settled meanwhile (aborted) is left out.
 */
function flush(conn: Connection): void {
  const out = conn.outbox;
  const socket = conn.socket;
  if (conn.dead || !socket || socket.destroyed) {
    out.length = 0;
    return;
  }
  // Indexed loops: this runs once per turn, often too rarely to be optimized, and an
  // unoptimized for-of allocates an iterator result per element.
  let total = 0;
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    if (!p.done && p.conn === conn) total += p.query.length + 2;
  }
  if (total === 0) {
    out.length = 0;
    return;
  }
  const buf = Buffer.allocUnsafe(total);
  const now = monotonicMs();
  let off = 0;
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    if (p.done || p.conn !== conn) continue;
    const q = p.query;
    buf.writeUInt16BE(q.length, off);
    q.copy(buf, off + 2);
    buf.writeUInt16BE(p.id, off + 2);
    off += q.length + 2;
    p.writtenAt = now;
  }
  out.length = 0;
  socket.write(buf);
}

/** An upstream speaking length-prefixed DNS over connections from a {@link Connector}. */
export class StreamUpstream implements Upstream {
  readonly address: string;
  readonly #connect: Connector;
  readonly #tuning: Required<Omit<StreamTuning, 'onConnection'>>;
  readonly #onConnection: ConnectionHook | undefined;
  readonly #conns: Connection[] = [];
  #closed = false;
  /** Connections opened so far (for tests and diagnostics). */
  connectionsOpened = 0;

  constructor(address: string, connect: Connector, tuning: StreamTuning = {}) {
    this.address = address;
    this.#connect = connect;
    this.#onConnection = tuning.onConnection;
    this.#tuning = {
      connectTimeoutMs: tuning.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      idleTimeoutMs: tuning.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      maxInFlightPerConnection: tuning.maxInFlightPerConnection ?? DEFAULTS.maxInFlightPerConnection,
      maxConnections: tuning.maxConnections ?? DEFAULTS.maxConnections,
    };
  }

  exchange(query: Buffer, signal: ExchangeSignal): Promise<Buffer> {
    return exchangeBySend(this, query, signal);
  }

  send(query: Buffer, signal: ExchangeSignal, to: ExchangeReceiver): void {
    const address = this.address;
    if (this.#closed) return to.onError(upstreamError(ErrorCodes.CLOSED, 'sending query to closed upstream', address));
    if (signal.aborted) return to.onError(abortError(signal, 'sending query to', address));
    let qEnd: number;
    try {
      qEnd = checkQuery(query, address);
    } catch (err) {
      return to.onError(err);
    }
    if (query.length > 0xffff) {
      return to.onError(new SidecarError(ErrorCodes.INTERNAL, `sending a query longer than 65535 bytes to ${address}`));
    }
    const p = new Pending(query, qEnd, signal, to, this.#onAbort);
    // Removed in #finish, so no `once` (an options object checked per call).
    signal.addEventListener('abort', p);
    this.#dispatch(p);
  }

  readonly #onAbort = (p: Pending): void => this.#aborted(p);

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const err = upstreamError(ErrorCodes.CLOSED, 'closing upstream', this.address);
    for (const conn of [...this.#conns]) this.#kill(conn, err, false);
  }

  #finish(p: Pending, err: Error | undefined, reply?: Buffer): void {
    if (p.done) return;
    p.done = true;
    p.signal.removeEventListener('abort', p);
    const conn = p.conn;
    if (conn) {
      conn.pending.remove(p);
      const qi = conn.queued.length > 0 ? conn.queued.indexOf(p) : -1;
      if (qi >= 0) conn.queued.splice(qi, 1);
      this.#maybeIdle(conn);
    }
    if (err) p.to.onError(err);
    else p.to.onReply(reply!);
  }

  #aborted(p: Pending): void {
    const conn = p.conn;
    const silent = conn !== undefined && conn.open && p.writtenAt > 0 && conn.lastReadAt < p.writtenAt;
    this.#finish(p, abortError(p.signal, 'waiting for reply from', this.address));
    if (silent && conn && p.signal.reason instanceof Error && p.signal.reason.name === 'TimeoutError') {
      // Nothing arrived on this connection since the query left: treat it as dead.
      this.#kill(conn, upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'connection silent, dropped; reading reply from', this.address), true);
    }
  }

  #inFlight(conn: Connection): number {
    return conn.pending.size + conn.queued.length;
  }

  #dispatch(p: Pending): void {
    let conn: Connection | undefined;
    for (const c of this.#conns) {
      if (!c.dead && this.#inFlight(c) < this.#tuning.maxInFlightPerConnection) {
        conn = c;
        break;
      }
    }
    if (!conn) {
      if (this.#conns.length >= this.#tuning.maxConnections) {
        this.#finish(p, upstreamError(ErrorCodes.OVERLOADED, `${this.#tuning.maxConnections} connections full; sending query to`, this.address));
        return;
      }
      conn = this.#open();
    }
    p.conn = conn;
    conn.idleSince = -1;
    if (conn.open) this.#write(conn, p);
    else conn.queued.push(p);
  }

  #open(): Connection {
    const conn = new Connection(this.#tuning.maxInFlightPerConnection);
    this.#conns.push(conn);
    this.connectionsOpened++;
    const onread: OnReadOpts = {
      buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
      callback: (n: number, buf: Uint8Array): boolean => {
        if (!conn.dead) this.#onData(conn, (buf as Buffer).subarray(0, n), true);
        return true;
      },
    };
    this.#connect(this.#tuning.connectTimeoutMs, onread).then(
      (socket) => {
        if (conn.dead || this.#closed) {
          socket.destroy();
          return;
        }
        conn.socket = socket;
        conn.open = true;
        this.#onConnection?.(this.address, 1);
        socket.setNoDelay?.(true);
        socket.on('data', (chunk: Buffer) => this.#onData(conn, chunk, false));
        socket.on('error', (err) => this.#kill(conn, upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'reading reply from', this.address, err), true));
        socket.on('close', () => this.#kill(conn, upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'connection closed by', this.address), true));
        socket.on('end', () => socket.end());
        const queued = conn.queued.splice(0);
        for (const p of queued) {
          if (!p.done) this.#write(conn, p, false);
        }
        this.#maybeIdle(conn);
      },
      (err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        this.#kill(conn, e, false);
      },
    );
    return conn;
  }

  #write(conn: Connection, p: Pending, reused = true): void {
    let id = randomId();
    for (let guard = 0; conn.pending.has(id) && guard < 65536; guard++) id = (id + 1) & 0xffff;
    p.id = id;
    p.reused = reused;
    conn.pending.add(p);
    // Queries written in the same turn of the event loop (every datagram libuv read in one
    // poll) leave together in the check phase. setImmediate, not nextTick: Node drains
    // nextTicks after every datagram's callback.
    if (conn.outbox.push(p) === 1) setImmediate(flush, conn);
  }

  /**
   * Bytes received on a connection. `inPlace`: `chunk` is a view of the
   * connection's read buffer, valid only during this call, so whatever is
   * left of it (a message not complete yet) is copied before returning.
   * With nothing carried over from an earlier read (the usual case), the
   * messages are read straight out of `chunk`: each reply is copied once, out
   * of the read buffer, and nothing else is allocated per message.
   */
  #onData(conn: Connection, chunk: Buffer, inPlace: boolean): void {
    conn.lastReadAt = monotonicMs();
    if (conn.buffered === 0) {
      const n = chunk.length;
      let off = 0;
      while (n - off >= 2) {
        const end = off + 2 + ((chunk[off]! << 8) | chunk[off + 1]!);
        if (end > n) break;
        if (!this.#deliver(conn, chunk, off + 2, end)) return;
        off = end;
      }
      if (off < n) {
        const rest = chunk.subarray(off);
        conn.chunks.push(inPlace ? Buffer.from(rest) : rest);
        conn.buffered = rest.length;
      }
      return;
    }
    conn.chunks.push(chunk);
    conn.buffered += chunk.length;
    this.#frames(conn);
    // What is still buffered ends with (a part of) this chunk: the older chunks came first.
    if (inPlace && conn.buffered > 0 && conn.chunks.length > 0) {
      const last = conn.chunks.length - 1;
      conn.chunks[last] = Buffer.from(conn.chunks[last]!);
    }
  }

  /** Reads every complete message buffered on a connection and settles its exchange. */
  #frames(conn: Connection): void {
    for (;;) {
      if (conn.need < 0) {
        if (conn.buffered < 2) return;
        conn.need = take(conn, 2).readUInt16BE(0);
      }
      if (conn.buffered < conn.need) return;
      const frame = take(conn, conn.need);
      conn.need = -1;
      if (!this.#deliver(conn, frame, 0, frame.length)) return;
    }
  }

  /**
   * Settles the exchange a message (`buf[start, end)`) answers, if it is in
   * flight and asks the same question; false if the message killed the
   * connection (shorter than a DNS header).
   */
  #deliver(conn: Connection, buf: Buffer, start: number, end: number): boolean {
    const len = end - start;
    if (len < 12) {
      this.#kill(conn, upstreamError(ErrorCodes.UPSTREAM_BAD_REPLY, `reply of ${len} bytes, shorter than a DNS header, from`, this.address), false);
      return false;
    }
    const p = conn.pending.get((buf[start]! << 8) | buf[start + 1]!);
    if (!p) return true;
    const reply = Buffer.allocUnsafe(len);
    buf.copy(reply, 0, start, end);
    if (!matchesQuestion(p.query, p.qEnd, reply)) return true;
    reply.writeUInt16BE(p.originalId, 0);
    this.#finish(p, undefined, reply);
    return true;
  }

  #maybeIdle(conn: Connection): void {
    if (!conn.open || conn.dead || this.#inFlight(conn) > 0) return;
    conn.idleSince = monotonicMs();
    if (conn.idleTimer === undefined) this.#armIdle(conn, this.#tuning.idleTimeoutMs);
  }

  /** The idle timer, `ms` from now: closes the connection if it is idle then and has been for `idleTimeoutMs`. */
  #armIdle(conn: Connection, ms: number): void {
    conn.idleTimer = setTimeout(() => {
      conn.idleTimer = undefined;
      if (conn.dead || conn.idleSince < 0 || this.#inFlight(conn) > 0) return; // busy: its next idle spell arms it again
      const left = conn.idleSince + this.#tuning.idleTimeoutMs - monotonicMs();
      if (left > 0) this.#armIdle(conn, left);
      else this.#kill(conn, upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'idle connection closed to', this.address), false);
    }, Math.max(1, Math.ceil(ms)));
    conn.idleTimer.unref();
  }

  /** Removes a connection, closes its socket and settles what was in flight on it. */
  #kill(conn: Connection, err: Error, mayRetry: boolean): void {
    if (conn.dead) return;
    conn.dead = true;
    if (conn.idleTimer) clearTimeout(conn.idleTimer);
    const i = this.#conns.indexOf(conn);
    if (i >= 0) this.#conns.splice(i, 1);
    if (conn.socket) {
      conn.socket.destroy();
      this.#onConnection?.(this.address, -1);
    }
    const victims = [...conn.pending.values(), ...conn.queued];
    conn.pending.clear();
    conn.queued.length = 0;
    conn.outbox.length = 0;
    for (const p of victims) {
      if (p.done) continue;
      p.conn = undefined;
      if (mayRetry && !this.#closed && p.reused && !p.retried) {
        p.retried = true;
        this.#dispatch(p);
      } else {
        this.#finish(p, err);
      }
    }
  }
}

/** Removes and returns the first `n` buffered bytes of a connection. */
function take(conn: Connection, n: number): Buffer {
  conn.buffered -= n;
  const first = conn.chunks[0]!;
  if (first.length === n) {
    conn.chunks.shift();
    return first;
  }
  if (first.length > n) {
    conn.chunks[0] = first.subarray(n);
    return first.subarray(0, n);
  }
  const out = Buffer.allocUnsafe(n);
  let off = 0;
  while (off < n) {
    const c = conn.chunks[0]!;
    const k = Math.min(c.length, n - off);
    c.copy(out, off, 0, k);
    off += k;
    if (k === c.length) conn.chunks.shift();
    else conn.chunks[0] = c.subarray(k);
  }
  return out;
}
