/**
 * The sidecar's clock (sidecar/runtime/clock.ts): process.hrtime() until start-up is over, then
 * performance.now(), with nothing lost or repeated at the switch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { monotonicMs, usePerformanceClock } from '../../../sidecar/runtime/clock.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('clock: it runs at the rate of performance.now() before and after the switch, and goes on from where it was', async () => {
  const rate = async () => {
    const [a, pa] = [monotonicMs(), performance.now()];
    await sleep(30);
    return monotonicMs() - a - (performance.now() - pa);
  };
  assert.ok(Math.abs(await rate()) < 2, 'before the switch');
  const before = monotonicMs();
  usePerformanceClock();
  const after = monotonicMs();
  assert.ok(after >= before && after - before < 5, `${before} then ${after}`);
  usePerformanceClock(); // once only: a second call shifts nothing
  const again = monotonicMs();
  assert.ok(again >= after && again - after < 5, `${after} then ${again}`);
  assert.ok(Math.abs(await rate()) < 2, 'after the switch');
});
