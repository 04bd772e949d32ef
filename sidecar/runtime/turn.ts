/**
 * One turn of the event loop, for start-up: once the DNS listeners are bound,
 * the sidecar awaits this between its further start-up steps (the metrics
 * server, the admin server, the helper threads' priority), so the queries
 * and upstream replies that came meanwhile are answered first instead of
 * waiting for every step (test/bench/README.md, "Issue 19: start to first
 * answer").
 */

/** Resolves after the event loop has polled for I/O once (a setImmediate). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
