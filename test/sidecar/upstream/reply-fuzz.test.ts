/**
 * Hostile replies (issue 6 item 1), seeded and bounded: every transport gets
 * replies that are the right answer mutated (bytes flipped, truncated,
 * extended, header counts changed). An exchange either resolves with a reply
 * carrying the caller's ID and question or rejects with a SidecarError; the
 * process never crashes and the upstream keeps working afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as packet from 'dns-packet';
import { SidecarError } from '../../../sidecar/errors.ts';
import { fromUrl } from '../../../sidecar/upstream/from-url.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { defaultAnswer, startDnsServer } from '../../helpers/dns-server.ts';
import type { Face, TestDnsServer } from '../../helpers/dns-server.ts';
import { prng } from '../../helpers/fuzz.ts';
import { testPki } from '../../helpers/tls.ts';

function mutate(wire: Buffer, rnd: () => number): Buffer {
  const out = Buffer.from(wire);
  switch (Math.floor(rnd() * 5)) {
    case 0: {
      const flips = 1 + Math.floor(rnd() * 4);
      for (let i = 0; i < flips; i++) out[Math.floor(rnd() * out.length)] = Math.floor(rnd() * 256);
      return out;
    }
    case 1:
      return out.subarray(0, Math.floor(rnd() * out.length));
    case 2:
      return Buffer.concat([out, Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256)))]);
    case 3:
      if (out.length >= 12) out.writeUInt16BE(Math.floor(rnd() * 65536), 4 + 2 * Math.floor(rnd() * 4));
      return out;
    default:
      // Flip a byte of the question name only: must never be accepted.
      if (out.length > 13) out[12 + 1 + Math.floor(rnd() * Math.min(3, out.length - 13))] ^= 0x01;
      return out;
  }
}

const SEED = 20261122;
const faces: Face[] = ['udp', 'tcp', 'tls', 'https'];

describe('upstream replies under fuzzing', () => {
  const pki = testPki();
  let server: TestDnsServer;
  before(async () => {
    server = await startDnsServer({ tls: pki.good });
  });
  after(() => server.close());

  for (const face of faces) {
    it(`fuzz ${face}: 400 mutated replies never crash and are never accepted with a wrong ID or question`, async () => {
      const rnd = prng(SEED + face.length);
      server.setHandler((q) => {
        const good = packet.encode(defaultAnswer(q));
        return mutate(good, rnd);
      });
      const u = fromUrl(server.url(face), { bootstrap: { 'dns.test': ['127.0.0.1'] }, ca: [pki.ca] });
      try {
        let accepted = 0;
        for (let batch = 0; batch < 8; batch++) {
          const results = await Promise.allSettled(
            Array.from({ length: 50 }, (_, i) => {
              const id = batch * 50 + i;
              const name = `f${id}.example.test`;
              return u.exchange(encodeQuery({ name, type: 'A', id }), AbortSignal.timeout(150)).then((reply) => ({ reply, id, name }));
            }),
          );
          for (const r of results) {
            if (r.status === 'rejected') {
              assert.ok(r.reason instanceof SidecarError, `not a SidecarError: ${String(r.reason)}`);
              continue;
            }
            accepted++;
            const { reply, id, name } = r.value;
            assert.equal(reply.readUInt16BE(0), id);
            assert.ok(reply[2]! & 0x80, 'QR set');
            // The question must be the one asked (name compared case-insensitively).
            const q = encodeQuery({ name, type: 'A', id });
            let end = 12;
            while (q[end] !== 0) end += q[end]! + 1;
            end += 5;
            assert.equal(reply.subarray(12, end).toString('latin1').toLowerCase(), q.subarray(12, end).toString('latin1').toLowerCase());
          }
        }
        assert.ok(accepted < 400, 'some mutations must have been refused');
        server.setHandler((q) => defaultAnswer(q));
        const reply = await u.exchange(encodeQuery({ name: 'after.example.test', type: 'A', id: 7 }), AbortSignal.timeout(2000));
        assert.equal(packet.decode(reply).id, 7);
      } finally {
        await u.close();
      }
    });
  }
});
