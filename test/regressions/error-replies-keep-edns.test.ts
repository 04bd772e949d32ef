/**
 * Regression (DNS correctness #5): NOTIMP for NOTIFY, UPDATE and the other
 * opcodes, and FORMERR for a QDCOUNT other than 1, came back without an OPT
 * record and without the question, with RA set. RFC 6891 §7: a responder
 * MUST include an OPT record in its reply to a request that had one. Now
 * they carry OPT (DO mirrored, RFC 3225) whenever the request had a readable
 * one, echo the question section when it is readable, copy RD and CD, and
 * set no RA (the message was not taken as a query), as unbound does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildQuery, OPCODES, readReply, type QuerySpec } from '../helpers/dns-wire.ts';
import { sidecarBehind } from '../helpers/sidecar.ts';

const setup = (t: test.TestContext) => sidecarBehind(t);

const base: QuerySpec = { name: 'www.example', type: 'A', rd: true, cd: true };

for (const [name, opcode] of [['NOTIFY', OPCODES.NOTIFY], ['UPDATE', OPCODES.UPDATE], ['STATUS', OPCODES.STATUS], ['IQUERY', OPCODES.IQUERY], ['opcode 3', 3]] as const) {
  test(`${name} with EDNS: NOTIMP with OPT, the question echoed, RD and CD copied, no RA`, async (t) => {
    const { udp, tcp, upstream } = await setup(t);
    for (const session of [udp, tcp]) {
      const r = readReply(await session.query(buildQuery({ ...base, opcode, edns: { do: true } })));
      assert.equal(r.rcode, 4, 'NOTIMP');
      assert.equal(r.opcode, opcode, 'opcode echoed');
      assert.ok(r.opt, 'OPT in the reply to a request with OPT (RFC 6891 §7)');
      assert.equal(r.opt.do, true, 'DO mirrored (RFC 3225)');
      assert.deepEqual(r.questions, ['www.example A IN']);
      assert.deepEqual([r.flags.QR, r.flags.RD, r.flags.CD, r.flags.RA, r.flags.AD], [true, true, true, false, false]);
    }
    assert.equal(upstream.counts.total, 0, 'nothing forwarded');
  });
}

test('NOTIMP without EDNS: no OPT, the question echoed', async (t) => {
  const { udp } = await setup(t);
  const r = readReply(await udp.query(buildQuery({ ...base, opcode: OPCODES.UPDATE, edns: false })));
  assert.equal(r.rcode, 4);
  assert.equal(r.opt, undefined);
  assert.deepEqual(r.questions, ['www.example A IN']);
  assert.equal(r.flags.RA, false);
});

test('QDCOUNT 0 with EDNS: FORMERR with OPT, no question, no RA', async (t) => {
  const { udp, tcp } = await setup(t);
  for (const session of [udp, tcp]) {
    const r = readReply(await session.query(buildQuery({ ...base, qdcount: 0, edns: {} })));
    assert.equal(r.rcode, 1, 'FORMERR');
    assert.ok(r.opt, 'OPT kept');
    assert.equal(r.opt.do, false);
    assert.deepEqual(r.questions, []);
    assert.deepEqual([r.flags.RD, r.flags.CD, r.flags.RA], [true, true, false], 'a message not taken as a query: no RA, as unbound');
  }
});

test('QDCOUNT 2 with EDNS: FORMERR with OPT and both questions echoed', async (t) => {
  const { udp, tcp } = await setup(t);
  for (const session of [udp, tcp]) {
    const r = readReply(await session.query(buildQuery({ ...base, qdcount: 2, edns: {} })));
    assert.equal(r.rcode, 1);
    assert.ok(r.opt);
    assert.deepEqual(r.questions, ['www.example A IN', 'www.example A IN']);
  }
});

test('QDCOUNT 2 without EDNS: FORMERR without OPT', async (t) => {
  const { udp } = await setup(t);
  const r = readReply(await udp.query(buildQuery({ ...base, qdcount: 2, edns: false })));
  assert.equal(r.rcode, 1);
  assert.equal(r.opt, undefined);
  assert.equal(r.questions.length, 2);
});

test('BADVERS: OPT with the extended rcode, DO mirrored, the question echoed', async (t) => {
  const { udp } = await setup(t);
  const r = readReply(await udp.query(buildQuery({ ...base, edns: { version: 1, do: true } })));
  assert.equal(r.rcode, 16, 'BADVERS');
  assert.ok(r.opt);
  assert.equal(r.opt.version, 0);
  assert.equal(r.opt.do, true);
  assert.deepEqual(r.questions, ['www.example A IN']);
});
