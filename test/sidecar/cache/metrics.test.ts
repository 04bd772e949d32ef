import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { CacheMetrics } from '../../../sidecar/cache/metrics.ts';
import { sample } from '../metrics/fixtures.ts';

test('cache metrics: the store counters are read at scrape time; admin flushes are counted', async () => {
  const r = new Registry();
  const m = new CacheMetrics(r);
  assert.equal(await sample(r, 'tenant_dns_cache_hits_total'), 0);
  let hits = 5;
  m.bindStats(() => ({ entries: 7, bytes: 900, hits, misses: 2, evictions: 1, expired: 4, staleServed: 3 }));
  m.flushed(6);
  assert.equal(await sample(r, 'tenant_dns_cache_hits_total'), 5);
  hits = 8;
  assert.equal(await sample(r, 'tenant_dns_cache_hits_total'), 8);
  assert.equal(await sample(r, 'tenant_dns_cache_misses_total'), 2);
  assert.equal(await sample(r, 'tenant_dns_cache_entries'), 7);
  assert.equal(await sample(r, 'tenant_dns_cache_bytes'), 900);
  assert.equal(await sample(r, 'tenant_dns_cache_stale_served_total'), 3);
  assert.equal(await sample(r, 'tenant_dns_cache_evictions_total', { reason: 'capacity' }), 1);
  assert.equal(await sample(r, 'tenant_dns_cache_evictions_total', { reason: 'expired' }), 4);
  assert.equal(await sample(r, 'tenant_dns_cache_evictions_total', { reason: 'flush' }), 6);
});
