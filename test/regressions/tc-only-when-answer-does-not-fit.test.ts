/**
 * Regression (DNS correctness #1): with a client limit of 512 bytes (no
 * EDNS), an MX answer that fits but whose glue does not came back with TC and
 * an empty answer. RFC 2181 §9: TC is not set merely because additional
 * information could not be included. Now whole additional RRsets are dropped
 * from the end first (the OPT record stays), then optional authority RRsets
 * (NS), and TC is set only when the answer does not fit, or when authority
 * records the answer needs do not fit: the SOA of a negative answer
 * (RFC 2308 §3) and DNSSEC denial proofs (RFC 4035 §3.1.3, "MUST set TC").
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as packet from 'dns-packet';
import { buildQuery, readReply, type QuerySpec, type ReplyView } from '../helpers/dns-wire.ts';
import { defaultAnswer } from '../helpers/dns-server.ts';
import { sidecarBehind } from '../helpers/sidecar.ts';

const ZONE = 'tc.example';
const rr = (name: string, type: string, data: unknown, ttl = 300) => ({ name, type, class: 'IN', ttl, data }) as packet.Answer;

/**
 * An MX answer with `count` targets (dns-packet does not compress: 46 bytes
 * a record), two NS records in the authority section (76 bytes), and glue:
 * an A and an AAAA per target, mx02 with three A records (one RRset).
 * For `mail.` 6 targets: 385 bytes without the glue, which is about 500.
 */
function mxReply(q: packet.Packet, count: number): packet.Packet {
  const name = q.questions![0]!.name;
  const targets = Array.from({ length: count }, (_, i) => `mx${String(i + 1).padStart(2, '0')}.${ZONE}`);
  const glue: packet.Answer[] = [];
  for (const [i, t] of targets.entries()) {
    const as = i === 1 ? ['192.0.2.1', '192.0.2.2', '192.0.2.3'] : [`192.0.2.${10 + i}`];
    for (const a of as) glue.push(rr(t, 'A', a));
    glue.push(rr(t, 'AAAA', `2001:db8::${i + 1}`));
  }
  return {
    id: q.id,
    type: 'response',
    flags: 0x0180,
    questions: q.questions,
    answers: targets.map((t, i) => rr(name, 'MX', { preference: 10 + i, exchange: t })),
    authorities: [rr(ZONE, 'NS', `ns1.${ZONE}`), rr(ZONE, 'NS', `ns2.${ZONE}`)],
    additionals: glue,
  };
}

