import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { SlotCounter, SlotHistogram } from '../../../sidecar/metrics/registry.ts';

/** The lines of the exposition that start with `name`. */
async function lines(r: Registry, name: string): Promise<string[]> {
  return (await r.metrics()).split('\n').filter((l) => l.startsWith(name));
}

test('slot counter: a removed slot leaves the exposition, and its number is reused at 0 by the next label set', async () => {
  const r = new Registry();
  const c = new SlotCounter(r, 'test_things_total', 'Things.', ['thing']);
  const a = c.slot({ thing: 'a' });
  const b = c.slot({ thing: 'b' });
  c.add(a, 5);
  c.add(b, 2);
  c.remove(a);
  c.remove(a);
  assert.deepEqual(await lines(r, 'test_things_total{'), ['test_things_total{thing="b"} 2']);
  const d = c.slot({ thing: 'd' });
  assert.equal(d, a, 'the freed slot is handed out again: the arrays do not grow');
  assert.equal(c.value(d), 0, 'from 0, not the removed series value');
  c.add(d);
  assert.deepEqual((await lines(r, 'test_things_total{')).sort(), ['test_things_total{thing="b"} 2', 'test_things_total{thing="d"} 1']);
  // A slot exported only once counted, reused as one exported at 0.
  const e = c.slot({ thing: 'e' }, false);
  assert.ok(!(await lines(r, 'test_things_total{thing="e"}')).length);
  c.remove(e);
  assert.equal(c.slot({ thing: 'f' }), e);
  assert.deepEqual(await lines(r, 'test_things_total{thing="f"}'), ['test_things_total{thing="f"} 0']);
});

test('slot histogram: a removed slot leaves the exposition (buckets, sum, count), and is reused empty', async () => {
  const r = new Registry();
  const h = new SlotHistogram(r, 'test_wait_seconds', 'Waits.', ['who'], [0.1, 1]);
  const a = h.slot({ who: 'a' });
  const b = h.slot({ who: 'b' });
  h.observe(a, 0.5);
  h.observe(b, 2);
  h.remove(a);
  assert.deepEqual((await lines(r, 'test_wait_seconds')).filter((l) => l.includes('who="a"')), []);
  const c = h.slot({ who: 'c' });
  assert.equal(c, a);
  assert.equal(h.count(c), 0);
  assert.deepEqual(
    (await lines(r, 'test_wait_seconds')).filter((l) => l.includes('who="c"')),
    ['test_wait_seconds_bucket{who="c",le="0.1"} 0', 'test_wait_seconds_bucket{who="c",le="1"} 0', 'test_wait_seconds_bucket{who="c",le="+Inf"} 0', 'test_wait_seconds_sum{who="c"} 0', 'test_wait_seconds_count{who="c"} 0'],
  );
  assert.equal(h.count(b), 1, 'other slots are untouched');
});
