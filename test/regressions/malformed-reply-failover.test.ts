/**
 * Regression (issue 6, found while fuzzing upstream replies): a reply that
 * arrived intact at the transport but whose layout was malformed (here a
 * compression pointer loop) counted as a success of that group member. The
 * forward stage then rejected it, so every query answered SERVFAIL while a
 * healthy second upstream sat unused, and the broken member was never marked
 * down. A malformed reply is now the member's failure: the group fails over.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { addressesOf, echoAnswer, rawQuery, startRawUpstream, udpAsk } from '../reliability/lib.ts';

test('group: a malformed reply from the first upstream fails over to the second', async (t) => {
  const broken = await startRawUpstream((q) => {
    const a = echoAnswer(q.wire)!;
    a.writeUInt16BE(0xc000 | (a.length - 16), a.length - 16); // the answer's owner points at itself
    return [a];
  });
  const healthy = await startRawUpstream();
  const sc = await startTestSidecar({ upstream: [`udp://127.0.0.1:${broken.port}`, `udp://127.0.0.1:${healthy.port}`] });
  t.after(async () => {
    await sc.stop();
    await broken.close();
    await healthy.close();
  });
  for (let i = 0; i < 5; i++) {
    const r = await udpAsk(sc.port, rawQuery(`m${i}.failover.example`, 1, 5, 1232), 3000);
    assert.ok(r, 'answered');
    assert.equal(r[3]! & 0x0f, 0, 'NOERROR from the healthy upstream');
    assert.deepEqual(addressesOf(r), ['192.0.2.1']);
  }
  // After three failures in a row the broken member is marked down and skipped.
  assert.ok(broken.count <= 4, `the broken upstream was asked ${broken.count} times`);
});
