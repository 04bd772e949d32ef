/**
 * UDP anti-spoofing (RFC 5452) over the socket pool: source ports from a pool
 * of kernel-chosen ports, each retired after a bounded number of queries or
 * seconds, a random ID per query, and only a reply from the server's own
 * address and port with a query's ID and question accepted; the rest dropped
 * and counted.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import * as packet from 'dns-packet';
import { UdpUpstream } from '../../../sidecar/upstream/udp.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { defaultAnswer } from '../../helpers/dns-server.ts';
import { freePort } from '../../helpers/ports.ts';

async function bind(t: TestContext): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

describe('udp upstream', () => {
  it('udp: an IPv6 upstream is asked from a udp6 socket, an IPv4 one from udp4', async (t) => {
    for (const [type, host] of [['udp6', '::1'], ['udp4', '127.0.0.1']] as const) {
      const server = dgram.createSocket(type);
      await new Promise<void>((r) => server.bind(0, host, r));
      t.after(() => new Promise<void>((r) => server.close(() => r())));
      const from: string[] = [];
      server.on('message', (msg, rinfo) => {
        from.push(rinfo.family);
        const q = packet.decode(msg);
        server.send(packet.encode({ ...defaultAnswer(q), id: q.id }), rinfo.port, rinfo.address);
      });
      const u = new UdpUpstream(host, server.address().port);
      t.after(() => u.close());
      const reply = await u.exchange(encodeQuery({ name: 'www.example.test', type: 'A', id: 7 }), AbortSignal.timeout(1000));
      assert.equal(packet.decode(reply).id, 7);
      assert.deepEqual(from, [type === 'udp6' ? 'IPv6' : 'IPv4']);
    }
  });

  it('udp: queries leave from a pool of kernel-chosen ports, each retired after at most socketQueries, with random IDs', async (t) => {
    const server = await bind(t);
    const seen: { port: number; id: number }[] = [];
    server.on('message', (msg, rinfo) => {
      const q = packet.decode(msg);
      seen.push({ port: rinfo.port, id: q.id ?? 0 });
      server.send(packet.encode({ ...defaultAnswer(q), id: q.id }), rinfo.port, rinfo.address);
    });
    const u = new UdpUpstream('127.0.0.1', server.address().port, { sockets: 4, socketQueries: 8 });
    t.after(() => u.close());
    for (let i = 0; i < 200; i++) {
      const reply = await u.exchange(encodeQuery({ name: 'www.example.test', type: 'A', id: 1 }), AbortSignal.timeout(1000));
      assert.equal(packet.decode(reply).id, 1);
    }
    assert.equal(seen.length, 200);
    const perPort = new Map<number, number>();
    for (const s of seen) perPort.set(s.port, (perPort.get(s.port) ?? 0) + 1);
    // 200 queries, at most 8 per socket: 25 sockets at least (a port the kernel hands out twice counts twice).
    assert.ok(u.socketsOpened >= 25, `sockets opened: ${u.socketsOpened}`);
    assert.ok(perPort.size >= 20, `distinct source ports: ${perPort.size}`);
    assert.ok(Math.max(...perPort.values()) <= 16, `queries per port: ${[...perPort.values()].join(' ')}`);
    assert.ok(new Set(seen.map((s) => s.id)).size >= 195, `IDs: ${seen.map((s) => s.id).join(' ')}`);
    assert.ok(seen.filter((s) => s.id === 1).length <= 2, 'the caller ID is not what goes on the wire');
  });

  it('udp: concurrent queries are spread over several sockets, IDs unique per socket, and retired sockets close once answered', async (t) => {
    const server = await bind(t);
    const held: { msg: Buffer; port: number }[] = [];
    const total = 64;
    server.on('message', (msg, rinfo) => {
      held.push({ msg, port: rinfo.port });
      if (held.length < total) return;
      // Every query is in flight at once; answer them all, last first.
      for (const h of held.reverse()) {
        const q = packet.decode(h.msg);
        server.send(packet.encode({ ...defaultAnswer(q), id: q.id }), h.port, '127.0.0.1');
      }
    });
    const u = new UdpUpstream('127.0.0.1', server.address().port, { sockets: 8, socketQueries: 16 });
    t.after(() => u.close());
    const replies = await Promise.all(
      Array.from({ length: total }, (_, i) => u.exchange(encodeQuery({ name: `n${i}.example.test`, type: 'A', id: i }), AbortSignal.timeout(2000))),
    );
    replies.forEach((r, i) => {
      const d = packet.decode(r);
      assert.equal(d.id, i);
      assert.equal(d.questions?.[0]?.name, `n${i}.example.test`);
    });
    const ports = new Set(held.map((h) => h.port));
    assert.ok(ports.size >= 5, `64 queries in flight together left from ${ports.size} ports`);
    for (const port of ports) {
      const ids = held.filter((h) => h.port === port).map((h) => h.msg.readUInt16BE(0));
      assert.equal(new Set(ids).size, ids.length, `IDs in flight on port ${port} are unique`);
    }
    // 64 queries at ≤ 16 per socket retired some sockets while their queries were in flight: they answered, then closed.
    assert.ok(u.socketsOpened >= 4);
    assert.ok(u.openSockets <= 8, `sockets still open: ${u.openSockets}`);
  });

  it('udp: with socketSeconds 0 every query gets a fresh socket', async (t) => {
    const server = await bind(t);
    const ports: number[] = [];
    server.on('message', (msg, rinfo) => {
      ports.push(rinfo.port);
      const q = packet.decode(msg);
      server.send(packet.encode({ ...defaultAnswer(q), id: q.id }), rinfo.port, rinfo.address);
    });
    const u = new UdpUpstream('127.0.0.1', server.address().port, { sockets: 1, socketSeconds: 0 });
    t.after(() => u.close());
    for (let i = 0; i < 10; i++) await u.exchange(encodeQuery({ name: 'www.example.test', type: 'A' }), AbortSignal.timeout(1000));
    assert.equal(u.socketsOpened, 10);
    assert.ok(new Set(ports).size >= 9, `ports: ${ports.join(' ')}`);
    assert.equal(u.openSockets, 0, 'an expired socket closes once its query is answered');
  });

  it('udp: spoofed replies on the right port with a wrong ID or a wrong question are dropped and counted; the real reply is taken', async (t) => {
    const server = await bind(t);
    server.on('message', (msg, rinfo) => {
      const q = packet.decode(msg);
      const id = q.id ?? 0;
      const right = defaultAnswer(q);
      const forged = { ...right, answers: right.answers?.map((a) => ({ ...a, data: '192.0.2.66' })) } as packet.Packet;
      // From the server's own address and port: a blind attacker's best case, port guessed right.
      for (const delta of [1, 0x100, 0x8000]) server.send(packet.encode({ ...forged, id: (id + delta) & 0xffff }), rinfo.port, rinfo.address);
      server.send(packet.encode({ ...forged, id, questions: [{ name: 'other.example.test', type: 'A', class: 'IN' }] }), rinfo.port, rinfo.address);
      server.send(packet.encode({ ...forged, id, questions: [{ name: q.questions![0]!.name, type: 'AAAA', class: 'IN' }] }), rinfo.port, rinfo.address);
      setImmediate(() => server.send(packet.encode({ ...right, id }), rinfo.port, rinfo.address));
    });
    let dropped = 0;
    const u = new UdpUpstream('127.0.0.1', server.address().port, { sockets: 1, onDroppedReply: (a) => {
      assert.equal(a, u.address);
      dropped++;
    } });
    t.after(() => u.close());
    for (let i = 0; i < 5; i++) {
      const reply = packet.decode(await u.exchange(encodeQuery({ name: 'www.example.test', type: 'A', id: 9 }), AbortSignal.timeout(2000)));
      assert.equal(reply.id, 9);
      assert.equal((reply.answers?.[0] as { data: string }).data, '192.0.2.1', 'the real reply, not a forged one sent before it');
    }
    assert.equal(dropped, 25, 'five forged datagrams per query, each dropped and counted');
  });

  it('udp: a reply arriving after its query timed out is dropped and counted, and the socket keeps working', async (t) => {
    const server = await bind(t);
    let late: { msg: Buffer; port: number } | undefined;
    server.on('message', (msg, rinfo) => {
      const q = packet.decode(msg);
      if (q.questions?.[0]?.name === 'slow.example.test') {
        late = { msg: Buffer.from(packet.encode({ ...defaultAnswer(q), id: q.id })), port: rinfo.port };
        return;
      }
      server.send(packet.encode({ ...defaultAnswer(q), id: q.id }), rinfo.port, rinfo.address);
    });
    let dropped = 0;
    const u = new UdpUpstream('127.0.0.1', server.address().port, { sockets: 1, onDroppedReply: () => dropped++ });
    t.after(() => u.close());
    const deadline = new AbortController();
    const slow = assert.rejects(u.exchange(encodeQuery({ name: 'slow.example.test', type: 'A' }), deadline.signal), { code: 'UPSTREAM_TIMEOUT' });
    await u.exchange(encodeQuery({ name: 'fast.example.test', type: 'A' }), AbortSignal.timeout(2000));
    deadline.abort(new DOMException('the test deadline passed', 'TimeoutError'));
    await slow;
    server.send(late!.msg, late!.port, '127.0.0.1');
    // The next exchange on the same socket is answered after the late reply was read (in order on loopback).
    const reply = packet.decode(await u.exchange(encodeQuery({ name: 'again.example.test', type: 'A', id: 4 }), AbortSignal.timeout(2000)));
    assert.equal(reply.id, 4);
    assert.equal(dropped, 1);
    assert.equal(u.socketsOpened, 1);
  });

  it('udp: a reply from another port is ignored, even with the right ID and question', async (t) => {
    const server = await bind(t);
    const other = await bind(t);
    let sendRight = false;
    // www.example.test gets a reply from the other port first, with another address, so taking it would show;
    // the server itself answers www.example.test only once sendRight is set, and every other name at once.
    server.on('message', (msg, rinfo) => {
      const q = packet.decode(msg);
      const right = defaultAnswer(q);
      if (q.questions?.[0]?.name === 'www.example.test') {
        const forged = { ...right, answers: right.answers?.map((a) => ({ ...a, data: '192.0.2.66' })) } as packet.Packet;
        other.send(packet.encode({ ...forged, id: q.id }), rinfo.port, rinfo.address);
        if (!sendRight) return;
      }
      server.send(packet.encode({ ...right, id: q.id }), rinfo.port, rinfo.address);
    });
    const u = new UdpUpstream('127.0.0.1', server.address().port);
    t.after(() => u.close());
    // The server takes the queries in the order they were sent and the replies come back in that order, so
    // once the later query is answered the forged reply has been read; then the first one's deadline passes.
    const deadline = new AbortController();
    const forgedOnly = assert.rejects(u.exchange(encodeQuery({ name: 'www.example.test', type: 'A' }), deadline.signal), { code: 'UPSTREAM_TIMEOUT' });
    await u.exchange(encodeQuery({ name: 'later.example.test', type: 'A' }), AbortSignal.timeout(2000));
    deadline.abort(new DOMException('the test deadline passed', 'TimeoutError'));
    await forgedOnly;
    sendRight = true;
    const reply = packet.decode(await u.exchange(encodeQuery({ name: 'www.example.test', type: 'A', id: 8 }), AbortSignal.timeout(1000)));
    assert.equal(reply.id, 8);
    assert.equal((reply.answers?.[0] as { data: string }).data, '192.0.2.1', 'the reply from the server, not the forged one sent before it');
  });

  it('udp: a closed port fails fast with UPSTREAM_CONNECT (ICMP port unreachable)', async (t) => {
    // A closed port below the ephemeral range: no socket of a neighbouring test is given it meanwhile.
    const u = new UdpUpstream('127.0.0.1', await freePort());
    t.after(() => u.close());
    // UPSTREAM_CONNECT, not UPSTREAM_TIMEOUT: the ICMP error ended the exchange, not the deadline.
    await assert.rejects(u.exchange(encodeQuery({ name: 'www.example.test', type: 'A' }), AbortSignal.timeout(2000)), { code: 'UPSTREAM_CONNECT' });
  });
});