/** An NXDOMAIN whose SOA and NSEC proofs (with signatures) are over 512 bytes. */
function negativeReply(q: packet.Packet): packet.Packet {
  const sig = (covered: string, owner: string) =>
    rr(owner, 'RRSIG', {
      typeCovered: covered, algorithm: 13, labels: 2, originalTTL: 300, expiration: 2_000_000_000, inception: 1_700_000_000,
      keyTag: 12345, signersName: ZONE, signature: Buffer.alloc(64, 7),
    });
  return {
    id: q.id,
    type: 'response',
    flags: 0x0183,
    questions: q.questions,
    authorities: [
      rr(ZONE, 'SOA', { mname: `ns1.${ZONE}`, rname: `hostmaster.${ZONE}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 300 }),
      sig('SOA', ZONE),
      rr(`a.${ZONE}`, 'NSEC', { nextDomain: `c.${ZONE}`, rrtypes: ['A', 'RRSIG', 'NSEC'] }),
      sig('NSEC', `a.${ZONE}`),
      rr(ZONE, 'NSEC', { nextDomain: `a.${ZONE}`, rrtypes: ['SOA', 'NS', 'RRSIG', 'NSEC', 'DNSKEY'] }),
      sig('NSEC', ZONE),
    ],
  };
}

function setup(t: test.TestContext) {
  return sidecarBehind(t, (q) => {
    const name = q.questions![0]!.name;
    if (name.startsWith('big.')) return defaultAnswer(q); // a TXT set of about 5 KB
    if (name.startsWith('nx.')) return negativeReply(q);
    return mxReply(q, name.startsWith('many.') ? 10 : 6);
  });
}

/** Every (owner, type) RRset of `section` with its record count. */
function rrsets(section: readonly { owner: string; type: string }[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of section) out.set(`${r.owner}/${r.type}`, (out.get(`${r.owner}/${r.type}`) ?? 0) + 1);
  return out;
}

function assertWholeRrsets(cut: ReplyView, full: ReplyView): void {
  const whole = rrsets(full.additional);
  for (const [set, n] of rrsets(cut.additional)) assert.equal(n, whole.get(set), `additional RRset ${set} kept whole`);
}

const mx = (edns: QuerySpec['edns']): QuerySpec => ({ name: `mail.${ZONE}`, type: 'MX', edns });

test('UDP without EDNS: an MX answer that fits comes back whole, without TC; glue is cut by whole RRsets', async (t) => {
  const { udp, tcp } = await setup(t);
  const full = readReply(await tcp.query(buildQuery(mx(false))));
  assert.equal(full.answer.length, 6);
  assert.equal(full.additional.length, 14, 'over TCP nothing is cut');

  const raw = await udp.query(buildQuery(mx(false)));
  const r = readReply(raw);
  assert.ok(raw.length <= 512, `${raw.length} bytes`);
  assert.equal(r.flags.TC, false, 'no TC for additional data that did not fit (RFC 2181 §9)');
  assert.equal(r.answer.length, 6, 'the whole answer');
  assert.equal(r.authority.length, 2, 'the authority fits: it stays');
  // 127 bytes are left for glue: mx01's A and AAAA (74); mx02's three A records (93) would not fit whole.
  assert.deepEqual(r.additional.map((x) => x.key), [`mx01.${ZONE} IN A 192.0.2.10`, `mx01.${ZONE} IN AAAA 2001:db8::1`]);
  assertWholeRrsets(r, full);
  assert.equal(r.opt, undefined);
});

test('UDP with EDNS 512: the OPT record stays, additional RRsets go first', async (t) => {
  const { udp } = await setup(t);
  const raw = await udp.query(buildQuery(mx({ udpSize: 512 })));
  const r = readReply(raw);
  assert.ok(raw.length <= 512);
  assert.equal(r.flags.TC, false);
  assert.equal(r.answer.length, 6);
  assert.equal(r.additional.length, 2);
  assert.ok(r.opt, 'OPT kept (RFC 6891 §7)');
  assert.equal(r.opt.udpSize, 1232);
});

test('UDP without EDNS: NS records ending the authority section go when the answer fits only without them', async (t) => {
  const { udp } = await setup(t);
  // 10 targets: 493 bytes with the answer alone, 569 with the NS records.
  const r = readReply(await udp.query(buildQuery({ name: `many.${ZONE}`, type: 'MX', edns: false })));
  assert.equal(r.flags.TC, false);
  assert.equal(r.answer.length, 10);
  assert.deepEqual(r.authority, []);
  assert.deepEqual(r.additional, []);
});

test('UDP with EDNS 4096: everything fits, nothing is dropped', async (t) => {
  const { udp, tcp } = await setup(t);
  const full = readReply(await tcp.query(buildQuery(mx({ udpSize: 4096 }))));
  const r = readReply(await udp.query(buildQuery(mx({ udpSize: 4096 }))));
  assert.equal(r.flags.TC, false);
  assert.deepEqual(r.additional.map((x) => x.key), full.additional.map((x) => x.key));
  assert.deepEqual(r.authority.map((x) => x.key), full.authority.map((x) => x.key));
});

test('a negative answer whose SOA and NSEC proofs do not fit gets TC (RFC 4035 §3.1.3), never a bare NXDOMAIN', async (t) => {
  const { udp, tcp } = await setup(t);
  const q: QuerySpec = { name: `nx.${ZONE}`, type: 'A', edns: { udpSize: 512, do: true } };
  const full = readReply(await tcp.query(buildQuery(q)));
  assert.equal(full.authority.length, 6);
  const r = readReply(await udp.query(buildQuery(q)));
  assert.equal(r.flags.TC, true);
  assert.equal(r.rcode, 3);
  assert.ok(r.opt, 'OPT kept on the truncated reply');
});

test('an answer that does not fit itself gets TC with the question and no records', async (t) => {
  const { udp } = await setup(t);
  const raw = await udp.query(buildQuery({ name: `big.${ZONE}`, type: 'TXT', edns: false }));
  const r = readReply(raw);
  assert.equal(r.flags.TC, true);
  assert.deepEqual(r.questions, [`big.${ZONE} TXT IN`]);
  assert.deepEqual([r.answer.length, r.authority.length, r.additional.length], [0, 0, 0]);
});
