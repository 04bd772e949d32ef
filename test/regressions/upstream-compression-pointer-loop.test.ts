/**
 * Regression (issue 6, found by test/reliability/fuzz-wire.test.ts): an
 * upstream reply whose owner name was a compression pointer to itself (a
 * loop) or to later data passed scanReply, which skipped pointers without
 * looking at them, and was forwarded to the client as it was. Such a reply
 * is now an UPSTREAM_BAD_REPLY: the client gets SERVFAIL, never the loop.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scanReply } from '../../sidecar/dns/records.ts';
import { SidecarError } from '../../sidecar/errors.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { checkMessage, echoAnswer, rawQuery, startRawUpstream, udpAsk } from '../reliability/lib.ts';

/** The echo answer to `q` with its A record's owner replaced by a pointer to `target` (null: to itself). */
function withOwnerPointer(q: Buffer, target: number | null): Buffer {
  const out = echoAnswer(q)!;
  const at = out.length - 16;
  out.writeUInt16BE(0xc000 | (target ?? at), at);
  return out;
}

/** The echo answer with a CNAME whose data is a pointer to itself. */
function cnameLoop(q: Buffer): Buffer {
  const base = echoAnswer(q)!.subarray(0, plainEnd(q));
  const rr = Buffer.alloc(14);
  rr.writeUInt16BE(0xc00c, 0);
  rr.writeUInt16BE(5, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(60, 6);
  rr.writeUInt16BE(2, 10);
  rr.writeUInt16BE(0xc000 | (base.length + 12), 12);
  const out = Buffer.concat([base, rr]);
  out.writeUInt16BE(1, 6);
  return out;
}

function plainEnd(q: Buffer): number {
  let p = 12;
  while (q[p] !== 0) p += 1 + q[p]!;
  return p + 5;
}

test('scanReply: a compression pointer loop, a forward pointer or a looping CNAME target is a bad reply', () => {
  const q = rawQuery('loop.example', 1, 7);
  const good = echoAnswer(q)!;
  assert.equal(scanReply(good).answerCount, 1);
  for (const bad of [withOwnerPointer(q, null), withOwnerPointer(q, good.length - 10), withOwnerPointer(q, 5), cnameLoop(q)]) {
    assert.throws(() => scanReply(bad), (err: unknown) => err instanceof SidecarError && err.code === 'UPSTREAM_BAD_REPLY');
  }
});

test('sidecar: an upstream reply with a pointer loop reaches the client as SERVFAIL, not as the loop', async (t) => {
  let mode = 0;
  const upstream = await startRawUpstream((rq) => [mode === 0 ? withOwnerPointer(rq.wire, null) : cnameLoop(rq.wire)]);
  const sc = await startTestSidecar({ upstream: [`udp://127.0.0.1:${upstream.port}`], upstreamAttemptTimeoutMs: 200, upstreamDeadlineMs: 400 });
  t.after(async () => {
    await sc.stop();
    await upstream.close();
  });
  for (mode = 0; mode < 2; mode++) {
    const reply = await udpAsk(sc.port, rawQuery(`loop${mode}.example`, 1, 9, 1232), 2000);
    assert.ok(reply);
    const layout = checkMessage(reply);
    assert.equal(typeof layout, 'object', `the client got a malformed reply: ${String(layout)}`);
    assert.equal(reply[3]! & 0x0f, 2, 'SERVFAIL');
  }
});
