/**
 * The TCP listener (RFC 7766, RFC 1035 §4.2.2): each message has a 2-byte
 * length prefix; a connection carries many queries, answered in any order
 * as they complete; idle connections are closed; connections and per-
 * connection pipelined queries are capped, and so are the reply bytes waiting
 * for a client that does not read them (reading its queries pauses).
 */
import net from 'node:net';
import { ErrorCodes, SidecarError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { listenOn, type HostPort } from './address.ts';
import { isPending } from '../pipeline/stage.ts';
import { after } from '../pipeline/deferred.ts';
import { answer, type HandlerDeps, type Reply } from './handle.ts';

/** TCP listener limits. */
export interface TcpLimits {
  /** Milliseconds without traffic before an idle connection is closed; also the most a half-received message may take. */
  readonly idleTimeoutMs: number;
  /** Most connections open at once; further connections are closed at accept. */
  readonly maxConnections: number;
  /** Most queries in flight on one connection; more are answered SERVFAIL at once. */
  readonly maxPipelined: number;
}

/** A bound TCP listener. */
export interface TcpListener {
  /** The address actually bound. */
  readonly address: HostPort;
  /** Connections open now. */
  connections(): number;
  /** Stops accepting connections and reading new queries; answers what is in flight, then ends each connection. */
  stopAccepting(): void;
  /** Destroys every connection and closes the server. Idempotent. */
  close(): Promise<void>;
}

/** Binds a TCP listener on `at` and answers through `deps`. */
export async function listenTcp(at: HostPort, deps: HandlerDeps, limits: TcpLimits, log: Logger): Promise<TcpListener> {
  const open = new Set<Connection>();
  let accepting = true;
  const server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
    if (!accepting) {
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, deps, limits, log, () => open.delete(conn));
    open.add(conn);
  });
  server.maxConnections = limits.maxConnections;
  server.on('error', (err) => log('warn', 'TCP listener error', { error: err.message }));
  await listenOn(server, at, { backlog: 511, ipv6Only: at.family === 6 }).catch((err: unknown) => {
    throw new SidecarError(ErrorCodes.LISTEN_FAILED, `binding TCP ${at.host}:${at.port}`, { cause: err });
  });
  const bound = server.address() as net.AddressInfo;
  let closed = false;
  return {
    address: { host: at.host, port: bound.port, family: at.family },
    connections: () => open.size,
    stopAccepting() {
      accepting = false;
      server.close();
      for (const conn of open) conn.drain();
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      accepting = false;
      for (const conn of open) conn.socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Bytes of replies one connection may have waiting to be sent before the
 * sidecar stops reading that client's queries (until they drain): a client
 * that pipelines queries and never reads the answers cannot grow memory.
 */
const MAX_UNSENT_BYTES = 256 * 1024;

/** One client connection: frames in, replies out as they complete. */
class Connection {
  readonly socket: net.Socket;
  private readonly deps: HandlerDeps;
  private readonly limits: TcpLimits;
  private readonly log: Logger;
  private pending: Buffer = Buffer.alloc(0);
  /** When the first byte of a not yet complete message arrived (ms), 0 when none. */
  private partialSince = 0;
  private inflight = 0;
  private draining = false;
  /** Reading is paused because too many reply bytes wait to be sent. */
  private readPaused = false;

  constructor(socket: net.Socket, deps: HandlerDeps, limits: TcpLimits, log: Logger, onClose: () => void) {
    this.socket = socket;
    this.deps = deps;
    this.limits = limits;
    this.log = log;
    socket.setTimeout(limits.idleTimeoutMs);
    socket.on('timeout', () => this.onTimeout());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => {
      // The client is done sending; finish what is in flight, then close.
      this.draining = true;
      this.maybeEnd();
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', onClose);
  }

  /** Stops reading; ends the connection once in-flight queries are answered. */
  drain(): void {
    this.draining = true;
    this.socket.pause();
    this.maybeEnd();
  }

  private onData(chunk: Buffer): void {
    if (this.draining) return;
    if (this.partialSince > 0 && Date.now() - this.partialSince >= this.limits.idleTimeoutMs) {
      // A message dripped slower than the idle timeout (slowloris): cut it off.
      this.log('debug', 'closing TCP connection: message took longer than the idle timeout', { remote: this.socket.remoteAddress });
      this.socket.destroy();
      return;
    }
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let offset = 0;
    while (this.pending.length - offset >= 2) {
      const len = this.pending.readUInt16BE(offset);
      if (this.pending.length - offset - 2 < len) break;
      const msg = this.pending.subarray(offset + 2, offset + 2 + len);
      offset += 2 + len;
      this.query(msg);
    }
    this.pending = offset === this.pending.length ? Buffer.alloc(0) : this.pending.subarray(offset);
    this.partialSince = this.pending.length > 0 ? this.partialSince || Date.now() : 0;
  }

  private query(msg: Buffer): void {
    if (this.inflight >= this.limits.maxPipelined) {
      this.send(answer(msg, 'tcp', this.deps, true) as Reply);
      return;
    }
    this.inflight++;
    const reply = answer(msg, 'tcp', this.deps);
    if (isPending(reply)) after(reply, this, Connection.answeredOn);
    else this.answered(reply);
  }

  /** {@link answered} as a pending reply's continuation (made once, not a closure per query). */
  private static readonly answeredOn = (conn: Connection, reply: Reply): void => conn.answered(reply);

  private answered(reply: Reply): void {
    this.inflight--;
    this.send(reply);
    this.maybeEnd();
  }

  private send(reply: Buffer | null): void {
    if (!reply || this.socket.destroyed || !this.socket.writable) return;
    const framed = Buffer.allocUnsafe(reply.length + 2);
    framed.writeUInt16BE(reply.length, 0);
    reply.copy(framed, 2);
    this.socket.write(framed);
    if (this.socket.writableLength > MAX_UNSENT_BYTES && !this.readPaused) {
      // The client is not reading its replies: stop reading its queries until it does, so replies
      // waiting in memory stay bounded. The idle timeout ends a connection that never catches up.
      this.readPaused = true;
      this.socket.pause();
      this.socket.once('drain', () => {
        this.readPaused = false;
        if (!this.draining && !this.socket.destroyed) this.socket.resume();
      });
    }
  }

  private onTimeout(): void {
    const partialTooOld = this.partialSince > 0 && Date.now() - this.partialSince >= this.limits.idleTimeoutMs;
    if (this.inflight === 0 || partialTooOld) {
      this.log('debug', 'closing idle TCP connection', { remote: this.socket.remoteAddress, partial: partialTooOld });
      this.socket.destroy();
    }
  }

  private maybeEnd(): void {
    if (this.draining && this.inflight === 0 && !this.socket.destroyed) this.socket.end();
  }
}
