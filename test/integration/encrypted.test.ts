/**
 * The sidecar with encrypted upstreams end to end: a real unbound serving
 * DoT and DoH (HTTP/2) with a test CA, reached by host name through
 * --bootstrap and trusted through --upstream-ca; per-upstream options after
 * `#`; failover when the primary dies in the middle of a run, and cached
 * names answered stale when every upstream is gone.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { extendedError, queryTcp, queryUdp } from '../helpers/dns-client.ts';
import { freePort } from '../helpers/ports.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { testPki } from '../helpers/tls.ts';
import { bigTxtRecords, startUnbound, unboundTlsConfig, type UnboundServer } from '../helpers/unbound.ts';

const pki = testPki();

/** The SPKI pin of a PEM certificate: base64 SHA-256 of its SubjectPublicKeyInfo. */
function spkiOf(pem: Buffer): string {
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}
const zone = { name: 'enc.test', records: ['www.enc.test. 2 IN A 192.0.2.9', ...bigTxtRecords('big.enc.test', 5000)] };

async function tlsUnbound(): Promise<{ ub: UnboundServer; tlsPort: number; httpsPort: number }> {
  const tlsPort = await freePort();
  const httpsPort = await freePort();
  const extra = unboundTlsConfig(tlsPort, httpsPort, pki.good);
  return { ub: await startUnbound([zone], extra), tlsPort, httpsPort };
}

describe('sidecar with encrypted upstreams', () => {
  let primary: Awaited<ReturnType<typeof tlsUnbound>>;
  before(async () => {
    primary = await tlsUnbound();
  });
  after(async () => {
    await primary?.ub.stop();
  });

  const common = () => ({ bootstrap: ['dns.test=127.0.0.1'], upstreamCa: [pki.caFile] });

  for (const [name, url] of [
    ['DoT', () => `tls://dns.test:${primary.tlsPort}`],
    ['DoH POST', () => `https://dns.test:${primary.httpsPort}/dns-query`],
    ['DoH GET', () => `https://dns.test:${primary.httpsPort}/dns-query#method=get`],
    ['DoT by IP with a TLS name', () => `tls://127.0.0.1:${primary.tlsPort}#tls-name=dns.test`],
  ] as const) {
    test(`${name}: answers, and an answer over 4 KB reaches a TCP client whole`, async (t) => {
      const sc = await startTestSidecar({ ...common(), upstream: [url()] });
      t.after(() => sc.stop());
      const r = await queryUdp(sc.host, sc.port, { name: 'www.enc.test', type: 'A' });
      assert.deepEqual(r.answers.map((a) => a.data), ['192.0.2.9']);
      const big = await queryTcp(sc.host, sc.port, { name: 'big.enc.test', type: 'TXT' });
      assert.equal(big.flag_tc, false);
      assert.ok(big.raw.length > 4096, `${big.raw.length} bytes`);
      const cut = await queryUdp(sc.host, sc.port, { name: 'big.enc.test', type: 'TXT', edns: false });
      assert.equal(cut.flag_tc, true, 'over UDP the client gets TC at its own limit');
    });
  }

  test('a certificate that does not match is refused: SERVFAIL, never a plain-DNS fallback', async (t) => {
    const sc = await startTestSidecar({ ...common(), upstream: [`tls://127.0.0.1:${primary.tlsPort}#tls-name=other.test`], upstreamDeadlineMs: 1500 });
    t.after(() => sc.stop());
    const r = await queryUdp(sc.host, sc.port, { name: 'www.enc.test', type: 'A' }, 3000);
    assert.equal(r.rcode, 'SERVFAIL');
  });

  test('an SPKI pin that does not match is refused; the right pin is accepted', async (t) => {
    const bad = await startTestSidecar({ ...common(), upstream: [`tls://dns.test:${primary.tlsPort}#spki-pin=${Buffer.alloc(32).toString('base64')}`], upstreamDeadlineMs: 1500 });
    t.after(() => bad.stop());
    assert.equal((await queryUdp(bad.host, bad.port, { name: 'www.enc.test', type: 'A' }, 3000)).rcode, 'SERVFAIL');
    const good = await startTestSidecar({ ...common(), upstream: [`tls://dns.test:${primary.tlsPort}#spki-pin=${encodeURIComponent(spkiOf(pki.good.cert))}`] });
    t.after(() => good.stop());
    assert.equal((await queryUdp(good.host, good.port, { name: 'www.enc.test', type: 'A' })).rcode, 'NOERROR');
  });

  test('failover: the primary stops in the middle of a run, the backup takes over; then cached names are served stale', async (t) => {
    const own = await tlsUnbound();
    const backup = await tlsUnbound();
    t.after(() => own.ub.stop());
    t.after(() => backup.ub.stop());
    // The cache's clock, moved forward by the test instead of sleeping past a TTL.
    let skewMs = 0;
    const sc = await startTestSidecar(
      {
        ...common(),
        upstream: [`tls://dns.test:${own.tlsPort}`, `https://dns.test:${backup.httpsPort}/dns-query`],
        upstreamAttemptTimeoutMs: 500,
        upstreamDeadlineMs: 2000,
        cacheStaleAnswerTimeoutMs: 300,
      },
      { clock: () => Date.now() + skewMs },
    );
    t.after(() => sc.stop());
    // 200 queries, one every 5 ms, for names not in the cache; the primary dies after the 50th.
    let failed = 0;
    let stoppedAt = 0;
    let firstBackupAnswer = 0;
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      if (i === 50) {
        await own.ub.stop();
        stoppedAt = Date.now();
      }
      pending.push(
        queryUdp(sc.host, sc.port, { name: `n${i}.enc.test`, type: 'A' }, 3000).then(
          (r) => {
            if (r.rcode !== 'NXDOMAIN') failed++;
            else if (stoppedAt && !firstBackupAnswer) firstBackupAnswer = Date.now();
          },
          () => void failed++,
        ),
      );
      await sleep(5);
    }
    await Promise.all(pending);
    const failoverMs = firstBackupAnswer - stoppedAt;
    t.diagnostic(`failover: ${failed} of 200 client queries failed; first answer after the primary stopped: ${failoverMs} ms`);
    // No query failed, so each one sent after the stop was answered within the sidecar's 2 s deadline.
    assert.equal(failed, 0, 'no client query failed');
    assert.ok(firstBackupAnswer > 0, 'answered after the primary stopped');

    // Cache www (TTL 2 s), let it expire (the cache's clock moves 2.1 s), stop the backup too: the stale
    // answer is served.
    assert.equal((await queryUdp(sc.host, sc.port, { name: 'www.enc.test', type: 'A' })).rcode, 'NOERROR');
    await backup.ub.stop();
    skewMs += 2100;
    const started = Date.now();
    const stale = await queryUdp(sc.host, sc.port, { name: 'www.enc.test', type: 'A' }, 3000);
    const staleMs = Date.now() - started;
    t.diagnostic(`serve-stale with every upstream down: answered in ${staleMs} ms`);
    assert.equal(stale.rcode, 'NOERROR');
    assert.equal(stale.answers[0]!.ttl, 30);
    assert.equal(extendedError(stale)?.code, 3, 'EDE 3: stale answer');
  });
});
