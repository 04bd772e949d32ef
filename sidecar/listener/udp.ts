/**
 * The UDP listener: one socket per listen address; each datagram is one
 * query, answered from the same socket to the sender.
 */
import dgram from 'node:dgram';
import { ErrorCodes, SidecarError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { literalLookup, type HostPort } from './address.ts';
import { isPending } from '../pipeline/stage.ts';
import { after } from '../pipeline/deferred.ts';
import { answer, type HandlerDeps, type Reply } from './handle.ts';

/** A bound UDP listener. */
export interface UdpListener {
  /** The address actually bound (port resolved when 0 was asked). */
  readonly address: HostPort;
  /** Stops reading new queries; replies to queries in flight are still sent. */
  stopAccepting(): void;
  /** Closes the socket. Idempotent. */
  close(): Promise<void>;
}

/** Binds a UDP listener on `at` and answers through `deps`. */
export async function listenUdp(at: HostPort, deps: HandlerDeps, log: Logger): Promise<UdpListener> {
  const socket = dgram.createSocket({ type: at.family === 6 ? 'udp6' : 'udp4', ipv6Only: at.family === 6, lookup: literalLookup });
  let accepting = true;
  let closed = false;
  // No per-send callback: node:dgram then tries the send at once and queues no request, which a callback per
  // reply would cost; it also reports a failed send to nobody (not to 'error'). The client's retry covers it.
  const send = (reply: Reply, rinfo: dgram.RemoteInfo) => {
    if (reply && !closed) socket.send(reply, rinfo.port, rinfo.address);
  };
  const sendTo = (rinfo: dgram.RemoteInfo, reply: Reply) => send(reply, rinfo);
  socket.on('message', (msg, rinfo) => {
    if (!accepting) return;
    const reply = answer(msg, 'udp', deps);
    if (isPending(reply)) after(reply, rinfo, sendTo);
    else send(reply, rinfo);
  });
  socket.on('error', (err) => log('warn', 'UDP listener socket error', { error: err.message }));
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(new SidecarError(ErrorCodes.LISTEN_FAILED, `binding UDP ${at.host}:${at.port}`, { cause: err }));
    socket.once('error', onError);
    socket.bind(at.port, at.host, () => {
      socket.off('error', onError);
      resolve();
    });
  });
  try {
    socket.setRecvBufferSize(4 * 1024 * 1024);
  } catch {
    // The kernel caps this (net.core.rmem_max); the default still works.
  }
  const bound = socket.address();
  return {
    address: { host: at.host, port: bound.port, family: at.family },
    stopAccepting() {
      accepting = false;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      accepting = false;
      return new Promise((resolve) => socket.close(() => resolve()));
    },
  };
}
