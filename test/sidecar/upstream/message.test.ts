/**
 * The reply checks every transport applies (RFC 5452) and the question
 * reader they share.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readQuery } from '../../../sidecar/dns/wire.ts';
import { scanReply } from '../../../sidecar/dns/records.ts';
import { matchesQuestion, questionEnd } from '../../../sidecar/upstream/message.ts';
import { query, reply } from '../cache/fixtures.ts';

test('matchesQuestion: same name in any case, same type and class (RFC 5452)', () => {
  const q = query('WwW.ExAmple.COM');
  const qEnd = readQuery(q).query!.questionEnd;
  const ok = reply('www.example.com');
  assert.equal(matchesQuestion(q, qEnd, ok), true);
  const other = reply('www.example.org');
  assert.equal(matchesQuestion(q, qEnd, other), false);
  const longer = reply('www.example.com.evil');
  assert.equal(matchesQuestion(q, qEnd, longer), false);
  const aaaa = reply('www.example.com', { type: 'AAAA' });
  assert.equal(matchesQuestion(q, qEnd, aaaa), false);
  const chaos = Buffer.from(ok);
  chaos.writeUInt16BE(3, scanReply(ok).questionEnd - 2);
  assert.equal(matchesQuestion(q, qEnd, chaos), false);
  const none = Buffer.from(ok.subarray(0, 12));
  none.writeUInt16BE(0, 4);
  assert.equal(matchesQuestion(q, qEnd, none), false);
  const notResponse = Buffer.from(ok);
  notResponse[2] = notResponse[2]! & 0x7f;
  assert.equal(matchesQuestion(q, qEnd, notResponse), false, 'QR must be set');
});

test('questionEnd: the offset after the question, -1 for a short or malformed message', () => {
  const q = query('www.example.com');
  assert.equal(questionEnd(q), readQuery(q).query!.questionEnd);
  assert.equal(questionEnd(q.subarray(0, 11)), -1);
  assert.equal(questionEnd(q.subarray(0, q.length - 6)), -1, 'question cut in its name');
  const bad = Buffer.from(q);
  bad[12] = 0x80; // reserved label type
  assert.equal(questionEnd(bad), -1);
});
