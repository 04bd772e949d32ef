/**
 * The shared upstream conformance suite (DESIGN §3): the same checks against
 * every transport (udp, tcp, dot, doh) with the scriptable local server.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import * as packet from 'dns-packet';
import { SidecarError } from '../../../sidecar/errors.ts';
import { fromUrl } from '../../../sidecar/upstream/from-url.ts';
import type { Upstream } from '../../../sidecar/upstream/upstream.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { defaultAnswer, startDnsServer } from '../../helpers/dns-server.ts';
import type { Face, TestDnsServer } from '../../helpers/dns-server.ts';
import { Gates, referenceTimer } from '../../helpers/events.ts';
import { testPki } from '../../helpers/tls.ts';

interface Transport {
  readonly name: string;
  readonly face: Face;
  /** Why a check does not apply to this transport, by check name. */
  readonly skips?: Readonly<Record<string, string>>;
}

const transports: Transport[] = [
  { name: 'udp', face: 'udp' },
  { name: 'tcp', face: 'tcp' },
  { name: 'dot', face: 'tls' },
  {
    name: 'doh',
    face: 'https',
    skips: {
      spoof: 'DoH carries exactly one HTTP response per query on its own stream: there is no later, correct reply to wait for; a wrong one is rejected (checked above)',
    },
  },
];

function codeOf(err: unknown): string {
  return err instanceof SidecarError ? err.code : `not a SidecarError: ${String(err)}`;
}

async function rejectsWith(p: Promise<unknown>, codes: string[]): Promise<SidecarError> {
  try {
    await p;
  } catch (err) {
    assert.ok(codes.includes(codeOf(err)), `expected one of ${codes.join(', ')}, got ${codeOf(err)}: ${String(err)}`);
    return err as SidecarError;
  }
  assert.fail(`expected a rejection with ${codes.join(' or ')}`);
}

