import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { RCode } from '../../../sidecar/dns/constants.ts';
import { scanReply, stripOpt } from '../../../sidecar/dns/records.ts';
import { finishReply } from '../../../sidecar/dns/reply.ts';
import { readQuery, type Rejected } from '../../../sidecar/dns/wire.ts';
import { SidecarError } from '../../../sidecar/errors.ts';
import { a, opt, query, reply, soa, ttls } from '../cache/fixtures.ts';

function badReply(buf: Buffer, pattern: RegExp): void {
  assert.throws(() => scanReply(buf), (err: unknown) => {
    assert.ok(err instanceof SidecarError);
    assert.equal(err.code, 'UPSTREAM_BAD_REPLY');
    assert.match(err.message, pattern);
    return true;
  });
}

test('scanReply: finds every TTL, the minimum, and the OPT record', () => {
  const wire = reply('example.com', {
    id: 77,
    answers: [a('example.com', 300), a('example.com', 120, '192.0.2.2')],
    additionals: [a('ns.example.com', 900), opt()],
  });
  const scan = scanReply(wire);
  assert.equal(scan.id, 77);
  assert.equal(scan.rcode, RCode.NOERROR);
  assert.equal(scan.answerCount, 2);
  assert.equal(scan.questionEnd, 12 + 13 + 4);
  assert.deepEqual(scan.ttlOffsets.map((o) => wire.readUInt32BE(o)), [300, 120, 900]);
  assert.equal(scan.minTtl, 120);
  assert.equal(scan.negativeTtl, -1);
  assert.equal(scan.optEnd, wire.length);
  assert.equal(wire[scan.optStart], 0);
  assert.equal(wire.readUInt16BE(scan.optStart + 1), 41);
});

test('scanReply: a reply without records has minTtl -1 and no OPT', () => {
  const scan = scanReply(reply('example.com', { rcode: RCode.SERVFAIL }));
  assert.equal(scan.minTtl, -1);
  assert.equal(scan.optStart, -1);
  assert.equal(scan.rcode, RCode.SERVFAIL);
  assert.deepEqual(scan.ttlOffsets, []);
});

test('scanReply: negativeTtl is min(SOA TTL, SOA MINIMUM) of the authority SOA (RFC 2308 §5)', () => {
  const low = scanReply(reply('nope.example.com', { rcode: RCode.NXDOMAIN, authorities: [soa('example.com', 3600, 60)] }));
  assert.equal(low.negativeTtl, 60);
  assert.equal(low.rcode, RCode.NXDOMAIN);
  const ttlFirst = scanReply(reply('nope.example.com', { rcode: RCode.NXDOMAIN, authorities: [soa('example.com', 30, 600)] }));
  assert.equal(ttlFirst.negativeTtl, 30);
  // An SOA in the answer section (a query for the SOA itself) is not a negative TTL.
  const answer = scanReply(reply('example.com', { type: 'SOA', answers: [soa('example.com', 30, 600)] }));
  assert.equal(answer.negativeTtl, -1);
});

