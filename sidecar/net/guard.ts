/**
 * The connection guard of the servers any pod can reach: the sidecar's
 * metrics and probe server and the injector's HTTPS server (and the sidecar's
 * loopback admin server). Every accepted TCP connection is checked before the
 * server it belongs to spends anything on it (no TLS state, no HTTP parser):
 *
 * - one source address holds at most `perSource` connections; one more from
 *   it is closed at once, so a single hostile client cannot fill the server;
 * - all sources together hold at most `total`. At that cap a newcomer from an
 *   address that holds at least two fewer connections than the busiest one
 *   takes the place of the busiest address's oldest idle connection (no
 *   request in flight); otherwise the newcomer is closed. A global cap alone
 *   would let whoever fills it first lock everybody else out; this way the
 *   connections are shared out between addresses, and a client with few (the
 *   API server, Prometheus, the kubelet) still gets in.
 *
 * Timeouts (TLS handshake, headers, request, keep-alive) stay with the
 * servers, which know their protocol; see sidecar/net/README.md.
 */
import type net from 'node:net';

/** Connection caps of one server. */
export interface ConnectionLimits {
  /** Most connections one source address may hold open at once (≥ 1). */
  readonly perSource: number;
  /** Most connections open at once from all sources (≥ perSource). */
  readonly total: number;
}

/** Why the guard closed a connection: over the per-source cap, over the total cap, or evicted to make room at the total cap. */
export type GuardCloseReason = 'per-source-cap' | 'total-cap' | 'evicted';

/** Counts of the connections the guard closed, by reason. */
export type GuardCloseCounts = Readonly<Record<GuardCloseReason, number>>;

/** The guard of one server (see {@link guardConnections}). */
export interface ConnectionGuard {
  readonly limits: ConnectionLimits;
  /** Connections open now. */
  open(): number;
  /** Connections open now from `address`. */
  openFrom(address: string): number;
  /**
   * Marks the connection `socket` belongs to (matched by remote address and
   * port, so the TLS socket of a raw TCP connection finds it) as busy: a
   * request is in flight and eviction passes it over. Returns the function
   * that ends the mark (idempotent); a socket the guard does not know gets a
   * no-op.
   */
  busy(socket: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined }): () => void;
  /** Connections closed by the guard since it was made, by reason. */
  closed(): GuardCloseCounts;
}

interface Entry {
  readonly socket: net.Socket;
  readonly source: string;
  readonly peer: string;
  busy: number;
  gone: boolean;
}

/** The source address a guard counts: an IPv4-mapped IPv6 address as its IPv4 address. */
function sourceOf(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/**
 * Puts the guard in front of `server`'s own connection handling: the
 * listeners of `'connection'` the server has now (node:http's parser set-up,
 * node:tls's TLS socket) run only for admitted connections. Call it right
 * after creating the server, before `listen`. `onClose` hears of every
 * connection the guard closes.
 *
 * @throws RangeError when the limits are not positive integers with `total` ≥ `perSource`.
 */
export function guardConnections(server: net.Server, limits: ConnectionLimits, onClose?: (reason: GuardCloseReason, source: string) => void): ConnectionGuard {
  const { perSource, total } = limits;
  if (!Number.isInteger(perSource) || perSource < 1 || !Number.isInteger(total) || total < perSource) {
    throw new RangeError(`connection limits: perSource ${perSource} and total ${total} must be integers with 1 ≤ perSource ≤ total`);
  }
  /** Per source address, its connections oldest first (a Set keeps insertion order). */
  const bySource = new Map<string, Set<Entry>>();
  /** By `address|port`: where `busy` finds a connection from any socket over it. */
  const byPeer = new Map<string, Entry>();
  const counts: Record<GuardCloseReason, number> = { 'per-source-cap': 0, 'total-cap': 0, evicted: 0 };
  let open = 0;

  const remove = (e: Entry): void => {
    if (e.gone) return;
    e.gone = true;
    open--;
    byPeer.delete(e.peer);
    const set = bySource.get(e.source)!;
    set.delete(e);
    if (set.size === 0) bySource.delete(e.source);
  };

  const close = (socket: net.Socket, reason: GuardCloseReason, source: string): void => {
    counts[reason]++;
    socket.destroy();
    onClose?.(reason, source);
  };

  /** The oldest idle connection of the busiest address holding at least `atLeast` connections; undefined when none. */
  const victim = (atLeast: number): Entry | undefined => {
    let best: Entry | undefined;
    let bestSize = atLeast - 1;
    for (const set of bySource.values()) {
      if (set.size <= bestSize) continue;
      for (const e of set) {
        if (e.busy === 0) {
          best = e;
          bestSize = set.size;
          break;
        }
      }
    }
    return best;
  };

  const admit = (socket: net.Socket): boolean => {
    const address = socket.remoteAddress;
    if (address === undefined) {
      // Reset before it was accepted: nothing to serve.
      socket.destroy();
      return false;
    }
    const source = sourceOf(address);
    const mine = bySource.get(source)?.size ?? 0;
    if (mine >= perSource) {
      close(socket, 'per-source-cap', source);
      return false;
    }
    if (open >= total) {
      const evict = victim(mine + 2);
      if (!evict) {
        close(socket, 'total-cap', source);
        return false;
      }
      remove(evict);
      close(evict.socket, 'evicted', evict.source);
    }
    const entry: Entry = { socket, source, peer: `${address}|${socket.remotePort}`, busy: 0, gone: false };
    let set = bySource.get(source);
    if (!set) bySource.set(source, (set = new Set()));
    set.add(entry);
    byPeer.set(entry.peer, entry);
    open++;
    socket.once('close', () => remove(entry));
    return true;
  };

  const inner = server.listeners('connection') as ((socket: net.Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: net.Socket) => {
    if (!admit(socket)) return;
    for (const listener of inner) listener.call(server, socket);
  });

  return {
    limits: { perSource, total },
    open: () => open,
    openFrom: (address) => bySource.get(sourceOf(address))?.size ?? 0,
    busy(socket) {
      const e = socket.remoteAddress === undefined ? undefined : byPeer.get(`${socket.remoteAddress}|${socket.remotePort}`);
      if (!e) return () => {};
      e.busy++;
      let done = false;
      return () => {
        if (done) return;
        done = true;
        e.busy--;
      };
    },
    closed: () => ({ ...counts }),
  };
}
