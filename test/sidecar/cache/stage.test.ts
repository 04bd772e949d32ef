import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { EDECode, Flags, RCode } from '../../../sidecar/dns/constants.ts';
import { errorReply } from '../../../sidecar/dns/reply.ts';
import { CacheStage, flightSub, keyName } from '../../../sidecar/cache/stage.ts';
import type { CacheConfig } from '../../../sidecar/cache/store.ts';
import { ErrorCodes, SidecarError } from '../../../sidecar/errors.ts';
import type { Next, Outcome, QueryContext } from '../../../sidecar/pipeline/stage.ts';
import { a, clock, context, internalContext, parse, query, reply, soa, ttls, upstreamOutcome } from './fixtures.ts';

/** The key of an exchange in flight, as the stage looks it up: name and number. */
const cacheKey = (ctx: QueryContext): string => `${flightSub(ctx.query)}/${keyName(ctx)}`;

const CONFIG: CacheConfig = { maxEntries: 100, maxBytes: 1 << 20, minTtl: 0, maxTtl: 86_400, negativeMaxTtl: 3_600, clusterNegativeMaxTtl: 5, staleMaxAge: 0, staleMaxPerSecond: 0, staleAnswerTimeoutMs: 0 };

function stage(options: { staleMaxAgeSec?: number; config?: Partial<CacheConfig> } = {}) {
  const c = clock();
  const s = new CacheStage({
    config: { ...CONFIG, ...options.config },
    clock: c.now,
    staleMaxAgeSec: options.staleMaxAgeSec,
  });
  return { s, c };
}

/** A `next` that answers like an upstream, echoing the query's ID and question, and counts its calls. */
function upstream(build: (ctx: QueryContext) => Buffer, source: Outcome['source'] = 'upstream') {
  const calls: QueryContext[] = [];
  const next: Next = async (ctx) => {
    calls.push(ctx);
    const body = build(ctx);
    body.writeUInt16BE(ctx.query.id, 0);
    ctx.wire.copy(body, 12, 12, ctx.query.questionEnd);
    return { ...upstreamOutcome(body), source };
  };
  return { next, calls };
}

const answerFor = (ttl: number) => (ctx: QueryContext) => reply(ctx.query.qname, { answers: [a(ctx.query.qname, ttl)] });

test('cache stage: a hit carries the client ID, its question spelling, RD, and decremented TTLs', async () => {
  const { s, c } = stage();
  const up = upstream(answerFor(300));
  const first = await s.handle(context(query('www.example.com', { id: 1 })), up.next);
  assert.equal(first.source, 'upstream');
  c.advance(7_000);
  const wire = query('WwW.eXample.COM', { id: 0xbeef, rd: false });
  const hit = await s.handle(context(wire), up.next);
  assert.equal(up.calls.length, 1);
  assert.equal(hit.source, 'cache');
  assert.equal(hit.reason, 'hit');
  assert.equal(hit.rcode, RCode.NOERROR);
  assert.equal(hit.body.readUInt16BE(0), 0xbeef);
  assert.equal(hit.body.readUInt16BE(2) & Flags.RD, 0, "the client's RD bit");
  assert.ok(hit.body.readUInt16BE(2) & Flags.QR);
  const q = parse(wire);
  assert.deepEqual(hit.body.subarray(12, q.questionEnd), wire.subarray(12, q.questionEnd), '0x20 case preserved');
  assert.deepEqual(ttls(hit.body), [293]);
  assert.equal(packet.decode(hit.body).answers?.[0]?.name, 'www.example.com');
});

test('cache stage: the key separates type, class, DO, CD and the group of internal queries', () => {
  const base = cacheKey(context(query('example.com')));
  assert.notEqual(base, cacheKey(context(query('example.com', { type: 'AAAA' }))));
  assert.notEqual(base, cacheKey(context(query('example.com', { dnssecOk: true }))));
  assert.notEqual(base, cacheKey(context(query('example.com', { cd: true }))));
  assert.notEqual(base, cacheKey(internalContext(query('example.com'), 'corp')));
  assert.equal(base, cacheKey(context(query('EXAMPLE.com', { id: 9, edns: true }))));
  const chaos = query('example.com');
  chaos.writeUInt16BE(3, chaos.length - 2);
  assert.notEqual(base, cacheKey(context(chaos)));
});

