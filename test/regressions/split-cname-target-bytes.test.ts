/**
 * Regression (issue 6, found by the escaped-name fix's review of every
 * re-encoding path): a split zone's CNAME answer carried its target's records
 * decoded by dns-packet and encoded again. A name in them holding bytes that
 * are not UTF-8 text came back as U+FFFD (three bytes each), so the name
 * changed, and a label that grew past 63 bytes made the whole reply
 * malformed. The target's records are now moved over as wire bytes, with
 * compression pointers expanded.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { expandRecords, scanReply } from '../../sidecar/dns/records.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { checkMessage, echoAnswer, rawQuery, startRawUpstream, udpAsk } from '../reliability/lib.ts';

/** The answer to `q` (for the CNAME target): a CNAME to a name with a label of `len` 0xff bytes, then that name's A record. */
function chainAnswer(q: Buffer, len: number): Buffer {
  let qEnd = 12;
  while (q[qEnd] !== 0) qEnd += 1 + q[qEnd]!;
  qEnd += 5;
  const head = Buffer.from(echoAnswer(q)!.subarray(0, qEnd));
  const target = Buffer.concat([Buffer.from([len]), Buffer.alloc(len, 0xff), Buffer.from([7]), Buffer.from('example'), Buffer.from([0])]);
  const cname = Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, target.length]), target]);
  // The A record's owner is a pointer to the CNAME's data.
  const a = Buffer.from([0xc0, qEnd + 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 9, 9]);
  const out = Buffer.concat([head, cname, a]);
  out.writeUInt16BE(2, 6);
  return out;
}

test('expandRecords: pointers expanded, name bytes kept exactly', () => {
  const q = rawQuery('target.example', 1, 1);
  const body = chainAnswer(q, 63);
  const scan = scanReply(body);
  const { records } = expandRecords(body, scan.questionEnd, scan.answerCount);
  assert.equal(records.length, 2);
  const targetName = Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0xff), Buffer.from([7]), Buffer.from('example'), Buffer.from([0])]);
  assert.ok(records[0]!.includes(targetName), 'the CNAME data, expanded');
  assert.deepEqual(records[1]!.subarray(0, targetName.length), targetName, 'the A owner, expanded from a pointer');
});

test('split zone CNAME: target records with non-UTF-8 names arrive unchanged and well-formed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-regression-'));
  writeFileSync(join(dir, 'policy.yaml'), `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata: { name: chain }
spec:
  splitZones:
    - { name: c, names: ["*.cn.example"], cname: target.example }
`);
  const len = 63;
  const upstream = await startRawUpstream((q) => [chainAnswer(q.wire, len)]);
  const sc = await startTestSidecar({ upstream: [`udp://127.0.0.1:${upstream.port}`], policy: join(dir, 'policy.yaml') });
  t.after(async () => {
    await sc.stop();
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // Twice: from the upstream, then with the target's answer from the cache.
  for (const name of ['b1.cn.example', 'b2.cn.example']) {
    const r = await udpAsk(sc.port, rawQuery(name, 1, 9, 1232), 2000);
    assert.ok(r);
    assert.equal(typeof checkMessage(r), 'object', `malformed: ${String(checkMessage(r))}`);
    assert.equal(r.readUInt16BE(6), 3, 'CNAME, the target\'s CNAME, its A record');
    assert.ok(r.includes(Buffer.concat([Buffer.from([len]), Buffer.alloc(len, 0xff)])), 'the 0xff label is kept byte for byte');
  }
});
