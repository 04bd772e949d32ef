/**
 * The listeners over real loopback sockets with a scripted chain: RFC 7766
 * pipelining and out-of-order answers, idle timeout, connection and
 * per-connection caps, the UDP size limit, IPv6 loopback, drop outcomes.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { RCode } from '../../../sidecar/dns/constants.ts';
import { synthesize } from '../../../sidecar/dns/reply.ts';
import { InflightGate, type HandlerDeps } from '../../../sidecar/listener/handle.ts';
import { internalRoute } from '../../../sidecar/route/classify.ts';
import { servfail } from '../../../sidecar/pipeline/compose.ts';
import { listenTcp } from '../../../sidecar/listener/tcp.ts';
import { listenUdp } from '../../../sidecar/listener/udp.ts';
import { silentLogger } from '../../../sidecar/log.ts';
import { dropOutcome, type Next } from '../../../sidecar/pipeline/stage.ts';
import { decodeReply, encodeQuery, exchangeUdpRaw, queryUdp, type DecodedReply } from '../../helpers/dns-client.ts';
import { Gates } from '../../helpers/events.ts';
import { waitFor } from '../../helpers/sidecar.ts';
import { frame, onFrames } from '../../helpers/tcp-frames.ts';

/**
 * A chain answering A 192.0.2.<n> for `n.test` at once, and for `n.held.test`
 * once the test opens gate `n.held.test` of `gates`; `drop.test` is dropped.
 */
function scripted(gates: Gates): Next {
  return async (ctx) => {
    const name = ctx.query.qname;
    if (name === 'drop.test') return dropOutcome('local', 'test');
    const m = /^(\d+)\.(held\.)?test$/.exec(name);
    if (m?.[2]) await gates.pass(name);
    const answers = name.startsWith('big')
      ? Array.from({ length: 60 }, (_, i) => ({ name, type: 'TXT' as const, class: 'IN' as const, ttl: 60, data: 'x'.repeat(40) + i }))
      : [{ name, type: 'A' as const, class: 'IN' as const, ttl: 60, data: `192.0.2.${m ? m[1] : 1}` }];
    return { kind: 'reply', body: synthesize(ctx.wire, ctx.query, { rcode: RCode.NOERROR, answers }), rcode: RCode.NOERROR, source: 'local', reason: 'test' };
  };
}

/** Handler deps over the scripted chain; the gates it holds queries at are opened when the test ends. */
function deps(t: TestContext, limit = 100, gate = new InflightGate(limit)): HandlerDeps & { gates: Gates } {
  const gates = new Gates();
  t.after(() => gates.openAll());
  return {
    chain: scripted(gates),
    router: { route: () => internalRoute('default') },
    gate,
    signal: new AbortController().signal,
    fail: (err, ctx) => servfail(ctx, err),
    gates,
  };
}

/** A UDP client socket that keeps every reply, by message ID. */
async function udpClient(t: TestContext, port: number) {
  const sock = dgram.createSocket('udp4');
  t.after(() => sock.close());
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  const replies: DecodedReply[] = [];
  sock.on('message', (msg) => replies.push(decodeReply(msg)));
  return {
    replies,
    send: (name: string, id: number) => sock.send(encodeQuery({ name, type: 'A', id }), port, '127.0.0.1'),
  };
}

/** Opens a TCP connection and collects framed replies. */
async function connect(port: number, host = '127.0.0.1') {
  const sock = net.connect({ host, port });
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const replies: DecodedReply[] = [];
  let closed = false;
  onFrames(sock, (reply) => replies.push(decodeReply(reply)));
  sock.on('close', () => (closed = true));
  sock.on('error', () => {});
  const send = (name: string, type = 'A') => sock.write(frame(encodeQuery({ name, type })));
  return { sock, replies, send, closed: () => closed };
}

const limits = { idleTimeoutMs: 300, maxConnections: 3, maxPipelined: 4 };

test('tcp listener: pipelined queries on one connection are answered as they complete, out of order', async (t) => {
  const d = deps(t);
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, d, limits, silentLogger);
  t.after(() => l.close());
  const c = await connect(l.address.port);
  t.after(() => c.sock.destroy());
  c.send('1.held.test');
  c.send('2.held.test');
  c.send('3.held.test');
  await Promise.all(['1', '2', '3'].map((n) => d.gates.arrived(`${n}.held.test`)));
  // All three are in flight; each completes when the test says, in the order 2, 3, 1.
  for (const [n, count] of [['2', 1], ['3', 2], ['1', 3]] as const) {
    d.gates.open(`${n}.held.test`);
    await waitFor(`reply ${count}`, () => c.replies.length === count, 3000);
  }
  assert.deepEqual(c.replies.map((r) => r.answers[0]!.data), ['192.0.2.2', '192.0.2.3', '192.0.2.1']);
});

