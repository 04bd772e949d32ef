import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RCode } from '../../../sidecar/dns/constants.ts';
import { scanReply } from '../../../sidecar/dns/records.ts';
import { CacheStore, STALE_TTL, type CacheConfig, type HitInfo } from '../../../sidecar/cache/store.ts';
import { a, clock, reply, soa, ttls } from './fixtures.ts';

const CONFIG: CacheConfig = { maxEntries: 100, maxBytes: 1 << 20, minTtl: 0, maxTtl: 86_400, negativeMaxTtl: 3_600, clusterNegativeMaxTtl: 5, staleMaxAge: 0, staleMaxPerSecond: 0, staleAnswerTimeoutMs: 0 };

function store(config: Partial<CacheConfig> = {}, extra: { staleMaxAgeSec?: number; staleMaxPerSecond?: number } = {}) {
  const c = clock();
  const evicted: string[] = [];
  const s = new CacheStore({ config: { ...CONFIG, ...config }, now: c.now, onEvict: (r) => evicted.push(r), ...extra });
  return { s, c, evicted };
}

/** Tests key entries by a short name and sub key 4 (type A, class IN, no DO/CD). */
const SUB = 4;

function put(s: CacheStore, key: string, wire: Buffer, negativeCap?: number): number {
  return s.set(key, SUB, wire, scanReply(wire), { negativeCap });
}

const positive = (ttl = 300, name = 'example.com') => reply(name, { answers: [a(name, ttl), a(name, ttl + 100, '192.0.2.2')] });

test('store: a hit returns a copy with TTLs decremented by whole elapsed seconds', () => {
  const { s, c } = store();
  const wire = positive(300);
  assert.equal(put(s, 'k', wire), 300);
  const info: HitInfo = { rcode: -1, questionEnd: 0, remainingTtl: 0 };
  const first = s.get('k', SUB, info)!;
  assert.deepEqual(ttls(first), [300, 400]);
  assert.equal(info.rcode, RCode.NOERROR);
  assert.equal(info.questionEnd, scanReply(wire).questionEnd);
  assert.equal(info.remainingTtl, 300);
  c.advance(10_999);
  const later = s.get('k', SUB)!;
  assert.deepEqual(ttls(later), [290, 390]);
  assert.notEqual(later.buffer === first.buffer && later.byteOffset === first.byteOffset, true, 'a new buffer each time');
  later.fill(0);
  assert.deepEqual(ttls(s.get('k', SUB)!), [290, 390], 'the stored copy is private');
  wire.fill(0);
  assert.deepEqual(ttls(s.get('k', SUB)!), [290, 390], 'the input is copied');
  assert.equal(s.stats().hits, 4);
});

test('store: a large reply keeps every TTL (offsets past 255 and 4,096 bytes), on a wall clock past 2^31 ms', () => {
  // 300 A records: the reply is ~4.8 KB, so its TTL offsets need two bytes each and it outgrows the first scratch buffer.
  const c = clock(Date.UTC(2026, 11, 6));
  const s = new CacheStore({ config: CONFIG, now: c.now, staleMaxAgeSec: 60 });
  const ttlList = Array.from({ length: 300 }, (_, i) => 100 + i);
  const answers = ttlList.map((ttl, i) => a('big.example', ttl, `192.0.2.${i % 250}`));
  const wire = reply('big.example', { answers });
  assert.ok(wire.length > 4096);
  assert.equal(put(s, 'big', wire), 100);
  assert.deepEqual(ttls(s.get('big', SUB)!), ttlList);
  c.advance(7_000);
  const later = s.get('big', SUB)!;
  assert.deepEqual(ttls(later), ttlList.map((t) => t - 7));
  const expected = Buffer.from(wire);
  for (const at of scanReply(wire).ttlOffsets) expected.writeUInt32BE(expected.readUInt32BE(at) - 7, at);
  assert.deepEqual(later, expected, 'byte for byte the reply, with only its TTLs decremented');
  assert.equal(s.stats().bytes, wire.length);
  c.advance(100_000);
  assert.equal(s.get('big', SUB), undefined);
  assert.deepEqual(ttls(s.getStale('big', SUB)!), ttlList.map(() => STALE_TTL));
  // Small entries stored after the large one are unaffected by the larger scratch.
  assert.equal(put(s, 'k', positive(300)), 300);
  assert.deepEqual(ttls(s.get('k', SUB)!), [300, 400]);
});

