/**
 * Regression (CI of stop 10 ran out of time): a test upstream bound UDP on a
 * kernel-chosen port, then TCP on the same port; a client socket of a
 * neighbouring test held that port for TCP, the listen failed with
 * EADDRINUSE, and the UDP socket stayed bound. The failed test file then
 * never ended, because node:test waits for the event loop to drain.
 *
 * Now listenUdpAndTcp closes the UDP socket on a clash and tries another
 * port, and `npm test` runs with --test-force-exit, so a file whose tests
 * are done ends even with a handle left open.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { freePort, listenUdpAndTcp } from '../helpers/ports.ts';

const make = () => ({ udp: dgram.createSocket('udp4'), tcp: net.createServer() });

test('listenUdpAndTcp: a port whose TCP side is taken fails with EADDRINUSE and leaves no UDP socket bound', async (t) => {
  const port = await freePort();
  const holder = net.createServer();
  await new Promise<void>((r) => holder.listen({ host: '127.0.0.1', port }, () => r()));
  t.after(() => holder.close());
  await assert.rejects(listenUdpAndTcp('127.0.0.1', port, make), { code: 'EADDRINUSE' });
  // The UDP side is free again: a new socket binds it.
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.bind(port, '127.0.0.1', () => resolve());
  });
  await new Promise<void>((r) => probe.close(() => r()));
});

test('listenUdpAndTcp: port 0 gives UDP and TCP on one port', async () => {
  for (let i = 0; i < 20; i++) {
    const { udp, tcp, port } = await listenUdpAndTcp('127.0.0.1', 0, make);
    assert.equal(udp.address().port, port);
    assert.equal((tcp.address() as net.AddressInfo).port, port);
    await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
  }
});

test('npm test: a test file that fails with a socket still open ends instead of hanging', () => {
  const script = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> }).scripts.test!;
  const flags = script.split(/\s+/).filter((w) => w.startsWith('--test-') && !w.startsWith('--test-concurrency'));
  assert.ok(flags.includes('--test-force-exit'), `npm test runs without --test-force-exit: ${script}`);
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-hang-'));
  const file = join(dir, 'leak.test.mjs');
  writeFileSync(
    file,
    "import { test } from 'node:test';\nimport dgram from 'node:dgram';\n" +
      "test('leaks', async () => { const s = dgram.createSocket('udp4'); await new Promise((r) => s.bind(0, '127.0.0.1', r)); throw new Error('failed on purpose'); });\n",
  );
  let status = 0;
  let out = '';
  try {
    // Without NODE_TEST_CONTEXT, which makes a nested runner report to this one.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    execFileSync(process.execPath, ['--test', ...flags, file], { timeout: 20_000, encoding: 'utf8', stdio: 'pipe', env });
  } catch (err) {
    const e = err as { status: number | null; signal: string | null; stdout: string };
    assert.equal(e.signal, null, 'the test file was still running after 20 s');
    status = e.status ?? -1;
    out = e.stdout;
  }
  assert.equal(status, 1, 'the failure is reported');
  assert.match(out, /failed on purpose/);
});