test('tcp listener: a message split across segments, and several in one segment, are read correctly', async (t) => {
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, deps(t), limits, silentLogger);
  t.after(() => l.close());
  // A write that ends inside a message, after a whole query: that query's reply shows the listener has read
  // the write, so the rest of the message, and the next message with it, arrive in a later read. Cut inside
  // the length prefix, then inside the header.
  for (const cut of [1, 9]) {
    const c = await connect(l.address.port);
    t.after(() => c.sock.destroy());
    const marker = frame(encodeQuery({ name: '9.test', type: 'A' }));
    const q1 = encodeQuery({ name: '7.test', type: 'A' });
    const q2 = encodeQuery({ name: '8.test', type: 'A' });
    const framed = Buffer.concat([Buffer.from([0, q1.length]), q1, Buffer.from([0, q2.length]), q2]);
    c.sock.write(Buffer.concat([marker, framed.subarray(0, cut)]));
    await waitFor(`cut at ${cut}: the reply to the query before the cut`, () => c.replies.length === 1, 3000);
    c.sock.write(framed.subarray(cut));
    await waitFor(`cut at ${cut}: two more replies`, () => c.replies.length === 3, 3000);
    assert.equal(c.replies[0]!.answers[0]!.data, '192.0.2.9');
    assert.deepEqual(c.replies.slice(1).map((r) => r.answers[0]!.data).sort(), ['192.0.2.7', '192.0.2.8']);
  }
});

test('tcp listener: more pipelined queries than the cap get SERVFAIL at once', async (t) => {
  const d = deps(t);
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, d, limits, silentLogger);
  t.after(() => l.close());
  const c = await connect(l.address.port);
  t.after(() => c.sock.destroy());
  for (let i = 1; i <= 6; i++) c.send(`${i}.held.test`);
  await waitFor('two SERVFAILs', () => c.replies.filter((r) => r.rcode === 'SERVFAIL').length === 2, 3000);
  // At once: while the four queries under the cap are still held, nothing else has been answered.
  assert.equal(c.replies.length, 2);
  for (let i = 1; i <= 6; i++) d.gates.open(`${i}.held.test`);
  await waitFor('all six replies', () => c.replies.length === 6, 3000);
  assert.equal(c.replies.filter((r) => r.rcode === 'NOERROR').length, 4);
});

test('tcp listener: an idle connection is closed; one with a query in flight is not', async (t) => {
  const d = deps(t);
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, d, limits, silentLogger);
  t.after(() => l.close());
  const busy = await connect(l.address.port);
  t.after(() => busy.sock.destroy());
  busy.send('1.held.test');
  await d.gates.arrived('1.held.test');
  // The idle connection's timeout starts after the busy one's last read, and timers of one length fire in
  // the order they were started: once the idle connection is closed, the busy one's timeout has fired too.
  const idle = await connect(l.address.port);
  await waitFor('the idle connection to close', () => idle.closed(), 3000);
  assert.equal(busy.closed(), false);
  d.gates.open('1.held.test');
  await waitFor('the held reply', () => busy.replies.length === 1, 3000);
});

test('tcp listener: a message dripped slower than the idle timeout is cut off', async (t) => {
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, deps(t), { ...limits, idleTimeoutMs: 200 }, silentLogger);
  t.after(() => l.close());
  const c = await connect(l.address.port);
  const q = encodeQuery({ name: '1.test', type: 'A' });
  const framed = Buffer.concat([Buffer.from([0, q.length]), q]);
  let i = 0;
  const drip = setInterval(() => {
    if (i < framed.length && !c.closed()) c.sock.write(framed.subarray(i, ++i));
  }, 120);
  t.after(() => clearInterval(drip));
  await waitFor('the connection to close', () => c.closed(), 3000);
  assert.equal(c.replies.length, 0);
});

test('tcp listener: connections past the cap are closed at accept', async (t) => {
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, deps(t), { ...limits, idleTimeoutMs: 5000 }, silentLogger);
  t.after(() => l.close());
  const conns = [];
  for (let i = 0; i < 3; i++) conns.push(await connect(l.address.port));
  await waitFor('three connections', () => l.connections() === 3, 3000);
  const extra = await connect(l.address.port);
  await waitFor('the extra connection to close', () => extra.closed(), 2000);
  for (const c of conns) {
    assert.equal(c.closed(), false);
    c.sock.destroy();
  }
});

