/**
 * Interop: the DoT and DoH transports against a real Knot Resolver (Debian's
 * kresd; DoH over HTTP/2, `doh2`) on loopback ports with the test CA's
 * certificate, stubbing to a test unbound. Priming, time-skew and
 * trust-anchor modules are off so nothing leaves loopback. An answer over
 * 4 KB through each. Fails, not skips, without kresd or unbound.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as packet from 'dns-packet';
import { fromUrl } from '../../sidecar/upstream/from-url.ts';
import type { UpstreamOptions } from '../../sidecar/upstream/from-url.ts';
import type { Upstream } from '../../sidecar/upstream/upstream.ts';
import { encodeQuery, queryUdp } from '../helpers/dns-client.ts';
import { freePort } from '../helpers/ports.ts';
import { testPki } from '../helpers/tls.ts';
import { bigTxtRecords, startUnbound } from '../helpers/unbound.ts';
import type { UnboundServer } from '../helpers/unbound.ts';

const pki = testPki();

interface Kresd {
  readonly plainPort: number;
  readonly tlsPort: number;
  readonly httpsPort: number;
  stop(): Promise<void>;
}

async function startKresd(backendPort: number): Promise<Kresd> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-kresd-'));
  const [plainPort, tlsPort, httpsPort] = [await freePort(), await freePort(), await freePort()];
  const conf = join(dir, 'kresd.conf');
  writeFileSync(
    conf,
    [
      "modules.unload('priming')",
      "modules.unload('detect_time_skew')",
      "modules.unload('ta_signal_query')",
      "modules.unload('ta_sentinel')",
      "trust_anchors.remove('.')",
      `net.listen('127.0.0.1', ${plainPort}, { kind = 'dns' })`,
      `net.listen('127.0.0.1', ${tlsPort}, { kind = 'tls' })`,
      `net.listen('127.0.0.1', ${httpsPort}, { kind = 'doh2' })`,
      `net.tls('${pki.good.certFile}', '${pki.good.keyFile}')`,
      'cache.size = 10 * MB',
      `policy.add(policy.all(policy.STUB('127.0.0.1@${backendPort}')))`,
      '',
    ].join('\n'),
  );
  let output = '';
  const child: ChildProcess = spawn('kresd', ['-n', '-c', conf, dir], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err) => reject(new Error(`starting kresd (is Debian's knot-resolver installed?): ${err.message}`))),
  );
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`kresd exited during start-up: ${output}`);
    }
    try {
      await Promise.race([spawnError, queryUdp('127.0.0.1', plainPort, { name: 'www.interop.test', type: 'A' }, 300)]);
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`kresd did not answer within 10 s: ${(err as Error).message} ${output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { plainPort, tlsPort, httpsPort, stop };
}

describe('interop: kresd as DoT and DoH server', () => {
  let ub: UnboundServer;
  let dd: Kresd;
  const open: Upstream[] = [];
  const options: UpstreamOptions = { bootstrap: { 'dns.test': ['127.0.0.1'] }, ca: [pki.ca] };
  const make = (url: string, extra: UpstreamOptions = {}): Upstream => {
    const u = fromUrl(url, { ...options, ...extra });
    open.push(u);
    return u;
  };
  const urls = (): [string, string, UpstreamOptions][] => [
    ['dot', `tls://dns.test:${dd.tlsPort}`, {}],
    ['doh POST', `https://dns.test:${dd.httpsPort}/dns-query`, {}],
    ['doh GET', `https://dns.test:${dd.httpsPort}/dns-query`, { dohMethod: 'GET' }],
  ];

  before(async () => {
    ub = await startUnbound([
      { name: 'interop.test', records: ['www.interop.test. 300 IN A 192.0.2.9', ...bigTxtRecords('big.interop.test', 5000)] },
    ]);
    dd = await startKresd(ub.port);
  });
  after(async () => {
    await Promise.all(open.map((u) => u.close()));
    await dd?.stop();
    await ub?.stop();
  });

  it('kresd: answers through dot and doh (POST and GET)', async () => {
    for (const [name, url, extra] of urls()) {
      const u = make(url, extra);
      const reply = await u.exchange(encodeQuery({ name: 'www.interop.test', type: 'A', id: 654 }), AbortSignal.timeout(3000));
      const p = packet.decode(reply);
      assert.equal(p.id, 654, name);
      assert.equal((p.answers?.[0] as { data: string } | undefined)?.data, '192.0.2.9', name);
    }
  });

  it('kresd: an answer over 4 KB through dot and doh', async () => {
    for (const [name, url, extra] of urls()) {
      const u = make(url, extra);
      const reply = await u.exchange(encodeQuery({ name: 'big.interop.test', type: 'TXT' }), AbortSignal.timeout(3000));
      assert.ok(reply.length > 4096, `${name}: ${reply.length} bytes`);
    }
  });

  // kresd 5.6 refuses (RST_STREAM REFUSED_STREAM) a POST stream while another
  // is open on the connection; DoH retries refused streams (RFC 9113 §8.7), so
  // POST works, slower; GET streams run concurrently.
  it('kresd: 50 concurrent queries over dot and doh (POST and GET)', async () => {
    for (const [name, url, extra] of urls()) {
      const u = make(url, extra);
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, i) => u.exchange(encodeQuery({ name: 'www.interop.test', type: 'A', id: 1000 + i }), AbortSignal.timeout(3000))),
      );
      replies.forEach((r, i) => assert.equal(packet.decode(r).id, 1000 + i, name));
    }
  });
});
