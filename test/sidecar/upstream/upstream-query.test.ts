/**
 * The query the forward stage sends upstream (upstreamQuery): built in a
 * buffer from Node's pool, so every byte must be written, none left from
 * what the pool held before.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as packet from 'dns-packet';
import { Flags } from '../../../sidecar/dns/constants.ts';
import { buildQuery } from '../../../sidecar/dns/query.ts';
import { LOOP_OPTION_CODE, readQuery } from '../../../sidecar/dns/wire.ts';
import { upstreamQuery } from '../../../sidecar/upstream/stage.ts';

/** upstreamQuery's result after filling the pool it will be cut from with 0xff (asserted: same pool). */
function onDirtyPool(make: () => Buffer): Buffer {
  for (let tries = 0; tries < 3; tries++) {
    const probe = Buffer.allocUnsafe(1);
    new Uint8Array(probe.buffer).fill(0xff);
    const out = make();
    if (out.buffer === probe.buffer) return out;
  }
  throw new Error('upstreamQuery did not take its buffer from the pool');
}

test('upstream query: a clean header, the client question, an OPT of 1232 bytes with DO as the client set it', () => {
  const client = buildQuery('Www.Example.ORG', 28, 0xbeef);
  client.wire.writeUInt16BE(Flags.RD | Flags.CD, 2);
  const read = readQuery(client.wire);
  assert.ok(!read.rejected);
  const out = onDirtyPool(() => upstreamQuery(client.wire, read.query));
  assert.equal(out.readUInt16BE(0), 0, 'ID 0: the transports choose their own');
  assert.equal(out.readUInt16BE(2), Flags.RD | Flags.CD | Flags.AD);
  assert.deepEqual([out.readUInt16BE(4), out.readUInt16BE(6), out.readUInt16BE(8), out.readUInt16BE(10)], [1, 0, 0, 1]);
  const decoded = packet.decode(out);
  assert.deepEqual(decoded.questions, [{ name: 'Www.Example.ORG', type: 'AAAA', class: 'IN' }]);
  const opt = decoded.additionals![0] as packet.OptAnswer;
  assert.equal(opt.type, 'OPT');
  assert.equal(opt.udpPayloadSize, 1232);
  assert.equal(opt.extendedRcode, 0);
  assert.equal(opt.ednsVersion, 0);
  assert.equal(opt.flags, 0, 'DO clear: the client did not set it');
  assert.deepEqual(opt.options, []);
  assert.equal(out.length, read.query.questionEnd + 11);
});

test('upstream query: with a loop tag, the OPT carries it as its one option', () => {
  const client = buildQuery('example.org', 1, 7);
  const read = readQuery(client.wire);
  assert.ok(!read.rejected);
  // A buffer of its own: a pooled one would be dirtied with the pool.
  const tag = Buffer.alloc(8);
  tag.write('0123456789abcdef', 'hex');
  const out = onDirtyPool(() => upstreamQuery(client.wire, read.query, tag));
  const opt = packet.decode(out).additionals![0] as packet.OptAnswer;
  assert.deepEqual(opt.options.map((o) => [o.code, Buffer.from(o.data!).toString('hex')]), [[LOOP_OPTION_CODE, '0123456789abcdef']]);
  assert.equal(opt.ednsVersion, 0);
  assert.equal(out.readUInt16BE(6) + out.readUInt16BE(8), 0);
});
