/**
 * Long-lived DNS client sessions for tests that send many queries: one UDP
 * socket (queries sent from it back to back race in a known order at the
 * server, which is what the concurrency cases need), and one TCP or TLS
 * connection with pipelining. Replies are matched to queries by message ID;
 * each session writes its own IDs into the queries it sends.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import { frame, onFrames } from './tcp-frames.ts';

/** A session: send a query, get its reply. */
export interface DnsSession {
  /** Sends `wire` (its ID replaced) and resolves with the reply, or rejects after `timeoutMs`. */
  query(wire: Buffer, timeoutMs?: number): Promise<Buffer>;
  /** Closes the socket; pending queries reject. Idempotent. */
  close(): void;
}

interface Pending {
  resolve(reply: Buffer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** Hands out message IDs and matches replies to the queries waiting for them. */
class Matcher {
  readonly #pending = new Map<number, Pending>();
  #next = Math.floor(Math.random() * 0x10000);

  /** A free ID and the promise of its reply. */
  take(what: string, timeoutMs: number): { id: number; reply: Promise<Buffer> } {
    let id = this.#next;
    for (let i = 0; this.#pending.has(id); i++) {
      if (i > 0xffff) throw new Error('65 536 queries in flight on one session');
      id = (id + 1) & 0xffff;
    }
    this.#next = (id + 1) & 0xffff;
    const reply = new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`no reply from ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
    });
    return { id, reply };
  }

  /** Delivers a reply to the query with its ID; replies nobody waits for are dropped. */
  deliver(reply: Buffer): void {
    if (reply.length < 2) return;
    const p = this.#pending.get(reply.readUInt16BE(0));
    if (!p) return;
    this.#pending.delete(reply.readUInt16BE(0));
    clearTimeout(p.timer);
    p.resolve(Buffer.from(reply));
  }

  /** Rejects every waiting query. */
  failAll(err: Error): void {
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}

/** `wire` with message ID `id`. */
function withId(wire: Buffer, id: number): Buffer {
  const out = Buffer.from(wire);
  out.writeUInt16BE(id, 0);
  return out;
}

/** Opens one UDP socket towards `host`:`port`; every query of the session leaves from it. */
export async function udpSession(port: number, host = '127.0.0.1'): Promise<DnsSession> {
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const matcher = new Matcher();
  sock.on('message', (msg) => matcher.deliver(msg));
  sock.on('error', (err) => matcher.failAll(err));
  await new Promise<void>((resolve) => sock.bind(0, host.includes(':') ? '::1' : '127.0.0.1', resolve));
  let closed = false;
  return {
    query(wire, timeoutMs = 3000) {
      const { id, reply } = matcher.take(`udp ${host}:${port}`, timeoutMs);
      sock.send(withId(wire, id), port, host);
      return reply;
    },
    close() {
      if (closed) return;
      closed = true;
      matcher.failAll(new Error('session closed'));
      sock.close();
    },
  };
}

/** Where a stream session connects: plain TCP, or TLS with the CA that signed the server's certificate. */
export interface StreamTarget {
  readonly port: number;
  readonly host?: string;
  readonly tls?: { readonly ca: Buffer; readonly servername: string };
}

/**
 * A TCP or TLS session: one connection, queries pipelined on it (RFC 7766).
 * When the server closes it (idle timeout), the next query opens a new one;
 * queries in flight on a closed connection reject.
 */
export function streamSession(target: StreamTarget): DnsSession {
  const host = target.host ?? '127.0.0.1';
  const what = `${target.tls ? 'tls' : 'tcp'} ${host}:${target.port}`;
  let conn: { sock: net.Socket; matcher: Matcher; ready: Promise<void> } | undefined;
  let closed = false;
  const open = () => {
    const matcher = new Matcher();
    const sock = target.tls
      ? tls.connect({ host, port: target.port, ca: target.tls.ca, servername: target.tls.servername })
      : net.connect({ host, port: target.port });
    const ready = new Promise<void>((resolve, reject) => {
      sock.once(target.tls ? 'secureConnect' : 'connect', resolve);
      sock.once('error', reject);
    });
    ready.catch(() => {});
    onFrames(sock, (msg) => matcher.deliver(msg));
    const c = { sock, matcher, ready };
    const fail = (err: Error) => {
      matcher.failAll(err);
      if (conn === c) conn = undefined;
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error(`${what}: connection closed`)));
    return c;
  };
  return {
    async query(wire, timeoutMs = 3000) {
      if (closed) throw new Error(`${what}: session closed`);
      conn ??= open();
      const c = conn;
      const { id, reply } = c.matcher.take(what, timeoutMs);
      reply.catch(() => {}); // handled by the caller; this only keeps a failure during the connect from going unhandled
      await c.ready;
      c.sock.write(frame(withId(wire, id)));
      return reply;
    },
    close() {
      closed = true;
      conn?.sock.destroy();
      conn = undefined;
    },
  };
}