test('scanReply: SOA names with compression pointers are skipped correctly', () => {
  // Hand-built: question example.com/A, authority: <ptr 12> SOA, MNAME "ns1"+<ptr 12>, RNAME <ptr 12>.
  const question = Buffer.from([7, ...Buffer.from('example'), 3, ...Buffer.from('com'), 0, 0, 1, 0, 1]);
  const rdata = Buffer.concat([
    Buffer.from([3, ...Buffer.from('ns1'), 0xc0, 12]),
    Buffer.from([0xc0, 12]),
    Buffer.from([0, 0, 0, 1, 0, 0, 0x0e, 0x10, 0, 0, 0x02, 0x58, 0, 1, 0x51, 0x80, 0, 0, 0, 45]),
  ]);
  const rr = Buffer.alloc(12);
  rr.writeUInt16BE(0xc00c, 0);
  rr.writeUInt16BE(6, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(300, 6);
  rr.writeUInt16BE(rdata.length, 10);
  const header = Buffer.from([0, 9, 0x81, 0x83, 0, 1, 0, 0, 0, 1, 0, 0]);
  const wire = Buffer.concat([header, question, rr, rdata]);
  const scan = scanReply(wire);
  assert.equal(scan.negativeTtl, 45);
  assert.equal(scan.rcode, RCode.NXDOMAIN);
  assert.deepEqual(scan.ttlOffsets, [12 + question.length + 6]);
  // The same SOA with one byte too many in its data is malformed.
  const longer = Buffer.concat([header, question, rr, rdata, Buffer.from([0])]);
  longer.writeUInt16BE(rdata.length + 1, 12 + question.length + 10);
  badReply(longer, /SOA data/);
});

test('scanReply: the full rcode includes the OPT extended bits', () => {
  const wire = reply('example.com', { rcode: 0, additionals: [opt(1)] }); // 1 << 4 | 0 = 16 (BADVERS)
  assert.equal(scanReply(wire).rcode, RCode.BADVERS);
});

test('scanReply: malformed replies throw UPSTREAM_BAD_REPLY', () => {
  const good = reply('example.com', { answers: [a('example.com', 60)], additionals: [opt()] });
  badReply(good.subarray(0, 11), /shorter than a DNS header/);
  badReply(good.subarray(0, good.length - 3), /past the end/);
  const lying = Buffer.from(good);
  lying.writeUInt16BE(2, 6); // ANCOUNT 2, one answer present
  badReply(lying, /record/);
  const fewer = Buffer.from(good);
  fewer.writeUInt16BE(0, 10); // ARCOUNT 0 while OPT is there
  badReply(fewer, /after the last record/);
  const badLabel = Buffer.from(good);
  badLabel[12] = 0x47; // label type 01
  badReply(badLabel, /question/);
  const twoOpts = reply('example.com', { additionals: [opt(), opt()] });
  badReply(twoOpts, /more than one OPT/);
  const optInAnswer = reply('example.com', { answers: [opt()] });
  badReply(optInAnswer, /outside the additional section/);
  const questionPastEnd = reply('example.com').subarray(0, 20);
  badReply(questionPastEnd, /question 1/);
});

test('stripOpt: OPT last is cut off with ARCOUNT decremented', () => {
  const wire = reply('example.com', { answers: [a('example.com', 60)], additionals: [a('ns.example.com', 60), opt()] });
  const scan = scanReply(wire);
  const { body: out, scan: outScan } = stripOpt(wire, scan);
  assert.equal(out.length, scan.optStart);
  assert.equal(out.readUInt16BE(10), 1);
  const again = scanReply(out);
  assert.equal(again.optStart, -1);
  assert.deepEqual(again.ttlOffsets, scan.ttlOffsets);
  assert.deepEqual(outScan, again, 'the scan returned describes the body returned');
  assert.equal(wire.readUInt16BE(10), 2, 'the input is not modified');
});

test('stripOpt: OPT before other records falls back to a rebuild', () => {
  const wire = reply('example.com', { id: 4242, answers: [a('example.com', 60)], additionals: [opt(), a('ns.example.com', 70)] });
  const scan = scanReply(wire);
  const { body: out, scan: outScan } = stripOpt(wire, scan);
  const decoded = packet.decode(out);
  assert.equal(decoded.id, 4242);
  assert.equal(out.readUInt16BE(2), wire.readUInt16BE(2));
  assert.deepEqual(decoded.additionals?.map((r) => r.type), ['A']);
  assert.deepEqual(ttls(out), [60, 70]);
  assert.equal(scanReply(out).optStart, -1);
  assert.deepEqual(outScan, scanReply(out), 'the scan returned describes the rebuilt body');
});

/** An OPT record with `options` (code and data), extended rcode `ext`. */
function optWith(options: { code: number; data: Buffer }[], ext = 0): packet.Answer {
  return { type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: ext, flags: 0, options } as unknown as packet.Answer;
}

const edeOption = (code: number, text: string) => ({ code: 15, data: Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(text)]) });

