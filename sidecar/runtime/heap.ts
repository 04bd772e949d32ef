/**
 * One memory-reducing garbage collection 200 ms after the sidecar starts
 * serving: V8 keeps the start-up garbage and a grown young generation while
 * the process idles, and this gives 2-3 MiB of idle RSS back for one pause of
 * about 20 ms (test/bench/README.md, "Start-up and idle memory", "Heap
 * compaction"). `gc` is taken from a new context with --expose-gc switched on
 * only for that moment, so the process keeps its flags (and the compile cache,
 * keyed by V8's flags, stays valid).
 */
import { monotonicMs } from './clock.ts';
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

/** Runs one full, memory-reducing collection now, flushing the bytecode of functions not running, and says what it did. */
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
  const t0 = monotonicMs();
  // Bytecode of every function not running now goes too, and Sparkplug's baseline code with it (V8 keeps
  // baseline code unless --flush-baseline-code): the start-up's (commander, YAML, TypeBox, the policy compiler)
  // is never called again, and what a query needs is compiled again on its next call.
  v8.setFlagsFromString('--stress-flush-code');
  v8.setFlagsFromString('--flush-baseline-code');
  try {
    gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  } finally {
    v8.setFlagsFromString('--no-flush-baseline-code');
    v8.setFlagsFromString('--no-stress-flush-code');
  }
  const pauseMs = Math.round((monotonicMs() - t0) * 10) / 10;
  return { rssBeforeMiB, rssAfterMiB: rssMiB(), pauseMs };
}

/**
 * V8 flags set once start-up is over (after the start-up compaction), for the rest of the process's life.
 *
 * `--no-maglev`: V8's mid tier compiles the hot path again and again while load comes and goes, on the
 * helper threads, and its compilers' memory comes from the one malloc arena, which keeps what they freed.
 * After the bench's standard load a sidecar's private memory was 21.6-22.5 MiB, 14.2-14.3 MiB with
 * Maglev off from here (`memory.ts --count 10`, two alternating pairs; malloc_trim through gdb found ~9.7
 * MiB of that arena free). Throughput at saturation stayed within its spread: the hot path still reaches TurboFan. Not
 * from the start: start-up code then went to TurboFan, whose compiles cost more (start to first answer
 * 139 -> 146 ms); and the code cache is made and read before (code-cache.ts), under the same flags.
 * Measured in test/bench/README.md, "Issue 19: the sidecar's own bundle".
 *
 * `--memory-reducer-gc-count=0`: V8's memory reducer runs memory-reducing full collections some seconds into
 * every quiet spell (its start delay is 8 s). A full collection with no query in flight deoptimizes the query
 * path's optimized code (the per-query objects it was specialized for are all dead), so the next burst starts
 * in slow code. The idle compaction below takes the reducer's place, after a longer quiet spell. `--no-memory-reducer`
 * acts only on Node's command line (V8 makes the reducer when the heap is set up) and would change the code
 * cache's flags; a reducer allowed no collections starts none. Measured in test/bench/README.md, "The miss tail:
 * no full collection in a short quiet spell".
 */
export const AFTER_STARTUP_V8_FLAGS: readonly string[] = ['--no-maglev', '--memory-reducer-gc-count=0'];

/**
 * Schedules compactHeap() once, STARTUP_GC_DELAY_MS from now, off the
 * event loop's reference count; `report` receives the result. `before` runs
 * just before it, while the start-up's code is still compiled (bundle.sh's
 * warm start writes the code cache then: runtime/code-cache.ts); then
 * AFTER_STARTUP_V8_FLAGS are set. Returns a function that cancels it all
 * (for shutdown).
 */
export function compactHeapAfterStartup(report: (c: HeapCompaction) => void, before?: () => void): () => void {
  const timer = setTimeout(() => {
    before?.();
    const compaction = compactHeap();
    for (const flag of AFTER_STARTUP_V8_FLAGS) v8Module().setFlagsFromString(flag);
    report(compaction);
  }, STARTUP_GC_DELAY_MS);
  timer.unref();
  return () => clearTimeout(timer);
}