test('cache stage: internal queries through a group are cached apart from routed ones', async () => {
  const { s } = stage();
  const up = upstream(answerFor(60));
  await s.handle(context(query('vpce.example.com')), up.next);
  const viaGroup = await s.handle(internalContext(query('vpce.example.com'), 'privatelink'), up.next);
  assert.equal(viaGroup.source, 'upstream');
  const again = await s.handle(internalContext(query('vpce.example.com'), 'privatelink'), up.next);
  assert.equal(again.source, 'cache');
  assert.equal(up.calls.length, 2);
});

test('cache stage: an entry expires and the next query goes upstream again', async () => {
  const { s, c } = stage();
  const up = upstream(answerFor(30));
  await s.handle(context(query('example.com')), up.next);
  c.advance(30_000);
  const again = await s.handle(context(query('example.com')), up.next);
  assert.equal(again.source, 'upstream');
  assert.equal(up.calls.length, 2);
});

test('cache stage: NXDOMAIN is cached by the SOA minimum, with the cluster cap in the cluster zone', async () => {
  const { s, c } = stage();
  const nx = (ctx: QueryContext) => reply(ctx.query.qname, { rcode: RCode.NXDOMAIN, authorities: [soa('example.com', 3600, 60)] });
  const up = upstream(nx);
  await s.handle(context(query('nope.example.com')), up.next);
  await s.handle(context(query('api.github.com.team-a.svc.cluster.local')), up.next);
  c.advance(5_000);
  const external = await s.handle(context(query('nope.example.com')), up.next);
  assert.equal(external.source, 'cache');
  assert.equal(external.rcode, RCode.NXDOMAIN);
  assert.deepEqual(ttls(external.body), [55]);
  const cluster = await s.handle(context(query('api.github.com.team-a.svc.cluster.local')), up.next);
  assert.equal(cluster.source, 'upstream', 'the cluster negative cap (5 s) has passed');
  assert.equal(up.calls.length, 3);
});

test('cache stage: a cached NXDOMAIN for A answers AAAA of the name (and back), the client\'s question written in; NODATA does not', async () => {
  const { s, c } = stage();
  const nx = (ctx: QueryContext) => reply(ctx.query.qname, { rcode: RCode.NXDOMAIN, authorities: [soa('example.com', 3600, 60)] });
  const up = upstream(nx);
  await s.handle(context(query('nope.example.com')), up.next);
  c.advance(2_000);
  const aaaa = await s.handle(context(query('Nope.Example.com', { type: 'AAAA', id: 99 })), up.next);
  assert.equal(aaaa.source, 'cache');
  assert.equal(aaaa.rcode, RCode.NXDOMAIN);
  const decoded = packet.decode(aaaa.body);
  assert.equal(decoded.id, 99);
  assert.deepEqual(decoded.questions, [{ name: 'Nope.Example.com', type: 'AAAA', class: 'IN' }]);
  assert.deepEqual(ttls(aaaa.body), [58]);
  assert.equal(up.calls.length, 1);
  await s.handle(context(query('other.example.com', { type: 'AAAA' })), up.next);
  assert.equal((await s.handle(context(query('other.example.com')), up.next)).source, 'cache', 'AAAA NXDOMAIN answers A too');
  const nodata = upstream((ctx) => reply(ctx.query.qname, { authorities: [soa('example.com', 3600, 60)] }));
  await s.handle(context(query('v4.example.com', { type: 'AAAA' })), nodata.next);
  assert.equal((await s.handle(context(query('v4.example.com')), nodata.next)).source, 'upstream', 'NODATA is about one type only');
});

