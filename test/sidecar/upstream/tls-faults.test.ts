/**
 * Trust and connection faults of the encrypted transports (DoT and DoH):
 * wrong name, expired, unknown CA, SPKI pins, a server that accepts and never
 * answers; and the stream transport's connection handling (session
 * resumption, idle close, silent and closed connections).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import * as packet from 'dns-packet';
import { SidecarError } from '../../../sidecar/errors.ts';
import { DohUpstream } from '../../../sidecar/upstream/doh.ts';
import { DotUpstream, spkiPinOf } from '../../../sidecar/upstream/dot.ts';
import { fromUrl } from '../../../sidecar/upstream/from-url.ts';
import type { UpstreamOptions } from '../../../sidecar/upstream/from-url.ts';
import type { StreamUpstream } from '../../../sidecar/upstream/stream.ts';
import type { Upstream } from '../../../sidecar/upstream/upstream.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { defaultAnswer, startDnsServer } from '../../helpers/dns-server.ts';
import { connectionEvents, referenceTimer } from '../../helpers/events.ts';
import type { TestDnsServer } from '../../helpers/dns-server.ts';
import type { KeyPair } from '../../helpers/tls.ts';
import { testPki } from '../../helpers/tls.ts';

const pki = testPki();
const faces = [
  { name: 'dot', face: 'tls' },
  { name: 'doh', face: 'https' },
] as const;

async function server(t: TestContext, pair: KeyPair): Promise<TestDnsServer> {
  const s = await startDnsServer({ tls: pair });
  t.after(() => s.close());
  return s;
}

function upstream(t: TestContext, url: string, options: UpstreamOptions = {}): Upstream {
  const u = fromUrl(url, { bootstrap: { 'dns.test': ['127.0.0.1'] }, ca: [pki.ca], ...options });
  t.after(() => u.close());
  return u;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<SidecarError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof SidecarError, String(err));
    assert.equal(err.code, code, `${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected ${code}`);
}

const query = (name = 'www.example.test'): Buffer => encodeQuery({ name, type: 'A' });

for (const { name, face } of faces) {
  describe(`tls faults: ${name}`, () => {
    for (const [label, pair] of [
      ['a certificate for the wrong name', pki.wrongName],
      ['an expired certificate', pki.expired],
      ['a certificate from an unknown CA', pki.unknownCa],
    ] as const) {
      it(`${name}: ${label} is refused with UPSTREAM_TLS`, async (t) => {
        const s = await server(t, pair);
        const u = upstream(t, s.url(face));
        const err = await expectCode(u.exchange(query(), AbortSignal.timeout(2000)), 'UPSTREAM_TLS');
        assert.ok(err.message.includes('dns.test'), err.message);
        assert.equal(s.counts.total, 0, 'no query may leave over a connection that failed verification');
      });
    }

    it(`${name}: without the private CA the test certificate is refused`, async (t) => {
      const s = await server(t, pki.good);
      const u = upstream(t, s.url(face), { ca: [] });
      await expectCode(u.exchange(query(), AbortSignal.timeout(2000)), 'UPSTREAM_TLS');
    });

    it(`${name}: an upstream given by IP is verified against the IP or an explicit TLS name`, async (t) => {
      const s = await server(t, pki.good);
      const port = face === 'tls' ? s.tlsPort : s.httpsPort;
      const scheme = face === 'tls' ? 'tls' : 'https';
      const byIp = upstream(t, `${scheme}://127.0.0.1:${port}`);
      await byIp.exchange(query(), AbortSignal.timeout(2000));
      const named = upstream(t, `${scheme}://127.0.0.1:${port}`, { tlsName: 'dns.test' });
      await named.exchange(query(), AbortSignal.timeout(2000));
      const wrong = upstream(t, `${scheme}://127.0.0.1:${port}`, { tlsName: 'other.test' });
      await expectCode(wrong.exchange(query(), AbortSignal.timeout(2000)), 'UPSTREAM_TLS');
    });

    it(`${name}: an SPKI pin must match`, async (t) => {
      const s = await server(t, pki.good);
      const der = Buffer.from(pki.good.cert.toString().replace(/-----[^-]+-----|\s/g, ''), 'base64');
      const good = upstream(t, s.url(face), { spkiPin: [spkiPinOf(der)] });
      await good.exchange(query(), AbortSignal.timeout(2000));
      const bad = upstream(t, s.url(face), { spkiPin: Buffer.alloc(32, 1).toString('base64') });
      const err = await expectCode(bad.exchange(query(), AbortSignal.timeout(2000)), 'UPSTREAM_TLS');
      assert.match(String((err.cause as Error)?.message), /SPKI pin/);
    });

    it(`${name}: a server that accepts and never answers times out within the deadline`, async (t) => {
      const held: net.Socket[] = [];
      const mute = net.createServer((sock) => {
        held.push(sock);
        sock.on('error', () => {});
      });
      await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
      t.after(() => {
        for (const s of held) s.destroy();
        return new Promise<void>((r) => mute.close(() => r()));
      });
      const port = (mute.address() as net.AddressInfo).port;
      const url = face === 'tls' ? `tls://dns.test:${port}` : `https://dns.test:${port}/dns-query`;
      const u = upstream(t, url);
      // A reference timer started with the 300 ms deadline: timers fire in the order they expire, so an
      // exchange that ends at its deadline ends before it, however slowly the machine runs.
      const late = referenceTimer(600);
      t.after(() => late.cancel());
      await expectCode(u.exchange(query(), AbortSignal.timeout(300)), 'UPSTREAM_TIMEOUT');
      assert.ok(!late.fired, 'ended long after its deadline');
    });

    it(`${name}: a refused connection is UPSTREAM_CONNECT`, async (t) => {
      const s = await server(t, pki.good);
      const url = s.url(face);
      await s.stop();
      const u = upstream(t, url);
      await expectCode(u.exchange(query(), AbortSignal.timeout(2000)), 'UPSTREAM_CONNECT');
    });
  });
}

describe('stream connections', () => {
  it('doh: an idle connection is closed, the next query opens a new one', async (t) => {
    const s = await server(t, pki.good);
    const conns = connectionEvents();
    const u = upstream(t, s.url('https'), { idleTimeoutMs: 100, onConnection: conns.hook }) as DohUpstream;
    await u.exchange(query(), AbortSignal.timeout(2000));
    await conns.closed;
    assert.deepEqual(conns.events, [1, -1]);
    await u.exchange(query(), AbortSignal.timeout(2000));
    assert.equal(u.connectionsOpened, 2);
  });

  it('dot: resumes the TLS session on reconnect after an idle close', async (t) => {
    const s = await server(t, pki.good);
    const conns = connectionEvents();
    const u = upstream(t, s.url('tls'), { idleTimeoutMs: 100, onConnection: conns.hook }) as DotUpstream;
    await u.exchange(query(), AbortSignal.timeout(2000));
    await conns.closed;
    assert.deepEqual(conns.events, [1, -1], 'the idle connection was closed');
    await u.exchange(query(), AbortSignal.timeout(2000));
    assert.equal(u.connectionsOpened, 2);
    assert.equal(u.sessionsResumed, 1);
  });

  it('tcp: queries share one connection, pipelined', async (t) => {
    const s = await server(t, pki.good);
    s.setHandler((q) => ({ delayMs: 30, then: defaultAnswer(q) }));
    const u = upstream(t, s.url('tcp')) as StreamUpstream;
    await Promise.all(Array.from({ length: 20 }, (_, i) => u.exchange(query(`p${i}.example.test`), AbortSignal.timeout(2000))));
    assert.equal(s.connections, 1);
  });

  for (const face of ['tcp', 'https'] as const) {
    it(`${face}: a query that times out on a silent connection replaces the connection`, async (t) => {
      const s = await server(t, pki.good);
      const u = upstream(t, s.url(face)) as StreamUpstream | DohUpstream;
      await u.exchange(query(), AbortSignal.timeout(2000));
      s.setHandler(() => 'drop');
      await expectCode(u.exchange(query('silent.example.test'), AbortSignal.timeout(200)), 'UPSTREAM_TIMEOUT');
      s.setHandler((q) => defaultAnswer(q));
      await u.exchange(query(), AbortSignal.timeout(2000));
      assert.equal(u.connectionsOpened, 2);
      assert.equal(s.connections, 2);
    });
  }

  it('tcp: a query on a pooled connection the server closes is retried once on a fresh one', async (t) => {
    const s = await server(t, pki.good);
    const u = upstream(t, s.url('tcp')) as StreamUpstream;
    await u.exchange(query(), AbortSignal.timeout(2000));
    let closes = 0;
    s.setHandler((q) => (closes++ === 0 ? 'close' : defaultAnswer(q)));
    const reply = await u.exchange(encodeQuery({ name: 'retry.example.test', type: 'A', id: 3 }), AbortSignal.timeout(2000));
    assert.equal(packet.decode(reply).id, 3);
    assert.equal(s.connections, 2);
  });

  it('tcp: a connection that keeps closing fails the query with UPSTREAM_CONNECT', async (t) => {
    const s = await server(t, pki.good);
    const u = upstream(t, s.url('tcp'));
    await u.exchange(query(), AbortSignal.timeout(2000));
    s.setHandler(() => 'close');
    await expectCode(u.exchange(query(), AbortSignal.timeout(2000)), 'UPSTREAM_CONNECT');
  });

  it('tcp: a reply shorter than a header is UPSTREAM_BAD_REPLY', async (t) => {
    const s = await server(t, pki.good);
    s.setHandler(() => 'garbage');
    const u = upstream(t, s.url('tcp'));
    await expectCode(u.exchange(query(), AbortSignal.timeout(2000)), 'UPSTREAM_BAD_REPLY');
  });


  it('doh: HTTP errors and wrong content types are UPSTREAM_HTTP; GET works', async (t) => {
    const s = await server(t, pki.good);
    const u = upstream(t, s.url('https'));
    s.setHandler(() => ({ httpStatus: 503 }));
    await expectCode(u.exchange(query(), AbortSignal.timeout(2000)), 'UPSTREAM_HTTP');
    s.setHandler(() => ({ contentType: 'text/html' }));
    await expectCode(u.exchange(query(), AbortSignal.timeout(2000)), 'UPSTREAM_HTTP');
    s.setHandler(() => 'garbage');
    await expectCode(u.exchange(query(), AbortSignal.timeout(2000)), 'UPSTREAM_BAD_REPLY');
    s.setHandler((q) => defaultAnswer(q));
    const get = upstream(t, s.url('https'), { dohMethod: 'GET' });
    const reply = await get.exchange(encodeQuery({ name: 'get.example.test', type: 'A', id: 1234 }), AbortSignal.timeout(2000));
    assert.equal(packet.decode(reply).id, 1234);
    assert.equal(s.connections, 2, 'one multiplexed connection per upstream');
  });
});
