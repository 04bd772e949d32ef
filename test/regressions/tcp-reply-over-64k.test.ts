/**
 * Regression (issue 6, found while hunting what the wire fuzz could not
 * reach): an upstream reply close to 64 KiB, asked for over TCP by a client
 * using EDNS, grew past 65 535 bytes when the sidecar appended its OPT
 * record. The TCP listener's 2-byte length prefix then threw a RangeError in
 * a promise callback: an unhandled rejection, which ends a Node process. Now
 * a reply that does not fit a TCP frame is cut with TC set (RFC 7766 §8),
 * and a reply that cannot be built is a SERVFAIL, never a rejection.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RCode } from '../../sidecar/dns/constants.ts';
import { finishReply } from '../../sidecar/dns/reply.ts';
import { readQuery } from '../../sidecar/dns/wire.ts';
import { spawnServing, waitFor } from '../helpers/sidecar.ts';
import { checkMessage, echoAnswer, rawQuery, startRawUpstream, tcpClient, udpAsk } from '../reliability/lib.ts';

/** A reply to `query` of exactly about `size` bytes: A records owned by the question name. */
function bigReply(query: Buffer, size: number): Buffer {
  const head = echoAnswer(query)!;
  let qEnd = 12;
  while (query[qEnd] !== 0) qEnd += 1 + query[qEnd]!;
  qEnd += 5;
  const n = Math.floor((size - qEnd) / 16);
  const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
  const out = Buffer.concat([head.subarray(0, qEnd), ...Array.from({ length: n }, () => rr)]);
  out.writeUInt16BE(n, 6);
  return out;
}

test('finishReply: a TCP reply that would pass 65 535 bytes with its OPT record is cut with TC set', () => {
  const wire = rawQuery('big.example', 1, 5, 4096);
  const q = readQuery(wire).query!;
  const body = bigReply(wire, 65_533);
  body.writeUInt16BE(0x8180, 2);
  const out = finishReply(body, q, 0, RCode.NOERROR);
  assert.ok(out.length <= 65_535);
  assert.ok(out[2]! & 0x02, 'TC set');
  assert.equal(typeof checkMessage(out), 'object');
});

test('sidecar process: a near-64 KiB upstream answer over TCP with EDNS does not end the process', async (t) => {
  const upstream = await startRawUpstream((q) => {
    if (q.proto === 'udp') {
      // Truncated over UDP: the sidecar retries over TCP.
      const tc = echoAnswer(q.wire)!;
      let qEnd = 12;
      while (q.wire[qEnd] !== 0) qEnd += 1 + q.wire[qEnd]!;
      const cut = Buffer.from(tc.subarray(0, qEnd + 5));
      cut.writeUInt16BE(cut.readUInt16BE(2) | 0x0200, 2);
      cut.writeUInt16BE(0, 6);
      return [cut];
    }
    return [bigReply(q.wire, 65_533)];
  });
  const child = await spawnServing(['sidecar', '--upstream', `udp://127.0.0.1:${upstream.port}`]);
  t.after(async () => {
    await child.kill();
    await upstream.close();
  });
  const port = child.port;
  const c = await tcpClient(port);
  c.send(rawQuery('big.example', 1, 5, 4096));
  assert.ok(await c.until(() => c.replies.length > 0, 3000), 'answered');
  c.close();
  const reply = c.replies[0]!;
  assert.equal(typeof checkMessage(reply), 'object');
  assert.ok(reply[2]! & 0x02, 'TC set: the answer does not fit a TCP message');
  // A later query answered shows the process outlived the big reply.
  assert.ok(await udpAsk(port, rawQuery('after.example', 1, 6, 1232), 2000), 'still serving');
  assert.equal(child.child.exitCode, null, `the sidecar exited: ${child.stderr()}`);
});
