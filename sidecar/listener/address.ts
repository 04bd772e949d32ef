/**
 * ADDR:PORT parsing for listen addresses and plain DNS servers.
 */
import net from 'node:net';
import { ipFamily } from '../net/ip.ts';
import { ErrorCodes, SidecarError } from '../errors.ts';

/** A host and port; `host` is an IP literal without brackets. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
  /** 4 or 6. */
  readonly family: 4 | 6;
}

/**
 * Parses `127.0.0.1:53` or `[::1]:53`. The host must be an IP address: the
 * sidecar never resolves names to find where to listen or forward. `what`
 * names the field in the error (e.g. `--listen`).
 */
export function parseHostPort(text: string, what: string): HostPort {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:\[\]]+):(\d+)$/.exec(text);
  if (!m) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `${what}: "${text}" is not ADDR:PORT (IPv6 in brackets, e.g. [::1]:53)`);
  const host = m[1]!;
  const port = Number(m[2]);
  const family = ipFamily(host);
  if (family === 0) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `${what}: "${host}" is not an IP address`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `${what}: port ${m[2]} is out of range`);
  return { host, port, family: family as 4 | 6 };
}

/** `host:port`, with brackets for IPv6. */
export function formatHostPort(hp: { host: string; port: number }): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/**
 * The `lookup` of every node:dgram socket the sidecar makes. Those sockets
 * only ever meet IP literals (a listener binds its parsed address and
 * answers `rinfo.address`; a UDP upstream is an IP address), so this answers
 * at once with the literal itself. dgram's default is `dns.lookup`, which
 * for a literal still tests it with a regular expression and answers on the
 * next tick: for each reply sent, and twice for each upstream socket
 * (bind, connect), a tick and a closure for nothing.
 */
export function literalLookup(
  address: string,
  options: number | { family?: number | string },
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  // No isIP() here: it is the regular expression this function exists to skip. A
  // name that slipped through anyway fails in the kernel call (EINVAL), as an error.
  const family = typeof options === 'number' ? options : address.includes(':') ? 6 : 4;
  callback(null, address, family);
}

/**
 * Starts `server` listening on `at` (an IP literal; `ipv6Only`: an IPv6 address
 * takes no IPv4 connections) and resolves once it listens; rejects with the
 * bind or listen error. The socket is bound by
 * `net.BoundSocket` and handed to `listen`: `listen({ host })` looks the
 * literal up and then runs Node's IPv6 regular expression on it (a link-local
 * filter), which V8 compiles on the first run and again to machine code on the
 * second (the TCP listener, the metrics and the admin server are three listens):
 * 0.15 MiB of machine code, and compiler memory at the start-up's peak that
 * malloc's arena keeps; idle USS 0.5-0.9 MiB higher (test/bench/README.md,
 * "What the libraries cost").
 */
export function listenOn(server: net.Server, at: HostPort, opts: { readonly backlog: number; readonly ipv6Only: boolean }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let bound: net.BoundSocket;
    try {
      bound = new net.BoundSocket({ host: at.host, port: at.port, ipv6Only: opts.ipv6Only });
    } catch (err) {
      reject(err as Error);
      return;
    }
    server.once('error', reject);
    server.listen(bound, opts.backlog, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
