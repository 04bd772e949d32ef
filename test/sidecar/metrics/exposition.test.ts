/**
 * How /metrics is rendered (sidecar/metrics/exposition.ts): the same text as
 * prom-client's own, one rendering shared by every scrape waiting for it,
 * never a rendering older than the scrape, a bounded number waiting.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { ExpositionRenderer } from '../../../sidecar/metrics/exposition.ts';
import { SidecarMetrics } from '../../../sidecar/metrics/telemetry.ts';
import { heldRegistry } from './fixtures.ts';

test('exposition: the text is what prom-client renders, with every sidecar metric, in slices', async () => {
  const m = new SidecarMetrics(new Registry(), { tenant: 'team-a', version: '1.2.3', processMetrics: true });
  await m.query.ready; // `full` (the default here) imports some process metrics on demand
  m.query.request('udp', 1);
  m.policy.decision('deny', 'no-ads');
  // sliceMs 0: it yields after every metric family.
  const text = await new ExpositionRenderer(m.registry, { minIntervalMs: 0, sliceMs: 0, maxWaiting: 4 }).render()!;
  // The process metrics change between two renderings; compare everything else.
  const stable = (s: string) => s.split('\n').filter((l) => !/^(process_|nodejs_)/.test(l)).join('\n');
  assert.equal(stable(text), stable(await m.registry.metrics()));
  assert.match(text, /tenant_dns_requests_total\{proto="udp",qtype="A",tenant="team-a"\} 1/);
});

test('exposition: scrapes that wait together share one rendering, which started after each of them arrived', async (t) => {
  const { registry, gates } = heldRegistry(t);
  const renderer = new ExpositionRenderer(registry, { minIntervalMs: 0, sliceMs: 1, maxWaiting: 8 });
  const first = renderer.render()!;
  await gates.arrived('collect-1');
  // Arrived while rendering 1 runs: they wait for rendering 2, not for the one that began before them.
  const second = renderer.render()!;
  const third = renderer.render()!;
  assert.equal(renderer.waiting, 3);
  gates.open('collect-1');
  assert.match(await first, /held_renderings 1/);
  await gates.arrived('collect-2');
  gates.open('collect-2');
  assert.match(await second, /held_renderings 2/);
  assert.equal(await third, await second);
  assert.equal(renderer.renderings, 2);
  assert.equal(renderer.waiting, 0);
});

test('exposition: past maxWaiting a scrape is turned away at once', async (t) => {
  const { registry, gates } = heldRegistry(t);
  const renderer = new ExpositionRenderer(registry, { minIntervalMs: 0, sliceMs: 1, maxWaiting: 2 });
  const a = renderer.render();
  const b = renderer.render();
  assert.ok(a && b);
  assert.equal(renderer.render(), undefined);
  gates.open('collect-1');
  await Promise.all([a, b]);
  gates.open('collect-2');
  assert.match(await renderer.render()!, /held_renderings 2/, 'served again once the waiting ones are answered');
});

test('exposition: a rendering starts at most once per minIntervalMs', async (t) => {
  const { registry, gates } = heldRegistry(t);
  gates.open('collect-1');
  gates.open('collect-2');
  const renderer = new ExpositionRenderer(registry, { minIntervalMs: 60_000, sliceMs: 1, maxWaiting: 8 });
  assert.match(await renderer.render()!, /held_renderings 1/);
  const next = renderer.render()!;
  let settled = false;
  void next.then(() => (settled = true));
  // A rendering that needs no waiting (minIntervalMs 0) on another renderer of the same registry comes and goes…
  const other = new ExpositionRenderer(registry, { minIntervalMs: 0, sliceMs: 1, maxWaiting: 8 });
  assert.match(await other.render()!, /held_renderings 2/);
  // …while this one still waits out its interval.
  assert.equal(settled, false);
  assert.equal(renderer.renderings, 1);
  assert.equal(renderer.waiting, 1);
});