test('store: an entry expires after its lifetime', () => {
  const { s, c, evicted } = store();
  put(s, 'k', positive(30));
  c.advance(29_999);
  assert.deepEqual(ttls(s.get('k', SUB)!), [1, 101]);
  c.advance(1);
  assert.equal(s.get('k', SUB), undefined);
  assert.equal(s.size, 0, 'without serve-stale an expired entry is dropped');
  assert.deepEqual(evicted, ['expired']);
  assert.equal(s.stats().misses, 1);
  assert.equal(s.stats().expired, 1);
});

test('store: positive TTLs are clamped to [minTtl, maxTtl] and written into the copy', () => {
  const { s } = store({ minTtl: 60, maxTtl: 350 });
  assert.equal(put(s, 'low', positive(10)), 60);
  assert.deepEqual(ttls(s.get('low', SUB)!), [60, 110]);
  assert.equal(put(s, 'high', positive(1000)), 350);
  assert.deepEqual(ttls(s.get('high', SUB)!), [350, 350]);
});

test('store: TTL 0 is not cached (with minTtl 0)', () => {
  const { s } = store();
  assert.equal(put(s, 'k', reply('example.com', { answers: [a('example.com', 0)] })), 0);
  assert.equal(s.get('k', SUB), undefined);
  assert.equal(s.size, 0);
});

test('store: NXDOMAIN and NODATA are cached by min(SOA TTL, MINIMUM), capped', () => {
  const { s, c } = store({ negativeMaxTtl: 100 });
  const nx = reply('nope.example.com', { rcode: RCode.NXDOMAIN, authorities: [soa('example.com', 3600, 60)] });
  assert.equal(put(s, 'nx', nx), 60);
  assert.deepEqual(ttls(s.get('nx', SUB)!), [60], 'the SOA TTL is cut to the negative lifetime');
  const nodata = reply('example.com', { type: 'AAAA', authorities: [soa('example.com', 3600, 900)] });
  assert.equal(put(s, 'nodata', nodata), 100, 'capped by negativeMaxTtl');
  assert.equal(put(s, 'cluster', nx, 5), 5, 'the cluster cap');
  c.advance(5_000);
  assert.equal(s.get('cluster', SUB), undefined);
  assert.ok(s.get('nx', SUB));
});

test('store: a negative answer without SOA is not cached', () => {
  const { s } = store();
  assert.equal(put(s, 'nx', reply('nope.example.com', { rcode: RCode.NXDOMAIN })), 0);
  assert.equal(put(s, 'nodata', reply('example.com', { type: 'AAAA' })), 0);
  assert.equal(s.size, 0);
});

test('store: SERVFAIL, REFUSED, FORMERR and TC replies are not cached', () => {
  const { s } = store();
  const auth = [soa('example.com', 300, 300)];
  for (const rcode of [RCode.SERVFAIL, RCode.REFUSED, RCode.FORMERR, RCode.NOTIMP]) {
    assert.equal(put(s, `r${rcode}`, reply('example.com', { rcode, authorities: auth })), 0);
  }
  assert.equal(put(s, 'tc', reply('example.com', { tc: true, answers: [a('example.com', 300)] })), 0);
  assert.equal(s.size, 0);
});

test('store: the entry bound evicts the least recently used', () => {
  const { s, evicted } = store({ maxEntries: 3 });
  for (const k of ['a', 'b', 'c']) put(s, k, positive());
  assert.ok(s.get('a', SUB)); // a is now the most recent; b is the oldest
  put(s, 'd', positive());
  assert.equal(s.size, 3);
  assert.equal(s.get('b', SUB), undefined);
  assert.ok(s.get('a', SUB) && s.get('c', SUB) && s.get('d', SUB));
  assert.deepEqual(evicted, ['capacity']);
  assert.equal(s.stats().evictions, 1);
});

test('store: the byte bound evicts the least recently used, and counts bytes', () => {
  const one = positive();
  const { s } = store({ maxBytes: one.length * 2 + 10 });
  put(s, 'a', one);
  put(s, 'b', one);
  assert.equal(s.stats().bytes, one.length * 2);
  s.get('a', SUB);
  put(s, 'c', one);
  assert.equal(s.get('b', SUB), undefined);
  assert.ok(s.get('a', SUB) && s.get('c', SUB));
  assert.equal(s.stats().bytes, one.length * 2);
  const huge = reply('example.com', { answers: Array.from({ length: 10 }, (_, i) => a('example.com', 60, `192.0.2.${i}`)) });
  assert.equal(put(s, 'huge', huge), 0, 'a reply larger than maxBytes is not kept');
  assert.equal(s.size, 2);
});

