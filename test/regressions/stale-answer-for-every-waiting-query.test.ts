/**
 * Regression (DNS correctness #3): serve-stale for joined queries. Only the
 * first query of a coalesced group raced --cache-stale-answer-timeout-ms;
 * identical queries that joined it waited for the upstream deadline (4 s)
 * during an outage. RFC 8767 §5: every client query gets the stale answer
 * within the client response timer.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildQuery, readReply } from '../helpers/dns-wire.ts';
import { sidecarBehind } from '../helpers/sidecar.ts';

test('every query waiting on a dead upstream gets the stale answer after the stale answer timeout, not the deadline', async (t) => {
  let now = 1_000_000;
  const { udp, upstream } = await sidecarBehind(
    t,
    undefined,
    // One attempt for the whole deadline: the group fails only after 4 s.
    { cacheStaleAnswerTimeoutMs: 100, upstreamAttemptTimeoutMs: 4000, upstreamDeadlineMs: 4000 },
    { clock: () => now },
  );
  const q = buildQuery({ name: 'www.example', type: 'A', edns: {} });
  const fresh = readReply(await udp.query(q));
  assert.equal(fresh.answer[0]?.ttl, 60);
  now += 61_000; // the entry expired; it may be served stale
  upstream.setHandler(() => 'drop');
  // Three identical queries from one socket: the first leads, the others join it.
  // Each must be answered well before the 4 s deadline (the client's own timer here: 2 s).
  const replies = await Promise.all([0, 1, 2].map(() => udp.query(q, 2000)));
  for (const raw of replies) {
    const r = readReply(raw);
    assert.deepEqual(r.answer.map((x) => [x.data, x.ttl]), [['192.0.2.1', 30]], 'the stale answer, TTL 30 (RFC 8767 §4)');
    assert.deepEqual(r.opt?.ede.map((e) => e.code), [3], 'EDE 3 Stale Answer');
  }
});