test('stripOpt: an OPT record with EDE options stays last, holding only those options (RFC 8914)', () => {
  const wire = reply('example.com', {
    answers: [a('example.com', 60)],
    additionals: [optWith([{ code: 3, data: Buffer.from('nsid') }, edeOption(6, 'bogus'), { code: 10, data: Buffer.alloc(8) }, edeOption(22, '')])],
  });
  const scan = scanReply(wire);
  const { body, scan: outScan } = stripOpt(wire, scan);
  assert.deepEqual(outScan, scanReply(body), 'the scan returned describes the body returned');
  assert.equal(body.readUInt16BE(10), 1, 'one OPT record');
  const kept = (packet.decode(body).additionals![0] as unknown as { options: { code: number; data: Buffer }[] }).options;
  assert.deepEqual(kept.map((o) => [o.code, o.data.readUInt16BE(0)]), [[15, 6], [15, 22]], 'EDEs only, in order: NSID and cookie go');
  const rebuilt = reply('example.com', { answers: [a('example.com', 60)], additionals: [optWith([edeOption(18, 'x')], 1), a('ns.example.com', 70)] });
  const r = stripOpt(rebuilt, scanReply(rebuilt));
  assert.deepEqual(packet.decode(r.body).additionals!.map((x) => x.type), ['A', 'OPT'], 'moved last when records followed it');
  assert.equal(r.scan.rcode, scanReply(rebuilt).rcode, 'the extended rcode is kept');
});

test('finishReply: the carried EDEs join the sidecar\'s own in the client\'s OPT record; without EDNS they go', () => {
  const wire = reply('example.com', { answers: [a('example.com', 60)], additionals: [optWith([edeOption(6, 'bogus')])] });
  const { body } = stripOpt(wire, scanReply(wire));
  const withEdns = readQuery(query('example.com', { dnssecOk: true })).query!;
  const out = packet.decode(finishReply(body, withEdns, 1232, 0, { code: 3, text: 'stale answer' }));
  const o = out.additionals!.find((x) => x.type === 'OPT') as unknown as { udpPayloadSize: number; flags: number; options: { code: number; data: Buffer }[] };
  assert.equal(out.additionals!.length, 1);
  assert.equal(o.udpPayloadSize, 1232, 'the sidecar\'s OPT, not the upstream\'s');
  assert.equal(o.flags & 0x8000, 0x8000, 'DO mirrored');
  assert.deepEqual(o.options.map((x) => [x.data.readUInt16BE(0), x.data.subarray(2).toString()]), [[3, 'stale answer'], [6, 'bogus']]);
  const plain = finishReply(body, readQuery(query('example.com')).query!, 512, 0);
  assert.equal(plain.readUInt16BE(10), 0, 'no OPT record for a client without EDNS');
  assert.deepEqual(packet.decode(plain).answers!.map((x) => (x as { data: unknown }).data), ['192.0.2.1']);
});

test('stripOpt: without OPT returns the same buffer', () => {
  const wire = reply('example.com', { answers: [a('example.com', 60)] });
  assert.equal(stripOpt(wire, scanReply(wire)).body, wire);
});

// ---- wire.ts: readQuery ----

function rejected(buf: Buffer): Rejected {
  const r = readQuery(buf);
  assert.ok(r.rejected, 'expected a rejection');
  return r.rejected;
}

test('readQuery: a plain query', () => {
  const r = readQuery(query('Www.Example.com', { id: 513, type: 'AAAA' }));
  assert.ok(r.query);
  assert.equal(r.query.id, 513);
  assert.equal(r.query.qname, 'www.example.com');
  assert.equal(r.query.qtype, 28);
  assert.equal(r.query.qclass, 1);
  assert.equal(r.query.edns, false);
  assert.equal(r.query.ednsUdpSize, 0);
  assert.equal(r.query.questionEnd, 12 + 17 + 4);
});

test('readQuery: EDNS size and DO bit', () => {
  const r = readQuery(query('example.com', { dnssecOk: true }));
  assert.ok(r.query);
  assert.equal(r.query.edns, true);
  assert.equal(r.query.ednsUdpSize, 1232);
  assert.equal(r.query.dnssecOk, true);
});

test('readQuery: truncated header and QR set are dropped', () => {
  assert.equal(rejected(Buffer.alloc(11)).rcode, -1);
  const qr = query('example.com');
  qr[2]! |= 0x80;
  assert.equal(rejected(qr).rcode, -1);
});

