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
 * 5,000 QPS had a p99 of 16 ms. At nice 19 a helper still runs whenever the
 * main thread waits for I/O, which below saturation is most of the time,
 * but no longer takes the core from a main thread that has work: the same
 * p99 fell to about 4 ms (test/bench/README.md, "Helper threads").
 *
 * Raising a thread's nice value needs no privilege (setpriority(2)), and on
 * Linux it applies to the one thread whose ID is given. Threads made after
 * the call (libuv's pool starts on its first use) keep the main thread's
 * priority. Elsewhere than Linux this does nothing.
 */

/** The nice value given to the helper threads: the lowest priority there is. */
export const HELPER_NICE = 19;

/** What {@link yieldHelperThreads} did. */
export interface HelperThreads {
  /** Threads given {@link HELPER_NICE}. */
  readonly reniced: number;
  /** Threads whose priority could not be changed (gone meanwhile, or a seccomp profile that forbids it). */
  readonly failed: number;
}

/** Gives every thread of this process but the main one nice {@link HELPER_NICE}. */
export function yieldHelperThreads(): HelperThreads {
  if (process.platform !== 'linux') return { reniced: 0, failed: 0 };
  const { readdirSync } = process.getBuiltinModule('node:fs');
  const { setPriority } = process.getBuiltinModule('node:os');
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
      setPriority(tid, HELPER_NICE);
      reniced++;
    } catch {
      failed++;
    }
  }
  return { reniced, failed };
}
