/**
 * The cache's metrics. The store counts by itself (`CacheStore#stats`);
 * these read its counters when Prometheus scrapes, so a lookup costs nothing
 * here. Only entries removed by an admin flush are counted on the side.
 */
import type { Registry } from 'prom-client';
import { Counter, scrapeCounter, scrapeGauge } from '../metrics/registry.ts';
import type { CacheStats } from './store.ts';

/** The cache's metrics, declared in `registry`; 0 until {@link CacheMetrics.bindStats}. */
export class CacheMetrics {
  #stats: (() => CacheStats) | undefined;
  #flushed = 0;

  constructor(registry: Registry) {
    const stat = (key: keyof CacheStats) => () => this.#stats?.()[key] ?? 0;
    scrapeCounter(registry, 'tenant_dns_cache_hits_total', 'Cache lookups answered by a fresh entry.', stat('hits'));
    scrapeCounter(registry, 'tenant_dns_cache_misses_total', 'Cache lookups without a fresh entry.', stat('misses'));
    scrapeGauge(registry, 'tenant_dns_cache_entries', 'Entries in the cache, stale ones included.', stat('entries'));
    scrapeGauge(registry, 'tenant_dns_cache_bytes', 'Bytes of stored replies in the cache, stale ones included.', stat('bytes'));
    scrapeCounter(registry, 'tenant_dns_cache_stale_served_total', 'Stale answers served because the upstreams failed (RFC 8767).', stat('staleServed'));
    const self = this;
    new Counter({
      name: 'tenant_dns_cache_evictions_total',
      help: 'Entries removed from the cache, by reason: capacity (LRU, to stay within the bounds), expired, flush (admin POST /cache/flush).',
      labelNames: ['reason'],
      registers: [registry],
      collect() {
        const s = self.#stats?.();
        this.reset();
        this.inc({ reason: 'capacity' }, s?.evictions ?? 0);
        this.inc({ reason: 'expired' }, s?.expired ?? 0);
        this.inc({ reason: 'flush' }, self.#flushed);
      },
    });
  }

  /** Sets where the metrics read the cache's counters (the store's `stats`). */
  bindStats(stats: () => CacheStats): void {
    this.#stats = stats;
  }

  /** Counts `n` entries removed by an admin flush. */
  flushed(n: number): void {
    this.#flushed += n;
  }
}
