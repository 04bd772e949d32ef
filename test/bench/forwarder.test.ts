/**
 * The bench's Node forwarding floor (forwarder.ts), over UDP and over DoT:
 * what the bench compares tenant-dns and the peers with must itself answer
 * every query with its own ID, question and answer, concurrent queries
 * included (DoT: pipelined on one connection, written a turn at a time).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { queryUdp } from '../helpers/dns-client.ts';
import { HOT_ZONE, startAuthoritative, startForwarder } from '../helpers/peers.ts';
import { testPki } from '../helpers/tls.ts';

test('forwarding floor: 60 concurrent queries over UDP and over DoT, each answered with its own ID and record', { timeout: 60_000 }, async (t) => {
  const pki = testPki();
  const auth = await startAuthoritative({ names: 20, tls: { certFile: pki.good.certFile, keyFile: pki.good.keyFile, caFile: pki.caFile, name: 'dns.test' } });
  t.after(() => auth.stop());
  for (const transport of ['udp', 'dot'] as const) {
    const floor = await startForwarder(auth.upstream, { transport });
    t.after(() => floor.stop());
    const asked = Array.from({ length: 60 }, (_, i) => ({ id: 1000 + i, n: i % 20 }));
    const replies = await Promise.all(asked.map(({ id, n }) => queryUdp('127.0.0.1', floor.port, { id, name: `h${n}.${HOT_ZONE}`, type: 'A' }, 5000)));
    replies.forEach((r, i) => {
      const { id, n } = asked[i]!;
      assert.equal(r.id, id, `${transport}: the client's ID comes back`);
      assert.equal(r.rcode, 'NOERROR');
      assert.equal(r.questions[0]?.name, `h${n}.${HOT_ZONE}`, `${transport}: the reply is to this question`);
      assert.equal(r.answers[0]?.data, `10.0.0.${n}`, `${transport}: the record of this name`);
    });
  }
});
