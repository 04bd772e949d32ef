/**
 * Regression (issue 6, found probing memory bounds beyond the overload
 * test): a TCP client that pipelined queries for a large cached answer and
 * never read the replies made the sidecar buffer every reply in memory (the
 * per-connection cap counts queries in flight, and a buffered reply is no
 * longer in flight): 100 000 queries of 24 bytes grew the process by 180 MB.
 * Now the listener stops reading a connection whose unsent replies pass
 * 256 KiB, until they drain.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startDnsServer } from '../helpers/dns-server.ts';
import { spawnServing, waitFor } from '../helpers/sidecar.ts';
import { rawQuery, rssMb, udpAsk } from '../reliability/lib.ts';

test('tcp listener: a client that never reads its replies cannot grow the sidecar\'s memory', async (t) => {
  const upstream = await startDnsServer(); // big.* answers a ~5 KB TXT set
  const child = await spawnServing(['sidecar', '--upstream', upstream.url('udp')]);
  t.after(async () => {
    await child.kill();
    await upstream.close();
  });
  const port = child.port;
  const pid = child.child.pid!;
  const before = rssMb(pid);
  const sock = net.connect({ host: '127.0.0.1', port });
  t.after(() => sock.destroy());
  await new Promise((r) => sock.once('connect', r));
  sock.pause();
  let received = 0;
  let failure: Error | undefined;
  sock.on('data', (d: Buffer) => (received += d.length));
  sock.on('error', (err) => (failure = err));
  const q = rawQuery('big.example', 16, 7);
  const frame = Buffer.concat([Buffer.from([0, q.length]), q]);
  const batch = Buffer.concat(Array.from({ length: 100 }, () => frame));
  // 100 000 queries (2.4 MB) asking for about 500 MB of answers; the kernel accepts what it can.
  for (let i = 0; i < 1000; i++) {
    if (!sock.write(batch)) await Promise.race([new Promise((r) => sock.once('drain', r)), sleep(50)]);
    if (i % 10 === 0) await sleep(5);
  }
  await sleep(1500);
  const grown = rssMb(pid) - before;
  t.diagnostic(`RSS grew by ${grown.toFixed(1)} MB`);
  assert.ok(grown < 60, `RSS grew by ${grown.toFixed(1)} MB`);
  assert.ok(await udpAsk(port, rawQuery('after.example', 1, 6, 1232), 2000), 'still serving');
  // The connection still works once the client reads.
  sock.resume();
  await waitFor('replies to flow again', () => received > 1_000_000 || failure !== undefined, 5000);
  assert.equal(failure, undefined, `the connection failed after ${received} bytes`);
});
