/**
 * The sidecar's helper threads yield the CPU to the thread that answers
 * queries.
 *
 * V8 runs garbage-collection and compilation work on worker threads of its
 * own (four by default). When the sidecar has one core or less (a pod's CPU
 * limit, or the bench pinning it to one core), a runnable helper competes
 * with the main thread for that core, and the kernel's scheduler gives it
 * whole time slices while queries wait in the socket: `perf sched latency`
 * measured the main thread kept off the CPU for up to 16 ms, and misses at
 * 5,000 QPS had a p99 of 15-20 ms. At nice 10 a helper gets about a tenth
 * of a contended core and all of it while the main thread waits for I/O,
 * which below saturation is most of the time: the same p99 fell to 4.5-7 ms.
 * Nice 19 did as well for the p99 but starved V8's concurrent sweeper under
 * a miss flood, and the peak RSS rose from about 95 to 126-130 MiB; nice 10
 * costs about 4 MiB of it. Nice 5 did not move the p99 (test/bench/README.md,
 * "Helper threads").
 *
 * Raising a thread's nice value needs no privilege (setpriority(2)), and on
 * Linux it applies to the one thread whose ID is given. Threads made after
 * the call (libuv's pool starts on its first use) keep the main thread's
 * priority. Elsewhere than Linux this does nothing.
 */

/** The nice value given to the helper threads (see the module comment for why 10). */
export const HELPER_NICE = 10;

/** What {@link yieldHelperThreads} did. */
export interface HelperThreads {
  /** Threads given {@link HELPER_NICE} (threads already at that nice value or above are left as they are). */
  readonly reniced: number;
  /** Threads whose priority could not be changed (gone meanwhile, or a seccomp profile that forbids it). */
  readonly failed: number;
}

/** Gives every thread of this process but the main one nice {@link HELPER_NICE}, unless it already runs at that or lower priority. */
export function yieldHelperThreads(): HelperThreads {
  if (process.platform !== 'linux') return { reniced: 0, failed: 0 };
  const { readdirSync } = process.getBuiltinModule('node:fs');
  const { getPriority, setPriority } = process.getBuiltinModule('node:os');
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return { reniced: 0, failed: 0 }; // no /proc: nothing to do
  }
  let reniced = 0;
  let failed = 0;
  for (const t of tids) {
    const tid = Number(t);
    if (tid === process.pid) continue;
    try {
      if (getPriority(tid) >= HELPER_NICE) continue; // already as low (a process started under nice): never raise it
      setPriority(tid, HELPER_NICE);
      reniced++;
    } catch {
      failed++;
    }
  }
  return { reniced, failed };
}