test('cache stage: negative answers without SOA and SERVFAIL are not cached', async () => {
  const { s } = stage();
  const noSoa = upstream((ctx) => reply(ctx.query.qname, { rcode: RCode.NXDOMAIN }));
  await s.handle(context(query('nope.example.com')), noSoa.next);
  await s.handle(context(query('nope.example.com')), noSoa.next);
  assert.equal(noSoa.calls.length, 2);
  const fail = upstream((ctx) => errorReply(ctx.wire, RCode.SERVFAIL, ctx.query.questionEnd));
  await s.handle(context(query('broken.example.com')), fail.next);
  const second = await s.handle(context(query('broken.example.com')), fail.next);
  assert.equal(second.rcode, RCode.SERVFAIL);
  assert.equal(fail.calls.length, 2);
  assert.equal(s.store.size, 0);
});

test('cache stage: policy and local outcomes are never stored', async () => {
  const { s } = stage();
  const nx = (ctx: QueryContext) => reply(ctx.query.qname, { rcode: RCode.NXDOMAIN, authorities: [soa('example.com', 3600, 600)] });
  for (const source of ['policy', 'local'] as const) {
    const up = upstream(nx, source);
    await s.handle(context(query('denied.example.com')), up.next);
    const again = await s.handle(context(query('denied.example.com')), up.next);
    assert.equal(again.source, source);
    assert.equal(up.calls.length, 2);
  }
  assert.equal(s.store.size, 0);
});

test('cache stage: 10 concurrent identical queries make one upstream call, each reply with its own ID and spelling', async () => {
  const { s } = stage();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const up = upstream(answerFor(60));
  const slow: Next = async (ctx) => {
    await gate;
    return up.next(ctx);
  };
  const spellings = ['example.com', 'EXAMPLE.COM', 'Example.Com', 'eXaMpLe.cOm'];
  const wires = Array.from({ length: 10 }, (_, i) => query(spellings[i % spellings.length]!, { id: 1000 + i }));
  const pending = wires.map((w) => s.handle(context(w), slow));
  assert.equal(s.inflight, 1);
  release();
  const outcomes = await Promise.all(pending);
  assert.equal(up.calls.length, 1);
  const bodies = new Set<Buffer>();
  outcomes.forEach((o, i) => {
    assert.equal(o.source, 'upstream');
    assert.equal(o.body.readUInt16BE(0), 1000 + i);
    assert.deepEqual(o.body.subarray(12, 12 + 13), wires[i]!.subarray(12, 12 + 13));
    bodies.add(o.body);
  });
  assert.equal(bodies.size, 10, 'every receiver owns its body');
  assert.equal(s.inflight, 0);
  assert.equal(s.coalesced, 9);
  assert.equal(s.store.size, 1);
  const hit = await s.handle(context(query('example.com', { id: 5 })), slow);
  assert.equal(hit.source, 'cache');
});

test('cache stage: exchanges in flight for one name and different keys stay apart, whichever ends first', async () => {
  const { s } = stage();
  const gates = new Map<string, () => void>();
  const up = upstream(answerFor(60));
  const gated: Next = async (ctx) => {
    await new Promise<void>((r) => gates.set(`do=${ctx.query.dnssecOk} cd=${(ctx.query.flags & Flags.CD) !== 0}`, r));
    return up.next(ctx);
  };
  const plain = s.handle(context(query('example.com')), gated);
  const withDo = s.handle(context(query('example.com', { dnssecOk: true })), gated);
  const cd = s.handle(context(query('example.com', { cd: true })), gated);
  assert.equal(s.inflight, 3);
  // A query identical to the second joins it, not the others.
  const joined = s.handle(context(query('example.com', { dnssecOk: true, id: 77 })), gated);
  assert.equal(s.inflight, 3);
  await new Promise((r) => setImmediate(r));
  // The middle and then the first of the name's exchanges end first; the last one still takes waiters.
  gates.get('do=true cd=false')!();
  assert.equal((await withDo).source, 'upstream');
  assert.equal((await joined).body.readUInt16BE(0), 77);
  assert.equal(s.inflight, 2);
  const cdWire = query('example.com', { cd: true, id: 78 });
  const cdJoined = s.handle(context(cdWire), gated);
  assert.equal(s.inflight, 2);
  gates.get('do=false cd=false')!();
  await plain;
  gates.get('do=false cd=true')!();
  assert.equal((await cd).source, 'upstream');
  assert.equal((await cdJoined).body.readUInt16BE(0), 78);
  assert.equal(s.inflight, 0);
  assert.equal(up.calls.length, 3);
  assert.equal(s.coalesced, 2);
});