test('readQuery: opcode other than QUERY is NOTIMP, with the question and the OPT record it had', () => {
  const notify = query('example.com', { dnssecOk: true });
  notify[2] = (notify[2]! & 0x87) | (4 << 3);
  const r = rejected(notify);
  assert.equal(r.rcode, RCode.NOTIMP);
  assert.deepEqual([r.questionEnd, r.edns, r.dnssecOk], [12 + 13 + 4, true, true]);
  const plain = query('example.com');
  plain[2] = (plain[2]! & 0x87) | (5 << 3);
  assert.deepEqual([rejected(plain).rcode, rejected(plain).edns], [RCode.NOTIMP, false]);
});

test('readQuery: QDCOUNT 0 or 2 is FORMERR, echoing what is readable', () => {
  const zero = query('example.com', { edns: true });
  zero.writeUInt16BE(0, 4);
  // With no question the bytes after the header are read as records: the question is not an OPT record.
  const z = rejected(Buffer.concat([zero.subarray(0, 12), zero.subarray(12 + 13 + 4)]));
  assert.deepEqual([z.rcode, z.questionEnd, z.edns], [RCode.FORMERR, 12, true]);
  const one = query('example.com', { edns: true });
  const question = one.subarray(12, 12 + 13 + 4);
  const two = Buffer.concat([one.subarray(0, 12), question, question, one.subarray(12 + 13 + 4)]);
  two.writeUInt16BE(2, 4);
  const t = rejected(two);
  assert.deepEqual([t.rcode, t.questionEnd, t.edns], [RCode.FORMERR, 12 + 2 * (13 + 4), true]);
  const cut = Buffer.from(two.subarray(0, 12 + 13 + 4 + 5));
  assert.deepEqual([rejected(cut).rcode, rejected(cut).questionEnd, rejected(cut).edns], [RCode.FORMERR, 0, false], 'unreadable second question: nothing echoed');
});

test('readQuery: a label past the end, a pointer or a bad label type in the question is FORMERR', () => {
  const q = query('example.com');
  assert.equal(rejected(q.subarray(0, 16)).rcode, RCode.FORMERR);
  assert.equal(rejected(q.subarray(0, q.length - 2)).rcode, RCode.FORMERR, 'QTYPE/QCLASS cut');
  const pointer = Buffer.from(q);
  pointer[12] = 0xc0;
  pointer[13] = 12;
  const p = rejected(pointer);
  assert.equal(p.rcode, RCode.FORMERR);
  assert.match(p.why, /compression pointer/);
  const badType = Buffer.from(q);
  badType[12] = 0x40;
  assert.equal(rejected(badType).rcode, RCode.FORMERR);
});

test('readQuery: two OPT records are FORMERR, EDNS version 1 is BADVERS', () => {
  const one = query('example.com', { edns: true });
  const optBytes = one.subarray(one.length - 11);
  const two = Buffer.concat([one, optBytes]);
  two.writeUInt16BE(2, 10);
  const r = rejected(two);
  assert.equal(r.rcode, RCode.FORMERR);
  assert.match(r.why, /more than one OPT/);
  assert.equal(r.edns, true, 'the first OPT record was sound: the reply carries one');
  const v1 = Buffer.from(one);
  v1[one.length - 11 + 6] = 1; // version byte of the OPT TTL
  assert.equal(rejected(v1).rcode, RCode.BADVERS);
  assert.equal(rejected(v1).edns, true);
});

test('readQuery: EDNS options that do not tile the OPT data are FORMERR', () => {
  const one = query('example.com', { edns: true });
  // Replace the empty rdata with one option whose length claims 8 bytes but has 2.
  const bad = Buffer.concat([one, Buffer.from([0, 10, 0, 8, 1, 2])]);
  bad.writeUInt16BE(6, one.length - 2);
  assert.equal(rejected(bad).rcode, RCode.FORMERR);
  const short = Buffer.concat([one, Buffer.from([0, 10])]);
  short.writeUInt16BE(2, one.length - 2);
  assert.equal(rejected(short).rcode, RCode.FORMERR);
  const fine = Buffer.concat([one, Buffer.from([0, 10, 0, 2, 1, 2])]);
  fine.writeUInt16BE(6, one.length - 2);
  assert.ok(readQuery(fine).query);
});
