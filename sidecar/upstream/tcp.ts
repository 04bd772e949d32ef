/**
 * Plain DNS over TCP (RFC 7766): the pipelined stream transport over
 * node:net connections to an IP address.
 */
import net from 'node:net';
import { ErrorCodes } from '../errors.ts';
import { upstreamError } from './message.ts';
import { formatHostPort } from '../listener/address.ts';
import { StreamUpstream } from './stream.ts';
import type { StreamTuning } from './stream.ts';

/**
 * Opens a TCP connection to `host`:`port` within `timeoutMs`, or rejects with
 * UPSTREAM_CONNECT (refused, reset, unreachable) or UPSTREAM_TIMEOUT. The
 * caller owns the socket. `onread`: read into the caller's buffer (stream.ts's Connector).
 */
export function connectTcp(host: string, port: number, timeoutMs: number, address: string, onread?: net.OnReadOpts): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true, ...(onread ? { onread } : {}) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(upstreamError(ErrorCodes.UPSTREAM_TIMEOUT, `connecting (${timeoutMs} ms) to`, address));
    }, timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'connecting to', address, err));
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/** A TCP upstream at an IP address (never resolved here). */
export class TcpUpstream extends StreamUpstream {
  constructor(host: string, port: number, tuning: StreamTuning = {}) {
    const address = `tcp://${formatHostPort({ host, port })}`;
    super(address, (timeoutMs, onread) => connectTcp(host, port, timeoutMs, address, onread), tuning);
  }
}
