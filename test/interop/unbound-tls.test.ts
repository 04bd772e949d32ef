/**
 * Interop: the upstream transports against a real unbound (Debian's package)
 * serving DoT and DoH (HTTP/2 only) on loopback ports with the test CA's
 * certificate, plus plain UDP/TCP. An answer over 4 KB through each
 * transport (a TXT set from local-data). Fails, not skips, without unbound.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as packet from 'dns-packet';
import { DotUpstream } from '../../sidecar/upstream/dot.ts';
import { fromUrl } from '../../sidecar/upstream/from-url.ts';
import type { UpstreamOptions } from '../../sidecar/upstream/from-url.ts';
import { createGroup } from '../../sidecar/upstream/group.ts';
import type { Upstream } from '../../sidecar/upstream/upstream.ts';
import { encodeQuery } from '../helpers/dns-client.ts';
import { connectionEvents } from '../helpers/events.ts';
import { freePort } from '../helpers/ports.ts';
import { testPki } from '../helpers/tls.ts';
import { bigTxtRecords, startUnbound, unboundTlsConfig } from '../helpers/unbound.ts';
import type { UnboundServer } from '../helpers/unbound.ts';

const pki = testPki();

describe('interop: unbound as DoT and DoH server', () => {
  let ub: UnboundServer;
  let tlsPort = 0;
  let httpsPort = 0;
  const open: { close(): Promise<void> }[] = [];
  const options: UpstreamOptions = { bootstrap: { 'dns.test': ['127.0.0.1'] }, ca: [pki.ca] };
  const make = (url: string, extra: UpstreamOptions = {}): Upstream => {
    const u = fromUrl(url, { ...options, ...extra });
    open.push(u);
    return u;
  };

  before(async () => {
    tlsPort = await freePort();
    httpsPort = await freePort();
    const extra = unboundTlsConfig(tlsPort, httpsPort, pki.good);
    ub = await startUnbound(
      [{ name: 'interop.test', records: ['www.interop.test. 300 IN A 192.0.2.7', ...bigTxtRecords('big.interop.test', 5000)] }],
      extra,
    );
  });
  after(async () => {
    await Promise.all(open.map((u) => u.close()));
    await ub?.stop();
  });

  const urls = (): [string, string, UpstreamOptions][] => [
    ['dot', `tls://dns.test:${tlsPort}`, {}],
    ['doh POST', `https://dns.test:${httpsPort}/dns-query`, {}],
    ['doh GET', `https://dns.test:${httpsPort}/dns-query`, { dohMethod: 'GET' }],
    ['tcp', `tcp://127.0.0.1:${ub.port}`, {}],
  ];

  it('unbound: answers through dot, doh (POST and GET) and tcp', async () => {
    for (const [name, url, extra] of urls()) {
      const u = make(url, extra);
      const reply = await u.exchange(encodeQuery({ name: 'www.interop.test', type: 'A', id: 321 }), AbortSignal.timeout(3000));
      const p = packet.decode(reply);
      assert.equal(p.id, 321, name);
      assert.equal((p.answers?.[0] as { data: string } | undefined)?.data, '192.0.2.7', name);
    }
  });

  it('unbound: an answer over 4 KB through every transport (udp via the TC fallback)', async () => {
    for (const [name, url, extra] of urls()) {
      const u = make(url, extra);
      const reply = await u.exchange(encodeQuery({ name: 'big.interop.test', type: 'TXT' }), AbortSignal.timeout(3000));
      assert.ok(reply.length > 4096, `${name}: ${reply.length} bytes`);
      assert.ok((packet.decode(reply).answers?.length ?? 0) >= 20, name);
    }
    const g = createGroup('interop', [fromUrl(`udp://127.0.0.1:${ub.port}`)]);
    open.push(g);
    const r = await g.resolve(encodeQuery({ name: 'big.interop.test', type: 'TXT' }), AbortSignal.timeout(3000));
    assert.equal(r.upstream, `tcp://127.0.0.1:${ub.port}`);
    assert.ok(r.reply.length > 4096);
  });

  it('unbound: 50 pipelined queries over one DoT connection and 50 multiplexed over DoH', async () => {
    for (const [name, url] of urls().slice(0, 2)) {
      const u = make(url!);
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, i) => u.exchange(encodeQuery({ name: 'www.interop.test', type: 'A', id: i }), AbortSignal.timeout(3000))),
      );
      replies.forEach((r, i) => assert.equal(packet.decode(r).id, i, name));
      assert.equal((u as unknown as { connectionsOpened: number }).connectionsOpened, 1, `${name}: one connection`);
    }
  });

  it('unbound: DoT resumes its TLS session after an idle close', async () => {
    const conns = connectionEvents();
    const u = make(`tls://dns.test:${tlsPort}`, { idleTimeoutMs: 100, onConnection: conns.hook }) as DotUpstream;
    await u.exchange(encodeQuery({ name: 'www.interop.test', type: 'A' }), AbortSignal.timeout(3000));
    await conns.closed; // the idle connection was closed
    await u.exchange(encodeQuery({ name: 'www.interop.test', type: 'A' }), AbortSignal.timeout(3000));
    assert.equal(u.connectionsOpened, 2);
    assert.equal(u.sessionsResumed, 1);
  });

  it('unbound: a TLS name the certificate does not carry is refused', async () => {
    for (const url of [`tls://127.0.0.1:${tlsPort}`, `https://127.0.0.1:${httpsPort}/dns-query`]) {
      const u = make(url, { tlsName: 'resolver.other.test' });
      await assert.rejects(u.exchange(encodeQuery({ name: 'www.interop.test', type: 'A' }), AbortSignal.timeout(3000)), { code: 'UPSTREAM_TLS' });
    }
  });
});
