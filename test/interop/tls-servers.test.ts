/**
 * Interop: the DoT and DoH transports against real dnsdist (DoH over HTTP/1.1
 * and HTTP/2) and knot-resolver (DoH over HTTP/2), each on loopback ports with
 * the test CA's certificate and forwarding to a test unbound. One suite runs
 * against both. Fails, not skips, when a daemon is missing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as packet from 'dns-packet';
import { fromUrl, type UpstreamOptions } from '../../sidecar/upstream/from-url.ts';
import type { Upstream } from '../../sidecar/upstream/upstream.ts';
import { encodeQuery } from '../helpers/dns-client.ts';
import { startDnsdist, startKresd, type TlsDaemon } from '../helpers/tls-daemons.ts';
import { testPki } from '../helpers/tls.ts';
import { bigTxtRecords, startUnbound, type UnboundServer } from '../helpers/unbound.ts';

const pki = testPki();

for (const [name, start] of [
  ['dnsdist', startDnsdist],
  // kresd 5.6 refuses (RST_STREAM REFUSED_STREAM) a POST stream while another
  // is open on the connection; DoH retries refused streams (RFC 9113 §8.7), so
  // POST works, slower; GET streams run concurrently.
  ['kresd', startKresd],
] as const) {
  describe(`interop: ${name} as DoT and DoH server`, () => {
    let ub: UnboundServer;
    let server: TlsDaemon;
    const open: Upstream[] = [];
    const options: UpstreamOptions = { bootstrap: { 'dns.test': ['127.0.0.1'] }, ca: [pki.ca] };
    const make = (url: string, extra: UpstreamOptions = {}): Upstream => {
      const u = fromUrl(url, { ...options, ...extra });
      open.push(u);
      return u;
    };
    const urls = (): [string, string, UpstreamOptions][] => [
      ['dot', `tls://dns.test:${server.tlsPort}`, {}],
      ['doh POST', `https://dns.test:${server.httpsPort}/dns-query`, {}],
      ['doh GET', `https://dns.test:${server.httpsPort}/dns-query`, { dohMethod: 'GET' }],
    ];

    before(async () => {
      ub = await startUnbound([{ name: 'interop.test', records: ['www.interop.test. 300 IN A 192.0.2.9', ...bigTxtRecords('big.interop.test', 5000)] }]);
      server = await start(ub.port, pki.good, 'www.interop.test');
    });
    after(async () => {
      await Promise.all(open.map((u) => u.close()));
      await server?.stop();
      await ub?.stop();
    });

    it(`${name}: answers through dot and doh (POST and GET)`, async () => {
      for (const [kind, url, extra] of urls()) {
        const reply = await make(url, extra).exchange(encodeQuery({ name: 'www.interop.test', type: 'A', id: 654 }), AbortSignal.timeout(3000));
        const p = packet.decode(reply);
        assert.equal(p.id, 654, kind);
        assert.equal((p.answers?.[0] as { data: string } | undefined)?.data, '192.0.2.9', kind);
      }
    });

    it(`${name}: an answer over 4 KB through dot and doh`, async () => {
      for (const [kind, url, extra] of urls()) {
        const reply = await make(url, extra).exchange(encodeQuery({ name: 'big.interop.test', type: 'TXT' }), AbortSignal.timeout(3000));
        assert.ok(reply.length > 4096, `${kind}: ${reply.length} bytes`);
      }
    });

    it(`${name}: 50 concurrent queries over dot and doh (POST and GET)`, async () => {
      for (const [kind, url, extra] of urls()) {
        const u = make(url, extra);
        const replies = await Promise.all(
          Array.from({ length: 50 }, (_, i) => u.exchange(encodeQuery({ name: 'www.interop.test', type: 'A', id: 1000 + i }), AbortSignal.timeout(3000))),
        );
        replies.forEach((r, i) => assert.equal(packet.decode(r).id, 1000 + i, kind));
      }
    });
  });
}
