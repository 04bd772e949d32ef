/**
 * Regression (DNS correctness #2): the AD bit was cached. The cache and the
 * in-flight coalescing key ignored the query's AD bit (and DO's effect on
 * AD): after an AD=0 client filled the cache, trust-ad clients (AD=1, DO=0)
 * lost AD for the whole TTL, and clients that did not ask got AD=1. RFC 6840
 * §5.7 and RFC 4035 §3.2.3: AD in a reply only when the query had AD or DO,
 * and only when the answer was authenticated.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as packet from 'dns-packet';
import { defaultAnswer } from '../helpers/dns-server.ts';
import { buildQuery, readReply, type QuerySpec } from '../helpers/dns-wire.ts';
import { sidecarBehind } from '../helpers/sidecar.ts';


/** A validating upstream's behaviour: every answer is authenticated, AD set when the query had AD or DO; replies held 100 ms. */
function validating(q: packet.Packet) {
  const opt = (q.additionals ?? []).find((r) => r.type === 'OPT') as { flags?: number } | undefined;
  const asked = ((q.flags ?? 0) & 0x0020) !== 0 || ((opt?.flags ?? 0) & 0x8000) !== 0;
  const reply = defaultAnswer(q);
  return { delayMs: 100, then: { ...reply, flags: (reply.flags ?? 0) | (asked ? 0x0020 : 0) } };
}

const ask = (name: string, ad: boolean, edns: QuerySpec['edns'] = false): QuerySpec => ({ name, type: 'A', ad, edns });

test('an AD=0 answer in the cache does not take AD from an AD=1 client', async (t) => {
  const { udp } = await sidecarBehind(t, validating);
  assert.equal(readReply(await udp.query(buildQuery(ask('one.example', false)))).flags.AD, false);
  assert.equal(readReply(await udp.query(buildQuery(ask('one.example', true)))).flags.AD, true, 'trust-ad client (AD=1, DO=0)');
  assert.equal(readReply(await udp.query(buildQuery(ask('one.example', false, { do: true })))).flags.AD, true, 'DO=1 client');
});

test('an AD=1 answer in the cache does not give AD to a client that did not ask', async (t) => {
  const { udp } = await sidecarBehind(t, validating);
  assert.equal(readReply(await udp.query(buildQuery(ask('two.example', true)))).flags.AD, true);
  assert.equal(readReply(await udp.query(buildQuery(ask('two.example', false)))).flags.AD, false);
  assert.equal(readReply(await udp.query(buildQuery(ask('two.example', false, {})))).flags.AD, false, 'EDNS without DO');
});

test('coalesced queries: AD=0 and AD=1 sent back to back from one socket each get their own AD', async (t) => {
  const { udp } = await sidecarBehind(t, validating);
  const [plain, trusting] = await Promise.all([udp.query(buildQuery(ask('three.example', false))), udp.query(buildQuery(ask('three.example', true)))]);
  assert.equal(readReply(plain).flags.AD, false);
  assert.equal(readReply(trusting).flags.AD, true);
});