test('udp listener: replies over the client limit are cut with TC; drop outcomes send nothing', async (t) => {
  const l = await listenUdp({ host: '127.0.0.1', port: 0, family: 4 }, deps(t), silentLogger);
  t.after(() => l.close());
  const small = await queryUdp('127.0.0.1', l.address.port, { name: 'big.test', type: 'TXT', edns: false });
  assert.equal(small.flag_tc, true);
  assert.ok(small.raw.length <= 512);
  const large = await queryUdp('127.0.0.1', l.address.port, { name: 'big.test', type: 'TXT', edns: { udpSize: 4096 } });
  assert.equal(large.flag_tc, false);
  assert.equal(large.answers.length, 60);
  // Datagrams of one socket are read in order: once the query sent after the dropped one is answered,
  // a reply to the dropped one would have come before it.
  const client = await udpClient(t, l.address.port);
  client.send('drop.test', 1);
  client.send('5.test', 2);
  await waitFor('the reply to the query after the dropped one', () => client.replies.some((r) => r.id === 2), 3000);
  assert.deepEqual(client.replies.map((r) => r.id), [2], 'no reply to the dropped query');
});

test('udp listener: past the in-flight cap UDP queries are dropped, and served again once below it', async (t) => {
  /** The cap, counting the queries it turns away. */
  class CountingGate extends InflightGate {
    refused = 0;
    override enter(): boolean {
      const entered = super.enter();
      if (!entered) this.refused++;
      return entered;
    }
  }
  const gate = new CountingGate(1);
  const d = deps(t, 1, gate);
  const l = await listenUdp({ host: '127.0.0.1', port: 0, family: 4 }, d, silentLogger);
  t.after(() => l.close());
  const client = await udpClient(t, l.address.port);
  client.send('1.held.test', 1);
  await d.gates.arrived('1.held.test');
  client.send('2.test', 2);
  await waitFor('the query past the cap to be turned away', () => gate.refused === 1, 3000);
  d.gates.open('1.held.test');
  await waitFor('the held reply', () => client.replies.length === 1, 3000);
  client.send('3.test', 3);
  await waitFor('the reply once below the cap', () => client.replies.length === 2, 3000);
  assert.deepEqual(client.replies.map((r) => [r.id, r.rcode]), [[1, 'NOERROR'], [3, 'NOERROR']], 'nothing for the query past the cap');
});

test('listeners: IPv6 loopback works for UDP and TCP', async (t) => {
  const at = { host: '::1', port: 0, family: 6 as const };
  const u = await listenUdp(at, deps(t), silentLogger);
  t.after(() => u.close());
  const tc = await listenTcp(u.address, deps(t), limits, silentLogger);
  t.after(() => tc.close());
  const r = await queryUdp('::1', u.address.port, { name: '5.test', type: 'A' });
  assert.equal(r.answers[0]!.data, '192.0.2.5');
  const c = await connect(u.address.port, '::1');
  t.after(() => c.sock.destroy());
  c.send('6.test');
  await waitFor('the TCP reply', () => c.replies.length === 1, 3000);
  assert.equal(c.replies[0]!.answers[0]!.data, '192.0.2.6');
});

test('listeners: an EDNS version above 0 gets BADVERS, carried in an OPT record (RFC 6891 §6.1.3)', async (t) => {
  const l = await listenUdp({ host: '127.0.0.1', port: 0, family: 4 }, deps(t), silentLogger);
  t.after(() => l.close());
  const q = encodeQuery({ name: '1.test', type: 'A' });
  // The OPT record is last: TTL bytes are ext-rcode, version, DO/Z; set the version to 1.
  q[q.length - 11 + 6] = 1;
  const r = decodeReply(await exchangeUdpRaw('127.0.0.1', l.address.port, q));
  assert.equal(r.raw.readUInt16BE(2) & 0x0f, 0, 'the header holds the low 4 bits of 16');
  const opt = r.additionals.find((a) => a.type === 'OPT') as unknown as { extendedRcode: number } | undefined;
  assert.equal(opt?.extendedRcode, 1, 'the OPT record holds the upper bits: 16 = BADVERS');
  assert.equal(r.answers.length, 0);
});
