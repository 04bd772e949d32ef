/**
 * Plain DNS over UDP (RFC 1035 §4.2.1) with the anti-spoofing measures of
 * RFC 5452, over a pool of connected sockets:
 *
 * - `sockets` sockets are open at once, each bound by the kernel to a random
 *   ephemeral port and connected to the server; every query goes out on one
 *   of them picked at random, so the source port of a query in flight is one
 *   of several, unknown off the path.
 * - A socket carries a bounded number of queries (a random count between half
 *   of `socketQueries` and `socketQueries`) and is used for `socketSeconds` at
 *   most; then it is retired: it takes no new query, still receives the
 *   replies of those in flight, and closes when the last one is settled. A
 *   fresh socket (a fresh random port) takes its place.
 * - Every query gets a random ID from a CSPRNG pool, unique among the IDs in
 *   flight on its socket.
 * - A reply is accepted only from the server's address and port (the kernel
 *   filters a connected socket's peer; checked again), with the ID of a query
 *   in flight on that socket and that query's question. Anything else is
 *   dropped and reported (`onDroppedReply`: the spoofing signal), and the
 *   query keeps waiting until the caller's deadline.
 */
import { monotonicMs } from '../runtime/clock.ts';
import dgram from 'node:dgram';
import { ipFamily } from '../net/ip.ts';
import { ErrorCodes } from '../errors.ts';
import { abortError, checkQuery, matchesQuestion, randomId, upstreamError } from './message.ts';
import { formatHostPort, literalLookup } from '../listener/address.ts';
import { TcpUpstream } from './tcp.ts';
import type { StreamTuning } from './stream.ts';
import { exchangeBySend, type ExchangeReceiver, type ExchangeSignal, type Upstream } from './upstream.ts';
import { LinkedList, mapWithout } from '../runtime/tables.ts';

/** The defaults of {@link UdpOptions}' pool settings (upstream README, "UDP source ports"). */
export const UDP_POOL_DEFAULTS = {
  sockets: 8,
  socketQueries: 32,
  socketSeconds: 2,
} as const;

/** Options of {@link UdpUpstream}. */
export interface UdpOptions {
  /** The largest number of exchanges in flight; beyond it OVERLOADED. Default 2048. */
  readonly maxInFlight?: number;
  /** Sockets (source ports) open at once, each query on one of them at random. Default 8. */
  readonly sockets?: number;
  /** A socket is retired after a random count of queries between half this and this. Default 32; at least 1. */
  readonly socketQueries?: number;
  /** A socket takes no new query once this many seconds old. Default 2. */
  readonly socketSeconds?: number;
  /** Told of every datagram dropped because it matched no query in flight (source, ID or question). */
  readonly onDroppedReply?: (upstream: string) => void;
  /** Settings for the TCP upstream of {@link UdpUpstream.tcpFallback}. */
  readonly tcp?: StreamTuning;
}

/** One exchange in flight: the abort listener of its signal too. */
class Exchange {
  readonly sock: PoolSocket;
  readonly id: number;
  readonly originalId: number;
  readonly query: Buffer;
  readonly qEnd: number;
  readonly signal: ExchangeSignal;
  readonly to: ExchangeReceiver;

  constructor(sock: PoolSocket, id: number, query: Buffer, qEnd: number, signal: ExchangeSignal, to: ExchangeReceiver) {
    this.sock = sock;
    this.id = id;
    this.originalId = query.readUInt16BE(0);
    this.query = query;
    this.qEnd = qEnd;
    this.signal = signal;
    this.to = to;
  }

  /** The signal aborted: the deadline passed or the caller gave up. */
  handleEvent(): void {
    this.sock.settle(this, abortError(this.signal, 'waiting for reply from', this.sock.owner.address));
  }
}

/** One connected socket of the pool and the exchanges in flight on it. */
class PoolSocket {
  readonly owner: UdpUpstream;
  readonly socket: dgram.Socket;
  /** A new Map each time it empties (runtime/tables.ts). */
  pending = new Map<number, Exchange>();
  /** Queries it may still send before it is retired. */
  left: number;
  /** monotonicMs() after which it takes no new query. */
  readonly expiresAt: number;
  /** Queries sent before the connect finished (sent then). */
  waiting: Buffer[] | undefined = [];
  retired = false;
  closed = false;
  /** Its neighbours in its upstream's list of open sockets. */
  listPrev: PoolSocket | null = null;
  listNext: PoolSocket | null = null;
  /** Retires the socket when it reaches its age (an idle socket then closes at once). */
  readonly #expiry: NodeJS.Timeout;

