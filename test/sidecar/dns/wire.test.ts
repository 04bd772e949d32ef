/**
 * The query name as the wire reader spells it: the one string that keys
 * the cache and the policy, so two spellings of one name must come out
 * equal, and a name with bytes that need escapes must stay distinct.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readQuery } from '../../../sidecar/dns/wire.ts';

/** A query for the labels given as raw bytes. */
function queryFor(labels: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) {
    const b = typeof l === 'string' ? Buffer.from(l, 'latin1') : l;
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0, 0, 1, 0, 1]));
  return Buffer.concat(parts);
}

function qnameOf(labels: (string | Buffer)[]): string {
  const r = readQuery(queryFor(labels));
  assert.equal(r.rejected, undefined, JSON.stringify(r.rejected));
  return r.query!.qname;
}

test('readQuery: the name is lower-cased, dot-separated, without the root dot', () => {
  assert.equal(qnameOf(['WwW', 'Example', 'COM']), 'www.example.com');
  assert.equal(qnameOf(['a-b_c', '0']), 'a-b_c.0');
  assert.equal(qnameOf([]), '');
  // A query read after one with a longer name does not keep its tail.
  assert.equal(qnameOf(['x']), 'x');
});

test('readQuery: bytes that presentation format escapes are escaped, before or after plain labels', () => {
  assert.equal(qnameOf(['a.b', 'Example']), 'a\\.b.example');
  assert.equal(qnameOf(['ok', 'back\\slash']), 'ok.back\\\\slash');
  assert.equal(qnameOf([Buffer.from([0x41, 0x20, 0xff, 0x00])]), 'a\\032\\255\\000');
  assert.equal(qnameOf(['Plain', Buffer.from([0x7f]), 'TAIL']), 'plain.\\127.tail');
});

test('readQuery: a 255-byte name is read whole; one byte more is FORMERR', () => {
  const labels = ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'D'.repeat(61)];
  assert.equal(qnameOf(labels), ['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(61)].join('.'));
  const r = readQuery(queryFor([...labels.slice(0, 3), 'd'.repeat(62)]));
  assert.equal(r.rejected?.rcode, 1);
  assert.match(r.rejected!.why, /longer than 255/);
});

test('readQuery: names read again, and more names than the reader remembers, keep their own text', () => {
  // The reader hands back the string of a name it read lately (wire.ts, RECENT_NAMES, 1,024 slots):
  // 5,000 names must share slots, and each must still come out as itself, in any spelling.
  const names = Array.from({ length: 5000 }, (_, i) => [`n${i}`, i % 3 ? 'example' : 'Svc', 'COM']);
  for (let i = 0; i < names.length; i++) {
    const labels = names[i]!;
    const text = labels.join('.').toLowerCase();
    assert.equal(qnameOf(labels), text);
    assert.equal(qnameOf(labels.map((l) => l.toUpperCase())), text);
    const earlier = names[(i * 7) % (i + 1)]!;
    assert.equal(qnameOf(earlier), earlier.join('.').toLowerCase());
  }
  // Same length, same slot or not: a name never comes back as another of its length.
  assert.equal(qnameOf(['ab', 'test']), 'ab.test');
  assert.equal(qnameOf(['ba', 'test']), 'ba.test');
  assert.equal(qnameOf(['ab', 'test']), 'ab.test');
});
