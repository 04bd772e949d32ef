/**
 * The sidecar's monotonic clock, in milliseconds from an arbitrary origin: deadlines, socket ages, stage
 * latencies. Only differences of its values mean anything.
 *
 * Until start-up is over it reads libuv's clock through `process.hrtime()`, which needs no module loaded:
 * the global `performance` loads node:perf_hooks and seven internal modules on its first use, about 1.6 ms
 * of a pod's start before its first answer (test/bench/README.md, "Start: what the first answer waits
 * for"). Once the sidecar serves, {@link usePerformanceClock} moves it to `performance.now()`, the same
 * clock without the array `process.hrtime()` returns at every call (two calls per cache hit), shifted so that
 * the values go on from where they were.
 */
function hrtimeMs(): number {
  const t = process.hrtime();
  return t[0] * 1e3 + t[1] / 1e6;
}

let now: () => number = hrtimeMs;

/** Milliseconds on the sidecar's monotonic clock. */
export function monotonicMs(): number {
  return now();
}

/** Reads the clock through `performance.now()` from now on (idempotent); the values stay continuous. */
export function usePerformanceClock(): void {
  if (now !== hrtimeMs) return;
  const perf = performance;
  const offset = hrtimeMs() - perf.now();
  now = () => perf.now() + offset;
}
