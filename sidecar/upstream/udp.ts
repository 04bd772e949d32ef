/**
 * Plain DNS over UDP (RFC 1035 §4.2.1) with the anti-spoofing measures of
 * RFC 5452: a fresh socket per exchange (a random source port chosen by the
 * kernel), a random message ID, and a reply accepted only when its source, ID
 * and question match. Anything else is ignored and the exchange keeps waiting
 * until the caller's deadline.
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import { ErrorCodes } from '../errors.ts';
import { abortError, checkQuery, matchesQuestion, randomId, upstreamError } from './message.ts';
import { formatHostPort, literalLookup } from '../listener/address.ts';
import { TcpUpstream } from './tcp.ts';
import type { StreamTuning } from './stream.ts';
import type { Upstream } from './upstream.ts';

/** Options of {@link UdpUpstream}. */
export interface UdpOptions {
  /** The largest number of exchanges in flight (each holds one socket); beyond it OVERLOADED. Default 2048. */
  readonly maxInFlight?: number;
  /** Settings for the TCP upstream of {@link UdpUpstream.tcpFallback}. */
  readonly tcp?: StreamTuning;
}

/**
 * A UDP upstream at an IP address. Replies with TC set are returned as they
 * are; {@link UdpUpstream.tcpFallback} gives the TCP upstream of the same
 * server, which a group uses to repeat a truncated exchange.
 */
export class UdpUpstream implements Upstream {
  readonly address: string;
  readonly #host: string;
  readonly #port: number;
  readonly #type: 'udp4' | 'udp6';
  readonly #maxInFlight: number;
  readonly #tcpOptions: StreamTuning;
  readonly #active = new Set<(err: Error) => void>();
  #tcp: TcpUpstream | undefined;
  #closed = false;

  /** `host` must be an IP address (never resolved here). */
  constructor(host: string, port: number, options: UdpOptions = {}) {
    this.#host = host;
    this.#port = port;
    this.#type = isIPv6(host) ? 'udp6' : 'udp4';
    this.address = `udp://${formatHostPort({ host, port })}`;
    this.#maxInFlight = options.maxInFlight ?? 2048;
    this.#tcpOptions = options.tcp ?? {};
  }

  /** The TCP upstream for the same server (created once, closed with this one). */
  tcpFallback(): Upstream {
    this.#tcp ??= new TcpUpstream(this.#host, this.#port, this.#tcpOptions);
    return this.#tcp;
  }

  exchange(query: Buffer, signal: AbortSignal): Promise<Buffer> {
    const address = this.address;
    if (this.#closed) return Promise.reject(upstreamError(ErrorCodes.CLOSED, 'sending query to closed upstream', address));
    if (signal.aborted) return Promise.reject(abortError(signal, 'sending query to', address));
    if (this.#active.size >= this.#maxInFlight) {
      return Promise.reject(upstreamError(ErrorCodes.OVERLOADED, `${this.#maxInFlight} exchanges already in flight to`, address));
    }
    let qEnd: number;
    try {
      qEnd = checkQuery(query, address);
    } catch (err) {
      return Promise.reject(err);
    }
    const originalId = query.readUInt16BE(0);
    const id = randomId();
    const wire = Buffer.allocUnsafe(query.length);
    query.copy(wire);
    wire.writeUInt16BE(id, 0);
    const host = this.#host;
    const port = this.#port;

    return new Promise<Buffer>((resolve, reject) => {
      const socket = dgram.createSocket({ type: this.#type, lookup: literalLookup });
      let done = false;
      const finish = (err: Error | undefined, reply?: Buffer): void => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        this.#active.delete(finish);
        try {
          socket.close();
        } catch {
          // already closed
        }
        if (err) reject(err);
        else resolve(reply!);
      };
      const onAbort = (): void => finish(abortError(signal, 'waiting for reply from', address));
      signal.addEventListener('abort', onAbort, { once: true });
      this.#active.add(finish);
      socket.on('error', (err) => finish(upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'exchanging with', address, err)));
      socket.on('message', (msg, rinfo) => {
        // The socket is connected, so the kernel filters the source too; check anyway.
        if (rinfo.port !== port || rinfo.address.toLowerCase() !== host.toLowerCase()) return;
        if (msg.length < 12 || msg.readUInt16BE(0) !== id) return;
        if (!matchesQuestion(query, qEnd, msg)) return;
        msg.writeUInt16BE(originalId, 0);
        finish(undefined, msg);
      });
      socket.connect(port, host, (err?: Error) => {
        if (err) {
          finish(upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'connecting a UDP socket to', address, err));
          return;
        }
        if (done) return;
        socket.send(wire, (sendErr) => {
          if (sendErr) finish(upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'sending query to', address, sendErr));
        });
      });
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const err = upstreamError(ErrorCodes.CLOSED, 'closing upstream', this.address);
    for (const finish of [...this.#active]) finish(err);
    await this.#tcp?.close();
  }
}
