/**
 * Connection floods for the overload benchmarks (test/bench/injector-flood.ts,
 * test/bench/metrics-port.ts): many idle TCP connections from chosen loopback
 * source addresses, bounded in count and time, and the memory of the process
 * under them.
 */
import net from 'node:net';
import { memoryKiB } from './peers.ts';

/** A flood of idle connections (see {@link openIdle}). */
export interface IdleFlood {
  /** Connections the server accepted and had not closed when the flood was open. */
  readonly held: number;
  /** Connections that failed or were closed by the server before the flood was open. */
  readonly refused: number;
  /** Connections still open now (the server may close held ones later: deadlines, eviction). */
  open(): number;
  /** Destroys every connection; resolves once all are closed. */
  close(): Promise<void>;
}

/**
 * `127.0.0.<first>` … for `count` addresses, then `127.0.1.0` …: distinct
 * loopback source addresses (Linux answers for all of 127.0.0.0/8).
 */
export function loopbackSources(count: number, first = 2): string[] {
  return Array.from({ length: count }, (_, i) => {
    const n = first + i;
    return `127.0.${n >> 8}.${n & 255}`;
  });
}

/**
 * Opens `count` TCP connections to 127.0.0.1:`port` that never send a byte,
 * round-robin over `sources`, at most `concurrency` connecting at once; each
 * connect gives up after 3 s. Resolves once every one has connected or
 * failed, and `settleMs` has passed for the server to close what it closes
 * at once.
 */
export async function openIdle(port: number, sources: readonly string[], count: number, concurrency = 256, settleMs = 500): Promise<IdleFlood> {
  const sockets = new Set<net.Socket>();
  let next = 0;
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port, localAddress: sources[i % sources.length] });
      const timer = setTimeout(() => s.destroy(), 3_000);
      s.on('error', () => {});
      s.once('connect', () => {
        clearTimeout(timer);
        sockets.add(s);
        resolve();
      });
      s.once('close', () => {
        clearTimeout(timer);
        sockets.delete(s);
        resolve();
      });
    });
  const worker = async (): Promise<void> => {
    while (next < count) await one(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  await new Promise((r) => setTimeout(r, settleMs));
  const held = sockets.size;
  return {
    held,
    refused: count - held,
    open: () => sockets.size,
    close: async () => {
      const all = [...sockets].map((s) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r()))));
      for (const s of sockets) s.destroy();
      await Promise.all(all);
    },
  };
}

/** VmRSS of `pid` in MiB. */
export function rssMiB(pid: number): number {
  return memoryKiB(pid).rss / 1024;
}

/** Samples the RSS of `pid` every `everyMs` until `stop` resolves; the samples in MiB. */
export async function sampleRss(pid: number, everyMs: number, stop: Promise<unknown>): Promise<number[]> {
  const samples = [rssMiB(pid)];
  let done = false;
  void stop.finally(() => (done = true));
  while (!done) {
    await Promise.race([new Promise((r) => setTimeout(r, everyMs)), stop]);
    samples.push(rssMiB(pid));
  }
  return samples;
}