  constructor(owner: UdpUpstream, type: 'udp4' | 'udp6', host: string, port: number, queries: number, seconds: number) {
    this.owner = owner;
    const half = Math.ceil(queries / 2);
    this.left = half + (randomId() % (queries - half + 1));
    this.expiresAt = monotonicMs() + seconds * 1000;
    const socket = (this.socket = dgram.createSocket({ type, lookup: literalLookup }));
    // An ICMP error (port unreachable: nothing listens there) comes back as the socket's pending error, which
    // the kernel wakes the socket's reads for: node:dgram's read reports it here and the socket's exchanges
    // fail at once. The sends take no callback, so node:dgram makes no send request and no nextTick per query
    // (test/bench/README.md, "Misses: the pipeline's promises"). A send that takes the pending error first
    // drops it, and the exchanges then end at their deadline instead, as they do when no ICMP error comes at
    // all (a host that is down, or the kernel's rate limit on ICMP errors).
    socket.on('error', (err) => this.fail(upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'exchanging with', owner.address, err)));
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    socket.unref();
    this.#expiry = setTimeout(() => owner.retire(this), seconds * 1000);
    this.#expiry.unref();
    // connect() binds to port 0 first: the kernel picks a random ephemeral port.
    socket.connect(port, host, (err?: Error) => {
      if (err) {
        this.fail(upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'connecting a UDP socket to', owner.address, err));
        return;
      }
      const waiting = this.waiting!;
      this.waiting = undefined;
      if (this.closed) return;
      for (const wire of waiting) socket.send(wire);
    });
  }

  /** Sends a query (after the connect, when it is still under way). */
  send(ex: Exchange, wire: Buffer): void {
    if (this.pending.size === 0) this.socket.ref();
    this.pending.set(ex.id, ex);
    // Removed when the exchange settles, so no `once` (an options object checked per call).
    ex.signal.addEventListener('abort', ex);
    if (this.waiting) this.waiting.push(wire);
    else this.socket.send(wire);
  }

  /** Settles an exchange with a reply or an error; a retired socket closes with its last one. */
  settle(ex: Exchange, err: Error | undefined, reply?: Buffer): void {
    if (this.pending.get(ex.id) !== ex) return;
    this.pending = mapWithout(this.pending, ex.id);
    ex.signal.removeEventListener('abort', ex);
    this.owner.inFlight--;
    if (this.pending.size === 0) {
      if (this.retired) this.close();
      else if (this.expiresAt <= monotonicMs()) this.owner.retire(this);
      else this.socket.unref();
    }
    if (err) ex.to.onError(err);
    else ex.to.onReply(reply!);
  }

  /** Fails every exchange on this socket and closes it (an ICMP error, a failed send or connect, the upstream closing). */
  fail(err: Error): void {
    this.owner.retire(this);
    for (const ex of [...this.pending.values()]) this.settle(ex, err);
    this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.retired = true;
    this.owner.forget(this);
    clearTimeout(this.#expiry);
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }

  #onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const owner = this.owner;
    // The socket is connected, so the kernel filters the source too; check anyway.
    if (rinfo.port !== owner.port || (rinfo.address !== owner.host && rinfo.address.toLowerCase() !== owner.host)) {
      owner.dropped();
      return;
    }
    const ex = msg.length >= 12 ? this.pending.get(msg.readUInt16BE(0)) : undefined;
    if (ex === undefined || !matchesQuestion(ex.query, ex.qEnd, msg)) {
      owner.dropped();
      return;
    }
    msg.writeUInt16BE(ex.originalId, 0);
    this.settle(ex, undefined, msg);
  }
}

/**
 * A UDP upstream at an IP address, over a pool of connected sockets (see the
 * module comment). Replies with TC set are returned as they are;
 * {@link UdpUpstream.tcpFallback} gives the TCP upstream of the same server,
 * which a group uses to repeat a truncated exchange.
 */
export class UdpUpstream implements Upstream {
  readonly address: string;
  /** The server's IP, lower-case (compared with a datagram's source). */
  readonly host: string;
  readonly port: number;
  /** Exchanges in flight, all sockets. */
  inFlight = 0;
  /** Sockets opened so far (tests and diagnostics). */
  socketsOpened = 0;
  readonly #type: 'udp4' | 'udp6';
  readonly #maxInFlight: number;
  readonly #socketQueries: number;
  readonly #socketSeconds: number;
  readonly #onDroppedReply: ((upstream: string) => void) | undefined;
  readonly #tcpOptions: StreamTuning;
  /** The sockets taking new queries; an empty slot gets a fresh socket when picked. */
  readonly #slots: (PoolSocket | undefined)[];
  /**
   * Every open socket, retired ones still waiting for replies included: a list linked through the sockets, not
   * a Set, whose rehashed tables V8 would keep in the old generation with pointers to the young sockets open
   * then until a full collection (runtime/tables.ts, IdTable).
   */
  readonly #open = new LinkedList<PoolSocket>();
  #tcp: TcpUpstream | undefined;
  #closed = false;

