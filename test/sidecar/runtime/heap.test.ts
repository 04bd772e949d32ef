import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  AFTER_STARTUP_V8_FLAGS,
  IDLE_CHECK_MS,
  IDLE_GC_MIN_QUERIES,
  IDLE_GC_QUIET_CHECKS,
  IDLE_QUERIES_PER_CHECK,
  IdleCompaction,
  compactHeap,
} from '../../../sidecar/runtime/heap.ts';

/** 50 lookups a second, an app's own: a check's worth of them. */
const TRICKLE = (50 * IDLE_CHECK_MS) / 1000;

/** An IdleCompaction fed query counts as deltas: `check(d)` is a check after `d` more queries. */
function checker(quietChecks?: number): (delta: number) => boolean {
  const idle = new IdleCompaction(0, quietChecks);
  let n = 0;
  return (delta) => idle.check((n += delta));
}

test('idle compaction: compacts once when the queries have stopped after a busy spell, not while busy, not when idle all along', () => {
  const quiet = 3;
  const check = checker(quiet);
  // Idle from the start (probes only): nothing grew, nothing to give back.
  for (let i = 0; i < 10; i++) assert.equal(check(1), false);
  // Busy: no pause while queries come.
  for (let i = 0; i < 5; i++) assert.equal(check(IDLE_GC_MIN_QUERIES), false);
  // Quiet, but not yet for long enough.
  for (let i = 1; i < quiet; i++) assert.equal(check(IDLE_QUERIES_PER_CHECK), false);
  // The quiet check that completes the spell compacts, and only that one.
  assert.equal(check(0), true);
  for (let i = 0; i < 10; i++) assert.equal(check(1), false);
  // A spell too short to have grown the heap earns none.
  assert.equal(check(IDLE_GC_MIN_QUERIES - 100), false);
  for (let i = 0; i < quiet + 2; i++) assert.equal(check(0), false);
  // Another busy spell, another compaction once quiet for long enough.
  assert.equal(check(IDLE_GC_MIN_QUERIES), false);
  for (let i = 1; i < quiet; i++) assert.equal(check(0), false);
  assert.equal(check(0), true);
});

test('idle compaction: a busy check inside the quiet spell starts it again', () => {
  const quiet = 4;
  const check = checker(quiet);
  assert.equal(check(IDLE_GC_MIN_QUERIES * 2), false);
  for (let i = 1; i < quiet; i++) assert.equal(check(0), false);
  // A burst one check before the spell would have been long enough: its code is warm again, keep it.
  assert.equal(check(IDLE_QUERIES_PER_CHECK + 1), false);
  for (let i = 1; i < quiet; i++) assert.equal(check(0), false);
  assert.equal(check(0), true);
});

test('idle compaction: a trickle of lookups counts as quiet, so a pod that never stops entirely still gives back what a burst grew', () => {
  // A spell longer than the checks in which the trickle alone brings IDLE_GC_MIN_QUERIES.
  const quiet = Math.ceil(IDLE_GC_MIN_QUERIES / TRICKLE) + 5;
  const check = checker(quiet);
  assert.equal(check(IDLE_GC_MIN_QUERIES * 5), false);
  for (let i = 1; i < quiet; i++) assert.equal(check(TRICKLE), false);
  assert.equal(check(TRICKLE), true);
  // The trickle goes on: the next compaction needs another whole spell, not just another 1,000 queries.
  for (let i = 1; i < quiet; i++) assert.equal(check(TRICKLE), false, `check ${i} after the compaction`);
  assert.equal(check(TRICKLE), true);
});

test('idle compaction: at most one compaction per quiet spell under a trickle, with the default spell', () => {
  const check = checker();
  assert.equal(check(IDLE_GC_MIN_QUERIES * 10), false);
  let compactions = 0;
  // 10 minutes of a trickle: two spells of 5 minutes, so two compactions, not one every 1,000 queries.
  for (let i = 0; i < 2 * IDLE_GC_QUIET_CHECKS; i++) if (check(TRICKLE)) compactions++;
  assert.equal(compactions, 2);
});

test('idle compaction: by default only after 5 minutes of quiet, not at the first quiet check', () => {
  assert.ok(IDLE_GC_QUIET_CHECKS * IDLE_CHECK_MS >= 300_000, `${IDLE_GC_QUIET_CHECKS} checks of ${IDLE_CHECK_MS} ms`);
  const check = checker();
  assert.equal(check(IDLE_GC_MIN_QUERIES * 10), false);
  for (let i = 1; i < IDLE_GC_QUIET_CHECKS; i++) assert.equal(check(0), false, `check ${i}`);
  assert.equal(check(0), true);
});

test("after start-up: every V8 flag the sidecar sets is one this Node's V8 knows (setFlagsFromString ignores the rest silently)", () => {
  const known = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  for (const flag of AFTER_STARTUP_V8_FLAGS) {
    const name = flag.replace(/^--(no-)?/, '').replace(/=.*$/, '');
    assert.ok(known.includes(`--${name} `) || known.includes(`--${name}\n`), `${flag}: V8 has no --${name}`);
  }
});

test('idle compaction: a compaction keeps the program working and reports the resident set before and after', () => {
  const f = (x: number) => x * 2;
  // Called often enough for V8 to compile it to baseline code, which the compaction flushes too.
  let sum = 0;
  for (let i = 0; i < 10_000; i++) sum += f(i);
  assert.equal(sum, 99_990_000);
  const c = compactHeap();
  assert.ok(c.rssBeforeMiB > 0 && c.rssAfterMiB > 0 && c.pauseMs >= 0, JSON.stringify(c));
  // The function's bytecode may have been flushed: it compiles again on its next call.
  assert.equal(f(4), 8);
});
