/**
 * Binds the sidecar's listeners: UDP and TCP on each listen address, on the
 * same port, and stops and closes them as one.
 */
import { ErrorCodes, errorCode } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { HostPort } from './address.ts';
import type { HandlerDeps } from './handle.ts';
import { listenTcp, type TcpLimits, type TcpListener } from './tcp.ts';
import { listenUdp, type UdpListener } from './udp.ts';

/** Tries of another kernel-chosen port when port 0's TCP side is taken. */
const PORT_ZERO_TRIES = 20;

/** The listeners of one sidecar. */
export interface Listeners {
  /** The addresses served, with the ports actually bound (UDP and TCP share them). */
  readonly addresses: readonly HostPort[];
  /** Stops taking new queries and connections; those in flight are still answered. */
  stopAccepting(): void;
  /** Closes every socket. Idempotent. */
  close(): Promise<void>;
}

/**
 * Binds UDP then TCP on each address of `listen`. With port 0 the TCP
 * listener takes the port the kernel gave UDP, which another socket may
 * hold already: then another kernel-chosen port is tried.
 *
 * @throws SidecarError LISTEN_FAILED when an address cannot be bound (whatever was bound is closed).
 */
export async function bindListeners(listen: readonly HostPort[], deps: HandlerDeps, limits: TcpLimits, log: Logger): Promise<Listeners> {
  const udp: UdpListener[] = [];
  const tcp: TcpListener[] = [];
  const close = async () => {
    await Promise.all([...udp.splice(0).map((l) => l.close()), ...tcp.splice(0).map((l) => l.close())]);
  };
  try {
    for (const at of listen) {
      for (let attempt = 0; ; attempt++) {
        const u = await listenUdp(at, deps, log);
        try {
          tcp.push(await listenTcp(u.address, deps, limits, log));
        } catch (err) {
          await u.close();
          if (at.port !== 0 || attempt >= PORT_ZERO_TRIES || errorCode(err) !== ErrorCodes.LISTEN_FAILED) throw err;
          continue;
        }
        udp.push(u);
        break;
      }
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    addresses: udp.map((u) => u.address),
    stopAccepting() {
      for (const l of udp) l.stopAccepting();
      for (const l of tcp) l.stopAccepting();
    },
    close,
  };
}