  /** `host` must be an IP address (never resolved here). */
  constructor(host: string, port: number, options: UdpOptions = {}) {
    this.host = host.toLowerCase();
    this.port = port;
    // ipFamily tries IPv6's long expression only for a text with a colon (net/ip.ts).
    this.#type = ipFamily(host) === 6 ? 'udp6' : 'udp4';
    this.address = `udp://${formatHostPort({ host, port })}`;
    this.#maxInFlight = options.maxInFlight ?? 2048;
    this.#socketQueries = Math.max(1, Math.floor(options.socketQueries ?? UDP_POOL_DEFAULTS.socketQueries));
    this.#socketSeconds = options.socketSeconds ?? UDP_POOL_DEFAULTS.socketSeconds;
    this.#slots = new Array<PoolSocket | undefined>(Math.max(1, Math.floor(options.sockets ?? UDP_POOL_DEFAULTS.sockets))).fill(undefined);
    this.#onDroppedReply = options.onDroppedReply;
    this.#tcpOptions = options.tcp ?? {};
  }

  /** The TCP upstream for the same server (created once, closed with this one). */
  tcpFallback(): Upstream {
    this.#tcp ??= new TcpUpstream(this.host, this.port, this.#tcpOptions);
    return this.#tcp;
  }

  exchange(query: Buffer, signal: ExchangeSignal): Promise<Buffer> {
    return exchangeBySend(this, query, signal);
  }

  send(query: Buffer, signal: ExchangeSignal, to: ExchangeReceiver): void {
    const address = this.address;
    if (this.#closed) return to.onError(upstreamError(ErrorCodes.CLOSED, 'sending query to closed upstream', address));
    if (signal.aborted) return to.onError(abortError(signal, 'sending query to', address));
    if (this.inFlight >= this.#maxInFlight) {
      return to.onError(upstreamError(ErrorCodes.OVERLOADED, `${this.#maxInFlight} exchanges already in flight to`, address));
    }
    let qEnd: number;
    try {
      qEnd = checkQuery(query, address);
    } catch (err) {
      return to.onError(err);
    }
    const sock = this.#pick();
    let id = randomId();
    while (sock.pending.has(id)) id = randomId();
    const wire = Buffer.allocUnsafe(query.length);
    query.copy(wire);
    wire.writeUInt16BE(id, 0);
    this.inFlight++;
    sock.send(new Exchange(sock, id, query, qEnd, signal, to), wire);
    if (--sock.left <= 0) this.retire(sock);
  }

  /** A socket for the next query: a random slot's, replaced when it is retired or too old. */
  #pick(): PoolSocket {
    const slots = this.#slots;
    const i = slots.length === 1 ? 0 : randomId() % slots.length;
    let sock = slots[i];
    if (sock !== undefined && sock.expiresAt <= monotonicMs()) {
      this.retire(sock);
      sock = undefined;
    }
    if (sock === undefined) {
      sock = new PoolSocket(this, this.#type, this.host, this.port, this.#socketQueries, this.#socketSeconds);
      slots[i] = sock;
      this.#open.add(sock);
      this.socketsOpened++;
    }
    return sock;
  }

  /** Takes a socket out of the pool: no new query; it closes once nothing is in flight on it. */
  retire(sock: PoolSocket): void {
    if (sock.retired) return;
    sock.retired = true;
    const i = this.#slots.indexOf(sock);
    if (i >= 0) this.#slots[i] = undefined;
    if (sock.pending.size === 0) sock.close();
  }

  /** A closed socket leaves the pool's bookkeeping. */
  forget(sock: PoolSocket): void {
    this.#open.remove(sock);
  }

  /** A datagram matched no query in flight. */
  dropped(): void {
    this.#onDroppedReply?.(this.address);
  }

  /** Sockets open now, retired ones still waiting for replies included (tests and diagnostics). */
  get openSockets(): number {
    return this.#open.size;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const err = upstreamError(ErrorCodes.CLOSED, 'closing upstream', this.address);
    for (const sock of this.#open.toArray()) sock.fail(err);
    await this.#tcp?.close();
  }
}
