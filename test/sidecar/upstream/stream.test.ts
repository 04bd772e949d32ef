/**
 * The stream transports (TCP, DoT) batch their writes: queries handed to an
 * open connection in the same turn of the event loop leave in one write, so
 * a burst costs one TLS record and one syscall instead of one per query.
 * Observed from the server side: what one read of the connection delivers.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import * as packet from 'dns-packet';
import { TcpUpstream } from '../../../sidecar/upstream/tcp.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { frame, onFrames } from '../../helpers/tcp-frames.ts';

test('tcp: queries handed over in one turn reach the server in one read, and each gets its answer', async (t) => {
  const reads: number[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => reads.push(chunk.length));
    onFrames(socket, (msg) => {
      const q = packet.decode(msg);
      const reply = packet.encode({ id: q.id, type: 'response', flags: packet.RECURSION_DESIRED, questions: q.questions, answers: [] });
      socket.write(frame(reply));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const port = (server.address() as net.AddressInfo).port;
  const up = new TcpUpstream('127.0.0.1', port);
  t.after(() => up.close());

  await up.exchange(encodeQuery({ name: 'warm.example.test', type: 'A' }), AbortSignal.timeout(2000)); // the connection is open
  reads.length = 0;
  const names = Array.from({ length: 20 }, (_, i) => `q${i}.example.test`);
  const queries = names.map((name) => encodeQuery({ name, type: 'A' }));
  const replies = await Promise.all(queries.map((q) => up.exchange(q, AbortSignal.timeout(2000))));
  assert.deepEqual(replies.map((r) => packet.decode(r).questions?.[0]?.name), names);
  const total = queries.reduce((n, q) => n + q.length + 2, 0);
  assert.deepEqual(reads, [total], 'the 20 queries arrived in one read');
  assert.equal(up.connectionsOpened, 1);
});
