/**
 * UDP anti-spoofing (RFC 5452): a random source port and a random ID per
 * query, and only a reply from the server's own address and port accepted.
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
  it('udp: every query leaves from its own source port with a random ID', async (t) => {
    const server = await bind(t);
    const seen: { port: number; id: number }[] = [];
    server.on('message', (msg, rinfo) => {
      const q = packet.decode(msg);
      seen.push({ port: rinfo.port, id: q.id ?? 0 });
      server.send(packet.encode({ ...defaultAnswer(q), id: q.id }), rinfo.port, rinfo.address);
    });
    const u = new UdpUpstream('127.0.0.1', server.address().port);
    t.after(() => u.close());
    for (let i = 0; i < 20; i++) {
      const reply = await u.exchange(encodeQuery({ name: 'www.example.test', type: 'A', id: 1 }), AbortSignal.timeout(1000));
      assert.equal(packet.decode(reply).id, 1);
    }
    assert.equal(seen.length, 20);
    assert.ok(new Set(seen.map((s) => s.port)).size >= 18, `source ports: ${seen.map((s) => s.port).join(' ')}`);
    assert.ok(new Set(seen.map((s) => s.id)).size >= 18, `IDs: ${seen.map((s) => s.id).join(' ')}`);
    assert.ok(seen.filter((s) => s.id === 1).length <= 1, 'the caller ID is not what goes on the wire');
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
