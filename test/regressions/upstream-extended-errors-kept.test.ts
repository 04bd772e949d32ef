/**
 * Regression (DNS correctness #6): the upstream's Extended DNS Errors were
 * dropped when the sidecar replaced the upstream's OPT record with its own,
 * so a validating upstream's EDE 6 (DNSSEC Bogus) never reached the client.
 * Now the upstream's EDE options travel with the reply (and with the copy in
 * the cache) and the client gets them beside the sidecar's own (RFC 8914);
 * the upstream's other options stay hop by hop (RFC 6891 §6.1.1).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as packet from 'dns-packet';
import { buildQuery, readReply } from '../helpers/dns-wire.ts';
import { defaultAnswer } from '../helpers/dns-server.ts';
import { sidecarBehind } from '../helpers/sidecar.ts';

const ede = (code: number, text: string) => {
  const data = Buffer.alloc(2 + Buffer.byteLength(text));
  data.writeUInt16BE(code, 0);
  data.write(text, 2);
  return { code: 15, data };
};
const NSID = { code: 3, data: Buffer.from('upstream-1') };

/** The upstream's OPT record with `options`. */
const opt = (options: { code: number; data: Buffer }[]) => ({ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, options }) as unknown as packet.Answer;

function setup(t: test.TestContext) {
  return sidecarBehind(t, (q) => {
    const name = q.questions![0]!.name;
    const reply = defaultAnswer(q);
    if (name.startsWith('bogus.')) return { ...reply, flags: 0x8182, answers: [], additionals: [opt([ede(6, 'signature crypto failed'), NSID])] };
    if (name.startsWith('filtered.')) return { ...reply, additionals: [opt([NSID, ede(17, 'filtered by upstream'), ede(16, '')])] };
    if (name.startsWith('mid.')) {
      // OPT in the middle of the additional section: records follow it.
      return {
        ...reply,
        additionals: [opt([ede(18, 'prohibited')]), { name: `ns.${name}`, type: 'A', class: 'IN', ttl: 60, data: '192.0.2.53' }],
      };
    }
    return reply;
  });
}

test('an upstream SERVFAIL with EDE 6 reaches the client with EDE 6, over UDP and TCP', async (t) => {
  const { udp, tcp } = await setup(t);
  for (const session of [udp, tcp]) {
    const r = readReply(await session.query(buildQuery({ name: 'bogus.example', type: 'A', edns: { do: true } })));
    assert.equal(r.rcode, 2);
    assert.ok(r.opt);
    assert.deepEqual(r.opt.ede, [{ code: 6, text: 'signature crypto failed' }]);
  }
});

test('the upstream EDEs of a cached answer come with every hit; other upstream options do not', async (t) => {
  const { udp, upstream } = await setup(t);
  for (let i = 0; i < 2; i++) {
    const raw = await udp.query(buildQuery({ name: 'filtered.example', type: 'A', edns: {} }));
    const r = readReply(raw);
    assert.equal(r.rcode, 0);
    assert.deepEqual(r.answer.map((x) => x.data), ['192.0.2.1']);
    assert.ok(r.opt);
    assert.deepEqual(r.opt.ede, [{ code: 17, text: 'filtered by upstream' }, { code: 16, text: '' }], `query ${i + 1}`);
    assert.ok(!raw.includes(NSID.data), 'NSID is hop by hop');
  }
  assert.equal(upstream.counts.total, 1, 'the second answer came from the cache');
});

test('a client without EDNS gets no OPT record, upstream EDEs or not', async (t) => {
  const { udp } = await setup(t);
  const r = readReply(await udp.query(buildQuery({ name: 'bogus.example', type: 'A', edns: false })));
  assert.equal(r.rcode, 2);
  assert.equal(r.opt, undefined);
  assert.deepEqual(r.additional, []);
});

test('an upstream OPT record followed by other records: the EDE kept, the records kept, one OPT', async (t) => {
  const { udp } = await setup(t);
  const raw = await udp.query(buildQuery({ name: 'mid.example', type: 'A', edns: {} }));
  const r = readReply(raw);
  assert.ok(r.opt);
  assert.deepEqual(r.opt.ede, [{ code: 18, text: 'prohibited' }]);
  assert.deepEqual(r.additional.map((x) => x.key), ['ns.mid.example IN A 192.0.2.53']);
  assert.equal(raw.readUInt16BE(10), 2, 'ARCOUNT: the record and one OPT');
});
