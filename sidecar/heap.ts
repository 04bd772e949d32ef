/**
 * One memory-reducing garbage collection after start-up.
 *
 * Loading the CLI and building the sidecar (commander, TypeBox, the policy
 * compiler, prom-client's metrics) leaves a few MiB of garbage and a young
 * generation grown to its maximum. V8 does not give either back while the
 * process idles, and a sidecar in every pod idles most of its life: the
 * bench measured the idle RSS at 60 MiB and still 60 MiB 45 s later.
 * V8's "last resort" collection (what it runs before it gives up on memory)
 * compacts the heap, shrinks the young generation and returns the freed
 * pages: about 2-3 MiB of idle RSS for one pause of about 20 ms
 * (test/bench/README.md, "Start-up and idle memory").
 *
 * Node exposes the collector only under --expose-gc. The flag is switched on
 * just long enough to take `gc` from a new context and switched off again,
 * so the process runs with its usual flags (and the compile cache, which is
 * keyed by V8's flags, stays valid).
 */

/** How long after the sidecar starts serving the collection runs: after the first queries of a starting pod, not before them. */
export const STARTUP_GC_DELAY_MS = 200;

/** What one collection did, for the log. */
export interface HeapCompaction {
  readonly rssBeforeMiB: number;
  readonly rssAfterMiB: number;
  readonly pauseMs: number;
}

type Gc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** The process's resident set in MiB (one decimal). */
function rssMiB(): number {
  return Math.round((process.memoryUsage.rss() / 1048576) * 10) / 10;
}

/** Runs one full, memory-reducing collection now and says what it did. */
export function compactHeap(): HeapCompaction {
  const v8 = process.getBuiltinModule('node:v8');
  const vm = process.getBuiltinModule('node:vm');
  let gc: Gc;
  v8.setFlagsFromString('--expose-gc');
  try {
    gc = vm.runInNewContext('gc') as Gc;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
  const rssBeforeMiB = rssMiB();
  const t0 = performance.now();
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  const pauseMs = Math.round((performance.now() - t0) * 10) / 10;
  return { rssBeforeMiB, rssAfterMiB: rssMiB(), pauseMs };
}

/**
 * Schedules compactHeap() once, STARTUP_GC_DELAY_MS from now, off the
 * event loop's reference count; `report` receives the result. Returns a
 * function that cancels it (for shutdown).
 */
export function compactHeapAfterStartup(report: (c: HeapCompaction) => void): () => void {
  const timer = setTimeout(() => report(compactHeap()), STARTUP_GC_DELAY_MS);
  timer.unref();
  return () => clearTimeout(timer);
}