test('store: replacing a key keeps one entry and the byte count right', () => {
  const { s } = store();
  put(s, 'k', positive(100));
  put(s, 'k', positive(200));
  assert.equal(s.size, 1);
  assert.equal(s.stats().bytes, positive().length);
  assert.deepEqual(ttls(s.get('k', SUB)!), [200, 300]);
});

test('store: maxEntries 0 switches the store off', () => {
  const { s } = store({ maxEntries: 0 });
  assert.equal(put(s, 'k', positive()), 0);
  assert.equal(s.get('k', SUB), undefined);
});

test('store: stale entries are served with TTL 30 within the stale window only (RFC 8767)', () => {
  const { s, c } = store({}, { staleMaxAgeSec: 60 });
  put(s, 'k', positive(10));
  assert.equal(s.getStale('k', SUB), undefined, 'a fresh entry is not stale');
  c.advance(10_000);
  assert.equal(s.get('k', SUB), undefined, 'expired: a miss');
  assert.equal(s.size, 1, 'but kept for serve-stale');
  assert.deepEqual(ttls(s.getStale('k', SUB)!), [STALE_TTL, STALE_TTL]);
  c.advance(59_999);
  assert.ok(s.getStale('k', SUB));
  c.advance(1);
  assert.equal(s.getStale('k', SUB), undefined);
  assert.equal(s.size, 0);
  assert.equal(s.stats().staleServed, 2);
});

test('store: serve-stale is off by default', () => {
  const { s, c } = store();
  put(s, 'k', positive(10));
  c.advance(10_000);
  assert.equal(s.getStale('k', SUB), undefined);
});

test('store: stale answers per entry per second are capped', () => {
  const { s, c } = store({}, { staleMaxAgeSec: 600, staleMaxPerSecond: 2 });
  put(s, 'k', positive(10));
  c.advance(20_000);
  assert.ok(s.getStale('k', SUB));
  assert.ok(s.getStale('k', SUB));
  assert.equal(s.getStale('k', SUB), undefined);
  c.advance(1_000);
  assert.ok(s.getStale('k', SUB));
});

test('store: delete, flush, prune and stats', () => {
  const { s, c } = store({}, { staleMaxAgeSec: 5 });
  put(s, 'a', positive(10));
  put(s, 'b', positive(100));
  put(s, 'c', positive(100));
  assert.equal(s.delete('c', SUB), 1);
  assert.equal(s.delete('c', SUB), 0);
  s.set('b', SUB + 1, positive(100), scanReply(positive(100)));
  assert.equal(s.get('b', SUB + 1) !== undefined && s.get('b', SUB) !== undefined, true, 'one name, two sub keys');
  assert.equal(s.delete('b'), 2, 'without a sub key: every entry of the name');
  put(s, 'b', positive(100));
  c.advance(15_000);
  assert.equal(s.prune(), 1);
  assert.equal(s.size, 1);
  assert.equal(s.flush(), 1);
  assert.deepEqual(s.stats(), { entries: 0, bytes: 0, hits: 2, misses: 0, evictions: 0, expired: 1, staleServed: 0 });
});

test('store: entries of one name under different sub keys are independent and evict one by one', () => {
  const { s } = store({ maxEntries: 3 });
  const wire = positive();
  for (const sub of [1, 2, 3]) s.set('n', sub, wire, scanReply(wire));
  assert.equal(s.size, 3);
  s.get('n', 1);
  s.get('n', 3);
  s.set('other', SUB, wire, scanReply(wire)); // evicts (n, 2), in the middle of the chain
  assert.equal(s.get('n', 2), undefined);
  assert.ok(s.get('n', 1) && s.get('n', 3) && s.get('other', SUB));
  s.set('n', 3, positive(50), scanReply(positive(50)));
  assert.equal(s.size, 3, 'replacing keeps one entry per key');
  assert.deepEqual(ttls(s.get('n', 3)!), [50, 150]);
  assert.equal(s.delete('n'), 2);
  assert.equal(s.size, 1);
});
