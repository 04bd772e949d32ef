import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IDLE_GC_MIN_QUERIES, IDLE_QUERIES_PER_CHECK, IdleCompaction, compactHeap } from '../../../sidecar/runtime/heap.ts';

test('idle compaction: compacts once when the queries stop after a busy spell, not while busy, not when idle all along', () => {
  const idle = new IdleCompaction(0);
  let n = 0;
  const check = (delta: number) => idle.check((n += delta));
  // Idle from the start (probes only): nothing grew, nothing to give back.
  for (let i = 0; i < 10; i++) assert.equal(check(IDLE_QUERIES_PER_CHECK), false);
  // Busy: no pause while queries come.
  for (let i = 0; i < 5; i++) assert.equal(check(IDLE_GC_MIN_QUERIES), false);
  // The first quiet check after it compacts, and only that one.
  assert.equal(check(IDLE_QUERIES_PER_CHECK), true);
  for (let i = 0; i < 10; i++) assert.equal(check(1), false);
  // A spell too short to have grown the heap earns none.
  assert.equal(check(IDLE_GC_MIN_QUERIES - 100), false);
  assert.equal(check(0), false);
  // Another busy spell, another compaction.
  assert.equal(check(IDLE_GC_MIN_QUERIES), false);
  assert.equal(check(0), true);
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