/** Milliseconds between the idle compaction's looks at the query count. */
export const IDLE_CHECK_MS = 2000;
/** Queries answered since the last compaction before a quiet spell earns another: a busy spell grew the heap. */
export const IDLE_GC_MIN_QUERIES = 1000;
/**
 * At most this many queries in one check interval is quiet: 50 a second, an app's own lookups rather than a
 * burst. At that rate code that is not optimized costs a query a fraction of a millisecond and builds no queue,
 * so the compaction may come during such a trickle too; V8's memory reducer, which is off (see
 * AFTER_STARTUP_V8_FLAGS), would have run at such allocation rates as well.
 */
export const IDLE_QUERIES_PER_CHECK = 100;
/** How long the sidecar must have been quiet before it compacts: 5 minutes, in checks. */
export const IDLE_GC_QUIET_CHECKS = Math.ceil(300_000 / IDLE_CHECK_MS);

/**
 * When to compact the heap after a busy spell (pure: fed the query count at
 * each check). Load grows V8's heap (the young generation to its maximum,
 * the old one with cache entries and garbage) and V8 keeps what it grew
 * while the pod idles, which is most of a pod's life; one memory-reducing
 * collection once the load has stopped gives it back (test/bench/README.md,
 * "Marginal memory"). Only after IDLE_GC_QUIET_CHECKS quiet checks in a row
 * (5 minutes), because that collection, with no query in flight, also
 * deoptimizes the query path's optimized code and flushes its bytecode: the
 * next burst then runs slow code for its first half second, which at
 * thousands of queries a second was most of the miss p99 at 5,000 QPS (4.1
 * against 1.5 ms, medians of 5 rounds after 15 s of quiet; test/bench/README.md, "The miss tail:
 * no full collection in a short quiet spell"). A sidecar that served a burst
 * therefore holds about 4 MiB more private memory for those 5 minutes.
 */
export class IdleCompaction {
  readonly #quietChecks: number;
  #last: number;
  #sinceCompaction = 0;
  #quiet = 0;

  /** `count`: the queries answered so far; `quietChecks`: quiet checks in a row before a compaction. */
  constructor(count: number, quietChecks: number = IDLE_GC_QUIET_CHECKS) {
    this.#last = count;
    this.#quietChecks = quietChecks;
  }

  /** Takes the query count at a check; true when the heap should be compacted now. */
  check(count: number): boolean {
    const delta = count - this.#last;
    this.#last = count;
    this.#sinceCompaction += delta;
    if (delta > IDLE_QUERIES_PER_CHECK) {
      this.#quiet = 0;
      return false;
    }
    this.#quiet++;
    if (this.#quiet >= this.#quietChecks && this.#sinceCompaction >= IDLE_GC_MIN_QUERIES) {
      // The next one needs a whole quiet spell of its own: a trickle would earn IDLE_GC_MIN_QUERIES in seconds.
      this.#sinceCompaction = 0;
      this.#quiet = 0;
      return true;
    }
    return false;
  }
}

/**
 * Compacts the heap whenever the sidecar has been quiet for 5 minutes after
 * at least IDLE_GC_MIN_QUERIES queries ({@link IdleCompaction}), looking at
 * `queries()` (the queries answered so far) every IDLE_CHECK_MS on a timer
 * that does not keep the process alive; `report` receives each result.
 * Returns a function that stops it (for shutdown).
 */
export function compactHeapWhenIdle(queries: () => number, report: (c: HeapCompaction & { readonly queries: number }) => void): () => void {
  const idle = new IdleCompaction(queries());
  const timer = setInterval(() => {
    const n = queries();
    if (idle.check(n)) report({ ...compactHeap(), queries: n });
  }, IDLE_CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
