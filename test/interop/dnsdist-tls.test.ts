/**
 * Interop: the DoT and DoH transports against a real dnsdist (Debian's
 * package; its DoH speaks HTTP/1.1 and HTTP/2) on loopback ports with the test
 * CA's certificate, forwarding to a test unbound. An answer over 4 KB through
 * each. Fails, not skips, without dnsdist or unbound.
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

interface Dnsdist {
  readonly plainPort: number;
  readonly tlsPort: number;
  readonly httpsPort: number;
  stop(): Promise<void>;
}

async function startDnsdist(backendPort: number): Promise<Dnsdist> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-dnsdist-'));
  const [plainPort, tlsPort, httpsPort] = [await freePort(), await freePort(), await freePort()];
  const conf = join(dir, 'dnsdist.conf');
  writeFileSync(
    conf,
    [
      "setSecurityPollSuffix('')",
      `setLocal('127.0.0.1:${plainPort}')`,
      `newServer({address='127.0.0.1:${backendPort}'})`,
      // Without maxInFlight, dnsdist 1.7 reads a DoT connection's queries one at a
      // time and stalls on pipelined ones still in the TLS buffer (read timeout
      // after 2 answers); with it, it answers them concurrently (RFC 7766 §6.2.1.1).
      `addTLSLocal('127.0.0.1:${tlsPort}', '${pki.good.certFile}', '${pki.good.keyFile}', {maxInFlight=100})`,
      `addDOHLocal('127.0.0.1:${httpsPort}', '${pki.good.certFile}', '${pki.good.keyFile}', '/dns-query')`,
      '',
    ].join('\n'),
  );
  let output = '';
  const child: ChildProcess = spawn('dnsdist', ['--supervised', '--disable-syslog', '-C', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err) => reject(new Error(`starting dnsdist (is Debian's dnsdist installed?): ${err.message}`))),
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
      throw new Error(`dnsdist exited during start-up: ${output}`);
    }
    try {
      await Promise.race([spawnError, queryUdp('127.0.0.1', plainPort, { name: 'www.interop.test', type: 'A' }, 300)]);
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`dnsdist did not answer within 10 s: ${(err as Error).message} ${output}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { plainPort, tlsPort, httpsPort, stop };
}

describe('interop: dnsdist as DoT and DoH server', () => {
  let ub: UnboundServer;
  let dd: Dnsdist;
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
      { name: 'interop.test', records: ['www.interop.test. 300 IN A 192.0.2.8', ...bigTxtRecords('big.interop.test', 5000)] },
    ]);
    dd = await startDnsdist(ub.port);
  });
  after(async () => {
    await Promise.all(open.map((u) => u.close()));
    await dd?.stop();
    await ub?.stop();
  });

  it('dnsdist: answers through dot and doh (POST and GET)', async () => {
    for (const [name, url, extra] of urls()) {
      const u = make(url, extra);
      const reply = await u.exchange(encodeQuery({ name: 'www.interop.test', type: 'A', id: 654 }), AbortSignal.timeout(3000));
      const p = packet.decode(reply);
      assert.equal(p.id, 654, name);
      assert.equal((p.answers?.[0] as { data: string } | undefined)?.data, '192.0.2.8', name);
    }
  });

  it('dnsdist: an answer over 4 KB through dot and doh', async () => {
    for (const [name, url, extra] of urls()) {
      const u = make(url, extra);
      const reply = await u.exchange(encodeQuery({ name: 'big.interop.test', type: 'TXT' }), AbortSignal.timeout(3000));
      assert.ok(reply.length > 4096, `${name}: ${reply.length} bytes`);
    }
  });

  it('dnsdist: 50 concurrent queries over dot and doh', async () => {
    for (const [name, url] of urls().slice(0, 2)) {
      const u = make(url!);
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, i) => u.exchange(encodeQuery({ name: 'www.interop.test', type: 'A', id: 1000 + i }), AbortSignal.timeout(3000))),
      );
      replies.forEach((r, i) => assert.equal(packet.decode(r).id, 1000 + i, name));
    }
  });
});
