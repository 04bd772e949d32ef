/**
 * One memory-reducing garbage collection 200 ms after the sidecar starts
 * serving: V8 keeps the start-up garbage and a grown young generation while
 * the process idles, and this gives 2-3 MiB of idle RSS back for one pause of
 * about 20 ms (test/bench/README.md, "Start-up and idle memory", "Heap
 * compaction"). `gc` is taken from a new context with --expose-gc switched on
 * only for that moment, so the process keeps its flags (and the compile cache,
 * keyed by V8's flags, stays valid).
 */
import { v8Module, vmModule } from './builtins.ts';

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
  const v8 = v8Module();
  const vm = vmModule();
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
