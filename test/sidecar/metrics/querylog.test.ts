import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { RCode } from '../../../sidecar/dns/constants.ts';
import { QueryLog, qtypeName, type LineSink, type LogQueries } from '../../../sidecar/metrics/querylog.ts';
import { ctxFor, outcome } from './fixtures.ts';
import type { Decision, QueryContext } from '../../../sidecar/pipeline/stage.ts';

/** A sink that records chunks; `accept` false makes it report back-pressure until `drain()`. */
function sink(accept = true) {
  const chunks: string[] = [];
  let onDrain: (() => void) | undefined;
  const s: LineSink & { chunks: string[]; accept: boolean; drain(): void; lines(): Record<string, unknown>[] } = {
    chunks,
    accept,
    write(chunk) {
      chunks.push(chunk);
      return s.accept;
    },
    once(_event, listener) {
      onDrain = listener;
    },
    drain() {
      s.accept = true;
      const d = onDrain;
      onDrain = undefined;
      d?.();
    },
    lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
  return s;
}

const DENY: Decision = { action: 'deny', rule: 'no-ads', log: true };
const ALLOW: Decision = { action: 'allow', rule: 'default', log: false };

function withDecision(ctx: QueryContext, d: Decision | undefined): QueryContext {
  if (d) ctx.decision = d;
  return ctx;
}

function run(mode: LogQueries, sampleEvery = 1) {
  const out = sink();
  const log = new QueryLog({ mode, sampleEvery, tenant: 'team-a', pod: 'web-0', namespace: 'shop', sink: out, now: () => Date.UTC(2026, 0, 2, 3, 4, 5) });
  log.observe(withDecision(ctxFor('ads.tracker.example', 'AAAA'), DENY), outcome('policy', RCode.NXDOMAIN, 'no-ads'), 0.0004);
  for (let i = 0; i < 4; i++) log.observe(withDecision(ctxFor(`ok${i}.example`, 'A', 'tcp'), ALLOW), outcome('upstream', RCode.NOERROR, 'default', 'udp://192.0.2.53:53'), 0.0123456);
  log.flushNow();
  return out.lines();
}

test('query log: a line is JSON with every field', () => {
  const [line] = run('denied');
  assert.deepEqual(line, {
    time: '2026-01-02T03:04:05.000Z',
    tenant: 'team-a',
    pod: 'web-0',
    namespace: 'shop',
    qname: 'ads.tracker.example',
    qtype: 'AAAA',
    proto: 'udp',
    action: 'deny',
    rule: 'no-ads',
    source: 'policy',
    reason: 'no-ads',
    rcode: 'NXDOMAIN',
    upstream: '',
    duration_ms: 0.4,
  });
});

test('query log: denied writes decisions that say log, all writes every query, none nothing', () => {
  assert.deepEqual(run('denied').map((l) => l.qname), ['ads.tracker.example']);
  const all = run('all');
  assert.deepEqual(all.map((l) => l.qname), ['ads.tracker.example', 'ok0.example', 'ok1.example', 'ok2.example', 'ok3.example']);
  assert.equal(all[1]!.upstream, 'udp://192.0.2.53:53');
  assert.equal(all[1]!.duration_ms, 12.346);
  assert.equal(all[1]!.proto, 'tcp');
  assert.deepEqual(run('none'), []);
});

test('query log: sampling in mode all keeps one query in N but every logged decision', () => {
  assert.deepEqual(run('all', 2).map((l) => l.qname), ['ads.tracker.example', 'ok1.example', 'ok3.example']);
});

test('query log: lines are written together on the next turn of the event loop, not during the query', async () => {
  const out = sink();
  const log = new QueryLog({ mode: 'all', tenant: 't', sink: out });
  for (let i = 0; i < 10; i++) log.observe(ctxFor(`n${i}.example`), outcome('cache', 0, 'hit'), 0.0001);
  assert.equal(out.chunks.length, 0);
  await tick();
  assert.equal(out.chunks.length, 1);
  assert.equal(out.lines().length, 10);
});

test('query log: when the sink is slow the buffer fills, and further lines are dropped and counted', async () => {
  const out = sink(false);
  let dropped = 0;
  const log = new QueryLog({ mode: 'all', tenant: 't', sink: out, maxBufferBytes: 2000, onDrop: (n) => (dropped += n) });
  log.observe(ctxFor('first.example'), outcome('cache', 0, 'hit'), 0.0001);
  await tick();
  assert.equal(out.chunks.length, 1, 'the first chunk is written; the sink reports back-pressure');
  for (let i = 0; i < 100; i++) log.observe(ctxFor(`n${i}.example`), outcome('cache', 0, 'hit'), 0.0001);
  await tick();
  assert.equal(out.chunks.length, 1, 'nothing more is written before drain');
  assert.ok(dropped > 0 && dropped < 100, `dropped ${dropped}`);
  assert.equal(log.dropped, dropped);
  assert.equal(log.pending + dropped, 100);
  out.drain();
  await tick();
  assert.equal(out.lines().length, 1 + log.written - 1);
  assert.equal(out.lines().length, 101 - dropped);
  assert.equal(log.pending, 0);
});

test('query log: qtype names follow RFC 3597 for unknown types', () => {
  assert.equal(qtypeName(28), 'AAAA');
  assert.equal(qtypeName(65), 'HTTPS');
  assert.equal(qtypeName(4321), 'TYPE4321');
});
