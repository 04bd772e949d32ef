/**
 * Regression (DNS correctness #4): coalescing ignored RD. While an RD=0
 * query was in flight, concurrent RD=1 clients for the same question got its
 * answer (REFUSED from a recursive upstream). Queries only share an exchange
 * when the upstream would answer them alike (DESIGN §4: same DO, CD, AD, RD).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as packet from 'dns-packet';
import { defaultAnswer } from '../helpers/dns-server.ts';
import { buildQuery, readReply } from '../helpers/dns-wire.ts';
import { sidecarBehind } from '../helpers/sidecar.ts';

/** A recursive upstream: RD=0 for a name it has not cached is REFUSED; replies held 100 ms so the queries meet in flight. */
function recursive(q: packet.Packet) {
  const rd = ((q.flags ?? 0) & 0x0100) !== 0;
  const reply = rd ? defaultAnswer(q) : { id: q.id, type: 'response' as const, flags: 0x0080 | 5, questions: q.questions };
  return { delayMs: 100, then: reply };
}

test('an RD=0 query in flight does not answer an RD=1 query sent right after it from one socket', async (t) => {
  const { udp } = await sidecarBehind(t, recursive);
  const [norec, rec] = await Promise.all([
    udp.query(buildQuery({ name: 'www.example', type: 'A', rd: false })),
    udp.query(buildQuery({ name: 'www.example', type: 'A', rd: true })),
  ]);
  assert.equal(readReply(norec).rcode, 5, 'RD=0: REFUSED, as the upstream said');
  const r = readReply(rec);
  assert.equal(r.rcode, 0, 'RD=1: the recursive answer');
  assert.deepEqual(r.answer.map((x) => x.data), ['192.0.2.1']);
  assert.equal(r.flags.RD, true);
});
