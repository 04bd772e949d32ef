/**
 * The stream transports (TCP, DoT) read replies in place from a buffer per
 * connection, whatever pieces they arrive in, and batch their writes: queries handed to an
 * open connection in the same turn of the event loop leave in one write, so
 * a burst costs one TLS record and one syscall instead of one per query.
 * Observed at the socket the transport writes to: what each write hands over
 * (a net.Socket makes one writev(2) of one `_writev`). What a server's reads
 * deliver depends on the kernel and on when the server reads, so the test
 * does not look there.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import * as packet from 'dns-packet';
import { StreamUpstream } from '../../../sidecar/upstream/stream.ts';
import { TcpUpstream } from '../../../sidecar/upstream/tcp.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { frame } from '../../helpers/tcp-frames.ts';

/** A stand-in for an upstream connection: records the bytes of each write it is handed and answers every framed query. */
class RecordingSocket extends Duplex {
  /** Bytes handed over by each write, in order. */
  readonly writes: number[] = [];
  #pending = Buffer.alloc(0);

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.#take(chunk);
    done();
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    this.#take(Buffer.concat(chunks.map((c) => c.chunk)));
    done();
  }

  #take(bytes: Buffer): void {
    this.writes.push(bytes.length);
    this.#pending = Buffer.concat([this.#pending, bytes]);
    while (this.#pending.length >= 2 && this.#pending.length >= 2 + this.#pending.readUInt16BE(0)) {
      const q = packet.decode(this.#pending.subarray(2, 2 + this.#pending.readUInt16BE(0)));
      this.#pending = this.#pending.subarray(2 + this.#pending.readUInt16BE(0));
      const reply = packet.encode({ id: q.id, type: 'response', flags: packet.RECURSION_DESIRED, questions: q.questions, answers: [] });
      this.push(frame(reply));
    }
  }
}

test('tcp: queries handed over in one turn leave in one write, and each gets its answer', async (t) => {
  const sockets: RecordingSocket[] = [];
  const up = new StreamUpstream('tcp://192.0.2.53:53', async () => {
    const s = new RecordingSocket();
    sockets.push(s);
    return s as unknown as Socket;
  });
  t.after(() => up.close());

  await up.exchange(encodeQuery({ name: 'warm.example.test', type: 'A' }), AbortSignal.timeout(2000)); // the connection is open
  const writes = sockets[0]!.writes;
  writes.length = 0;
  const names = Array.from({ length: 20 }, (_, i) => `q${i}.example.test`);
  const queries = names.map((name) => encodeQuery({ name, type: 'A' }));
  const replies = await Promise.all(queries.map((q) => up.exchange(q, AbortSignal.timeout(2000))));
  assert.deepEqual(replies.map((r) => packet.decode(r).questions?.[0]?.name), names);
  const total = queries.reduce((n, q) => n + q.length + 2, 0);
  assert.deepEqual(writes, [total], 'the 20 queries left in one write');
  assert.equal(up.connectionsOpened, 1);
});

test('tcp: replies cut into pieces across reads, and several in one read, are put back together (the read buffer is reused)', async (t) => {
  const total = 20;
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    let pending = Buffer.alloc(0);
    const replies: Buffer[] = [];
    sock.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const q = packet.decode(pending.subarray(2, 2 + pending.readUInt16BE(0)));
        pending = pending.subarray(2 + pending.readUInt16BE(0));
        replies.push(frame(packet.encode({ id: q.id, type: 'response', flags: packet.RECURSION_DESIRED, questions: q.questions, answers: [] })));
      }
      if (replies.length < total) return;
      // Every reply at once, last first, in 7-byte pieces (a length prefix and a header cut apart), each its own
      // write after the previous one left; then the rest in one piece.
      const all = Buffer.concat(replies.reverse());
      let at = 0;
      const next = (): void => {
        if (at >= all.length / 2) {
          sock.write(all.subarray(at));
          return;
        }
        const piece = all.subarray(at, at + 7);
        at += 7;
        sock.write(piece, () => setTimeout(next, 1));
      };
      next();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const up = new TcpUpstream('127.0.0.1', (server.address() as net.AddressInfo).port);
  t.after(async () => {
    await up.close(); // first: the server's close waits for the connection
    await new Promise<void>((r) => server.close(() => r()));
  });
  const names = Array.from({ length: total }, (_, i) => `piece${i}.example.test`);
  const replies = await Promise.all(names.map((name, i) => up.exchange(encodeQuery({ name, type: 'A', id: i }), AbortSignal.timeout(5000))));
  assert.deepEqual(
    replies.map((r) => [packet.decode(r).id, packet.decode(r).questions?.[0]?.name]),
    names.map((name, i) => [i, name]),
  );
});