test('cache stage: a failure reaches every coalesced query', async () => {
  const { s } = stage();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let calls = 0;
  const failing: Next = async () => {
    calls++;
    await gate;
    throw new SidecarError(ErrorCodes.UPSTREAM_GROUP_FAILED, 'every upstream of group default failed');
  };
  const pending = [1, 2, 3].map((id) => s.handle(context(query('example.com', { id })), failing));
  release();
  const results = await Promise.allSettled(pending);
  assert.equal(calls, 1);
  assert.ok(results.every((r) => r.status === 'rejected'));
  assert.equal(s.inflight, 0);
});

test('cache stage: stale answers are served when the upstreams fail, only when enabled and within the max age', async () => {
  for (const staleMaxAgeSec of [0, 60]) {
    const { s, c } = stage({ staleMaxAgeSec });
    const good = upstream(answerFor(10));
    await s.handle(context(query('example.com')), good.next);
    c.advance(20_000);
    // The forward stage throws when every upstream answered SERVFAIL (one failure path, keyed on codes).
    const servfail = {
      next: (async () => {
        throw new SidecarError(ErrorCodes.UPSTREAM_SERVFAIL, 'every upstream of group default that answered said SERVFAIL');
      }) as Next,
    };
    const isServfail = { code: ErrorCodes.UPSTREAM_SERVFAIL };
    if (staleMaxAgeSec === 0) {
      await assert.rejects(async () => s.handle(context(query('EXAMPLE.com', { id: 77 })), servfail.next), isServfail);
      continue;
    }
    const out = await s.handle(context(query('EXAMPLE.com', { id: 77 })), servfail.next);
    assert.equal(out.source, 'cache');
    assert.equal(out.reason, 'stale');
    assert.equal(out.stale, true);
    assert.deepEqual(out.ede, { code: EDECode.STALE_ANSWER, text: 'stale answer' });
    assert.equal(out.body.readUInt16BE(0), 77);
    assert.deepEqual(ttls(out.body), [30]);
    // A thrown group failure is served stale too.
    const thrown: Next = async () => {
      throw new SidecarError(ErrorCodes.UPSTREAM_GROUP_FAILED, 'every upstream of group default failed');
    };
    assert.equal((await s.handle(context(query('example.com')), thrown)).reason, 'stale');
    // Past the stale window (10 s lifetime + 60 s): no stale answer.
    c.advance(60_000);
    await assert.rejects(async () => s.handle(context(query('example.com')), servfail.next), isServfail);
    assert.equal(s.store.stats().staleServed, 2);
  }
});

test('cache stage: a fresh upstream answer replaces a stale entry', async () => {
  const { s, c } = stage({ staleMaxAgeSec: 60 });
  await s.handle(context(query('example.com')), upstream(answerFor(10)).next);
  c.advance(15_000);
  const refreshed = await s.handle(context(query('example.com')), upstream(answerFor(100)).next);
  assert.equal(refreshed.source, 'upstream');
  const hit = await s.handle(context(query('example.com')), upstream(answerFor(1)).next);
  assert.equal(hit.source, 'cache');
  assert.deepEqual(ttls(hit.body), [100]);
});

