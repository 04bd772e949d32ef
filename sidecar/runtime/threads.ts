/**
 * V8's helper threads (garbage collection, compilers) get nice 10 once the
 * sidecar serves, so that with one core or less they stop taking whole
 * scheduler slices from the thread that answers queries: the p99 of misses at
 * 5,000 QPS fell from 15-20 ms to 4.5-7 ms for about 4 MiB of peak RSS
 * (test/bench/README.md, "Helper threads", with the values tried). Raising a
 * thread's nice value needs no privilege (setpriority(2)); threads made later
 * keep the main thread's priority. Linux only; elsewhere it does nothing.
 */
import { osModule, readdirSync } from './builtins.ts';

/** The nice value given to the helper threads (why 10: test/bench/README.md, "Helper threads"). */
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
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return { reniced: 0, failed: 0 }; // no /proc: nothing to do
  }
  const { getPriority, setPriority } = osModule();
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
