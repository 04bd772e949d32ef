import { test } from 'node:test';
import assert from 'node:assert/strict';
import Registry from 'prom-client/lib/registry.js';
import { EVENT_LOOP_MAX_SAMPLES, EVENT_LOOP_SAMPLE_MS, EventLoopDelay, registerEventLoopDelay } from '../../../sidecar/metrics/event-loop.ts';
import { collectProcessMetrics } from '../../../sidecar/metrics/metrics.ts';

const value = (text: string, name: string): number => {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  assert.ok(m, `${name} is not exposed:\n${text}`);
  return Number(m[1]);
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Keeps the event loop busy for `ms` milliseconds. */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test('event-loop delay: an idle process reports a delay near 0, not the sampling interval', async () => {
  // prom-client's collector at this interval recorded the time between ticks: p99 and max were 1.001 s here.
  const r = new Registry();
  await collectProcessMetrics(r, 'basic');
  await sleep(EVENT_LOOP_SAMPLE_MS * 2 + 300);
  const text = await r.metrics();
  assert.ok(value(text, 'nodejs_eventloop_lag_p99_seconds') < 0.2, text);
  assert.ok(value(text, 'nodejs_eventloop_lag_max_seconds') < 0.2, text);
  // basic: the last sample, the max and the p99 only.
  assert.deepEqual(text.match(/^nodejs_eventloop_\w+/gm)?.sort(), ['nodejs_eventloop_lag_max_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_eventloop_lag_seconds']);
});

test('event-loop delay: a blocked loop shows in the max of the next scrape, and each scrape covers the samples since the last', async () => {
  const r = new Registry();
  const delay = registerEventLoopDelay(r, 'full', 20);
  try {
    await sleep(100);
    block(500);
    await sleep(100);
    const first = await r.metrics();
    assert.ok(value(first, 'nodejs_eventloop_lag_max_seconds') >= 0.45, first);
    assert.ok(value(first, 'nodejs_eventloop_lag_min_seconds') < 0.1, first);
    for (const name of ['mean', 'stddev', 'p50', 'p90', 'p99']) value(first, `nodejs_eventloop_lag_${name}_seconds`);
    await sleep(200);
    const second = await r.metrics();
    assert.ok(value(second, 'nodejs_eventloop_lag_max_seconds') < 0.45, second);
    // The lag gauge is how long a setImmediate took at the previous scrape.
    assert.ok(value(second, 'nodejs_eventloop_lag_seconds') < 0.1, second);
  } finally {
    delay.stop();
  }
});

test('event-loop delay: a scrape with no new sample keeps the values of the one before', async () => {
  const r = new Registry();
  const delay = registerEventLoopDelay(r, 'basic', 60_000);
  try {
    delay.record(40);
    delay.record(10);
    const first = await r.metrics();
    assert.equal(value(first, 'nodejs_eventloop_lag_max_seconds'), 0.04);
    const second = await r.metrics();
    assert.equal(value(second, 'nodejs_eventloop_lag_max_seconds'), 0.04);
    assert.equal(value(second, 'nodejs_eventloop_lag_p99_seconds'), 0.04);
  } finally {
    delay.stop();
  }
});

test('event-loop delay: nearest-rank percentiles, and only the newest samples are kept', () => {
  const delay = new EventLoopDelay(60_000);
  try {
    assert.equal(delay.take(), undefined);
    for (let i = 1; i <= 100; i++) delay.record(i);
    const s = delay.take()!;
    assert.deepEqual(s, { min: 0.001, max: 0.1, mean: 0.0505, stddev: s.stddev, p50: 0.05, p90: 0.09, p99: 0.099 });
    assert.ok(Math.abs(s.stddev - 0.028866) < 1e-5, String(s.stddev));
    assert.equal(delay.take(), undefined, 'take starts a new period');
    // Nobody scraped for longer than the buffer: the newest EVENT_LOOP_MAX_SAMPLES count.
    for (let i = 0; i < EVENT_LOOP_MAX_SAMPLES; i++) delay.record(1000);
    for (let i = 0; i < EVENT_LOOP_MAX_SAMPLES; i++) delay.record(2);
    assert.equal(delay.take()!.max, 0.002);
  } finally {
    delay.stop();
  }
});