test('cache stage: when the leader is aborted, a waiter resolves its query itself', async () => {
  const { s } = stage();
  const leaderAbort = new AbortController();
  const leaderCtx = { ...context(query('example.com', { id: 1 })), signal: leaderAbort.signal };
  const up = upstream(answerFor(60));
  const next: Next = (ctx) =>
    ctx.signal === leaderAbort.signal
      ? new Promise((_, reject) =>
          ctx.signal.addEventListener('abort', () => reject(new SidecarError(ErrorCodes.UPSTREAM_ABORTED, 'client gone'))),
        )
      : up.next(ctx);
  const leader = s.handle(leaderCtx, next);
  const waiter = s.handle(context(query('example.com', { id: 2 })), next);
  leaderAbort.abort();
  await assert.rejects(Promise.resolve(leader), /client gone/);
  const out = await waiter;
  assert.equal(out.source, 'upstream');
  assert.equal(out.body.readUInt16BE(0), 2);
  assert.equal(up.calls.length, 1);
  assert.equal(s.coalesced, 0);
});

/**
 * A stage with serve-stale (stale answer timeout 1800 ms, timers mocked) whose entry for example.com has
 * expired, and an upstream that answers (TTL 300) only once released.
 */
async function expiredWithSlowUpstream(t: TestContext) {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const c = clock();
  const s = new CacheStage({ config: CONFIG, clock: c.now, staleMaxAgeSec: 60, staleAnswerTimeoutMs: 1800 });
  await s.handle(context(query('example.com')), upstream(answerFor(10)).next);
  c.advance(20_000);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const fresh = upstream(answerFor(300));
  const slow: Next = async (ctx) => {
    await gate;
    return fresh.next(ctx);
  };
  return { s, slow, release };
}

test('cache stage: a slow upstream gets the stale answer sent after the stale answer timeout, and the late answer refreshes the entry', async (t) => {
  const { s, slow, release } = await expiredWithSlowUpstream(t);
  const pending = s.handle(context(query('example.com', { id: 9 })), slow);
  await Promise.resolve();
  t.mock.timers.tick(1800);
  const out = await pending;
  assert.equal(out.reason, 'stale');
  assert.deepEqual(ttls(out.body), [30]);
  release();
  await new Promise((r) => setImmediate(r));
  const hit = await s.handle(context(query('example.com')), upstream(answerFor(1)).next);
  assert.equal(hit.source, 'cache');
  assert.deepEqual(ttls(hit.body), [300], 'the background refresh stored the fresh answer');
});

test('cache stage: a query that joins an exchange in flight gets the stale answer after the same timeout (RFC 8767 §5)', async (t) => {
  const { s, slow, release } = await expiredWithSlowUpstream(t);
  const settled: string[] = [];
  const leader = s.handle(context(query('example.com', { id: 1 })), slow) as Promise<Outcome>;
  const joined = s.handle(context(query('example.com', { id: 2 })), slow) as Promise<Outcome>;
  void leader.then((o) => settled.push(`leader ${o.reason}`));
  void joined.then((o) => settled.push(`joined ${o.reason}`));
  await Promise.resolve();
  t.mock.timers.tick(1800);
  for (let i = 0; i < 20; i++) await Promise.resolve();
  assert.deepEqual(settled.sort(), ['joined stale', 'leader stale'], 'both clients answered stale while the upstream still waits');
  assert.equal((await joined).body.readUInt16BE(0), 2);
  release();
});

test('cache stage: an RD=0 query in flight is not shared with RD=1 queries, nor is its answer cached for them', async () => {
  const { s } = stage();
  const up = upstream((ctx) => (ctx.query.flags & Flags.RD ? answerFor(60)(ctx) : reply(ctx.query.qname, { rcode: RCode.REFUSED })));
  const [probe, client] = await Promise.all([
    s.handle(context(query('example.com', { rd: false })), up.next),
    s.handle(context(query('example.com')), up.next),
  ]);
  assert.equal(probe.rcode, RCode.REFUSED);
  assert.equal(client.rcode, RCode.NOERROR);
  assert.equal(up.calls.length, 2, 'two exchanges: the upstream answers them differently');
  assert.notEqual(cacheKey(context(query('example.com', { rd: false }))), cacheKey(context(query('example.com'))));
  const norecFirst = upstream(answerFor(60));
  await s.handle(context(query('probe.example.com', { rd: false })), norecFirst.next);
  await s.handle(context(query('probe.example.com')), norecFirst.next);
  assert.equal(norecFirst.calls.length, 2, 'the RD=0 answer was not stored');
});