for (const tr of transports) {
  describe(`upstream conformance: ${tr.name}`, () => {
    const pki = testPki();
    let server: TestDnsServer;
    const open: Upstream[] = [];
    const make = (): Upstream => {
      const u = fromUrl(server.url(tr.face), { bootstrap: { 'dns.test': ['127.0.0.1'] }, ca: [pki.ca] });
      open.push(u);
      return u;
    };

    before(async () => {
      server = await startDnsServer({ tls: pki.good });
    });
    after(async () => {
      await Promise.all(open.map((u) => u.close()));
      await server.close();
    });
    beforeEach(() => server.setHandler((q) => defaultAnswer(q)));

    it(`${tr.name}: answers with the caller's ID and question, query untouched`, async () => {
      const u = make();
      const query = encodeQuery({ name: 'www.Example.test', type: 'A', id: 4242 });
      const copy = Buffer.from(query);
      const reply = await u.exchange(query, AbortSignal.timeout(2000));
      assert.deepEqual(query, copy, 'the query was modified');
      const p = packet.decode(reply);
      assert.equal(p.id, 4242);
      assert.equal(p.questions?.[0]?.name, 'www.Example.test');
      assert.equal((p.answers?.[0] as { data: string }).data, '192.0.2.1');
      assert.match(u.address, new RegExp(`^${tr.face === 'tls' ? 'tls' : tr.face}://`));
    });

    it(`${tr.name}: 50 concurrent exchanges each get their own answer`, async () => {
      const u = make();
      server.setHandler((q) => ({ delayMs: Math.floor(Math.random() * 20), then: defaultAnswer(q) }));
      const ids = Array.from({ length: 50 }, (_, i) => i * 7 + 1);
      // Same ID twice on purpose: the transport must keep them apart.
      ids[1] = ids[0]!;
      const replies = await Promise.all(
        ids.map((id, i) => u.exchange(encodeQuery({ name: `n${i}.example.test`, type: 'A', id }), AbortSignal.timeout(3000))),
      );
      replies.forEach((r, i) => {
        const p = packet.decode(r);
        assert.equal(p.id, ids[i]);
        assert.equal(p.questions?.[0]?.name, `n${i}.example.test`);
      });
    });

    /**
     * Asks for spoof.example.test, which the server answers with `wrong` only, then for a later name on the
     * same upstream: the server replies in the order it was asked, so once the later answer is in, the wrong
     * reply has been read. Then the first exchange's deadline passes; it must not have taken the wrong reply.
     */
    async function wrongReplyOutcome(u: Upstream, wrong: 'wrong-id' | 'wrong-question'): Promise<void> {
      server.setHandler((q) => (q.questions?.[0]?.name === 'spoof.example.test' ? wrong : defaultAnswer(q)));
      const deadline = new AbortController();
      const spoofed = rejectsWith(u.exchange(encodeQuery({ name: 'spoof.example.test', type: 'A' }), deadline.signal), [
        'UPSTREAM_TIMEOUT',
        'UPSTREAM_BAD_REPLY',
      ]);
      await u.exchange(encodeQuery({ name: 'later.example.test', type: 'A' }), AbortSignal.timeout(2000));
      deadline.abort(new DOMException('the test deadline passed', 'TimeoutError'));
      await spoofed;
    }

    it(`${tr.name}: a reply with a mismatched ID is never accepted`, async () => {
      await wrongReplyOutcome(make(), 'wrong-id');
    });

    it(`${tr.name}: a reply with another question is never accepted`, async () => {
      await wrongReplyOutcome(make(), 'wrong-question');
    });

    it(`${tr.name}: the right reply after spoofed ones is accepted`, { skip: tr.skips?.['spoof'] }, async () => {
      const u = make();
      server.setHandler(() => 'spoof-then-answer');
      const reply = await u.exchange(encodeQuery({ name: 'ok.example.test', type: 'A', id: 77 }), AbortSignal.timeout(2000));
      const p = packet.decode(reply);
      assert.equal(p.id, 77);
      assert.equal(p.questions?.[0]?.name, 'ok.example.test');
    });

    it(`${tr.name}: the caller's abort rejects with UPSTREAM_ABORTED at once`, async (t) => {
      const u = make();
      const gates = new Gates();
      t.after(() => gates.openAll());
      server.setHandler(async (q) => {
        await gates.pass('answer');
        return defaultAnswer(q);
      });
      const ac = new AbortController();
      const aborted = rejectsWith(u.exchange(encodeQuery({ name: 'slow.example.test', type: 'A' }), ac.signal), ['UPSTREAM_ABORTED']);
      await gates.arrived('answer'); // the query is at the server, which holds its answer
      ac.abort();
      // At once: the answer is let go right after the abort, and an exchange still waiting would take it.
      gates.open('answer');
      await aborted;
      await rejectsWith(u.exchange(encodeQuery({ name: 'x.example.test', type: 'A' }), ac.signal), ['UPSTREAM_ABORTED']);
    });

    it(`${tr.name}: a silent server rejects with UPSTREAM_TIMEOUT at the deadline`, async () => {
      const u = make();
      server.setHandler(() => 'drop');
      // Reference timers started just before the 250 ms deadline: timers fire in the order they expire, so
      // the rejection comes after the first and before the second however slowly the machine runs.
      const early = referenceTimer(240);
      const late = referenceTimer(1000);
      const err = await rejectsWith(u.exchange(encodeQuery({ name: 'silent.example.test', type: 'A' }), AbortSignal.timeout(250)), [
        'UPSTREAM_TIMEOUT',
      ]);
      late.cancel();
      assert.ok(early.fired && !late.fired, `rejected ${early.fired ? 'long after' : 'before'} the deadline`);
      assert.ok(err.message.includes(u.address), err.message);
      // And the upstream still works afterwards.
      server.setHandler((q) => defaultAnswer(q));
      await u.exchange(encodeQuery({ name: 'after.example.test', type: 'A' }), AbortSignal.timeout(2000));
    });

    it(`${tr.name}: recovers after the server restarts`, async () => {
      const u = make();
      await u.exchange(encodeQuery({ name: 'before.example.test', type: 'A' }), AbortSignal.timeout(2000));
      await server.restart();
      const reply = await u.exchange(encodeQuery({ name: 'after.example.test', type: 'A', id: 9 }), AbortSignal.timeout(2000));
      assert.equal(packet.decode(reply).id, 9);
    });

    it(`${tr.name}: an answer over 4 KB arrives whole, or with TC on UDP`, async () => {
      const u = make();
      const reply = await u.exchange(encodeQuery({ name: 'big.example.test', type: 'TXT', edns: { udpSize: 1232 } }), AbortSignal.timeout(2000));
      const p = packet.decode(reply);
      if (tr.face === 'udp') {
        assert.ok((p.flags ?? 0) & packet.TRUNCATED_RESPONSE, 'UDP reply should carry TC');
      } else {
        assert.ok(reply.length > 4096, `reply is ${reply.length} bytes`);
        assert.equal(p.answers?.length, 20);
      }
    });

    it(`${tr.name}: close fails pending exchanges with CLOSED, is idempotent, and refuses new ones`, async () => {
      const u = make();
      const atServer = Promise.withResolvers<void>();
      server.setHandler(() => {
        atServer.resolve();
        return 'drop';
      });
      const pending = rejectsWith(u.exchange(encodeQuery({ name: 'pending.example.test', type: 'A' }), AbortSignal.timeout(3000)), ['CLOSED']);
      await atServer.promise;
      await u.close();
      await u.close();
      await pending;
      await rejectsWith(u.exchange(encodeQuery({ name: 'late.example.test', type: 'A' }), AbortSignal.timeout(1000)), ['CLOSED']);
    });
  });
}
