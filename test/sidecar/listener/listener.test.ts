/**
 * The listeners over real loopback sockets with a scripted chain: RFC 7766
 * pipelining and out-of-order answers, idle timeout, connection and
 * per-connection caps, the UDP size limit, IPv6 loopback, drop outcomes.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
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
import { waitFor } from '../../helpers/sidecar.ts';
import { frame, onFrames } from '../../helpers/tcp-frames.ts';

/** A chain answering A 192.0.2.<n> for `n.delay-<ms>.test` after <ms> milliseconds; `drop.test` is dropped. */
const scripted: Next = async (ctx) => {
  const name = ctx.query.qname;
  if (name === 'drop.test') return dropOutcome('local', 'test');
  const m = /^(\d+)\.delay-(\d+)\.test$/.exec(name);
  if (m) await sleep(Number(m[2]));
  const answers = name.startsWith('big')
    ? Array.from({ length: 60 }, (_, i) => ({ name, type: 'TXT' as const, class: 'IN' as const, ttl: 60, data: 'x'.repeat(40) + i }))
    : [{ name, type: 'A' as const, class: 'IN' as const, ttl: 60, data: `192.0.2.${m ? m[1] : 1}` }];
  return { kind: 'reply', body: synthesize(ctx.wire, ctx.query, { rcode: RCode.NOERROR, answers }), rcode: RCode.NOERROR, source: 'local', reason: 'test' };
};

function deps(limit = 100): HandlerDeps {
  return {
    chain: scripted,
    router: { route: () => internalRoute('default') },
    gate: new InflightGate(limit),
    signal: new AbortController().signal,
    fail: (err, ctx) => servfail(ctx, err),
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
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, deps(), limits, silentLogger);
  t.after(() => l.close());
  const c = await connect(l.address.port);
  t.after(() => c.sock.destroy());
  c.send('1.delay-150.test');
  c.send('2.delay-10.test');
  c.send('3.delay-80.test');
  await waitFor('three replies', () => c.replies.length === 3, 3000);
  assert.deepEqual(c.replies.map((r) => r.answers[0]!.data), ['192.0.2.2', '192.0.2.3', '192.0.2.1']);
});

test('tcp listener: a message split across segments, and several in one segment, are read correctly', async (t) => {
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, deps(), limits, silentLogger);
  t.after(() => l.close());
  const c = await connect(l.address.port);
  t.after(() => c.sock.destroy());
  const q1 = encodeQuery({ name: '7.delay-0.test', type: 'A' });
  const q2 = encodeQuery({ name: '8.delay-0.test', type: 'A' });
  const framed = Buffer.concat([Buffer.from([0, q1.length]), q1, Buffer.from([0, q2.length]), q2]);
  c.sock.write(framed.subarray(0, 1));
  await sleep(20);
  c.sock.write(framed.subarray(1, 9));
  await sleep(20);
  c.sock.write(framed.subarray(9));
  await waitFor('two replies', () => c.replies.length === 2, 3000);
  assert.deepEqual(c.replies.map((r) => r.answers[0]!.data).sort(), ['192.0.2.7', '192.0.2.8']);
});

test('tcp listener: more pipelined queries than the cap get SERVFAIL at once', async (t) => {
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, deps(), limits, silentLogger);
  t.after(() => l.close());
  const c = await connect(l.address.port);
  t.after(() => c.sock.destroy());
  for (let i = 1; i <= 6; i++) c.send(`${i}.delay-200.test`);
  await waitFor('two SERVFAILs', () => c.replies.filter((r) => r.rcode === 'SERVFAIL').length === 2, 150);
  await waitFor('all six replies', () => c.replies.length === 6, 3000);
  assert.equal(c.replies.filter((r) => r.rcode === 'NOERROR').length, 4);
});

test('tcp listener: an idle connection is closed; one with a query in flight is not', async (t) => {
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, deps(), limits, silentLogger);
  t.after(() => l.close());
  const idle = await connect(l.address.port);
  const busy = await connect(l.address.port);
  t.after(() => busy.sock.destroy());
  busy.send('1.delay-500.test');
  await waitFor('the idle connection to close', () => idle.closed(), 2000);
  assert.equal(busy.closed(), false);
  await waitFor('the slow reply', () => busy.replies.length === 1, 3000);
});

test('tcp listener: a message dripped slower than the idle timeout is cut off', async (t) => {
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, deps(), { ...limits, idleTimeoutMs: 200 }, silentLogger);
  t.after(() => l.close());
  const c = await connect(l.address.port);
  const q = encodeQuery({ name: '1.delay-0.test', type: 'A' });
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
  const l = await listenTcp({ host: '127.0.0.1', port: 0, family: 4 }, deps(), { ...limits, idleTimeoutMs: 5000 }, silentLogger);
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
  const l = await listenUdp({ host: '127.0.0.1', port: 0, family: 4 }, deps(), silentLogger);
  t.after(() => l.close());
  const small = await queryUdp('127.0.0.1', l.address.port, { name: 'big.test', type: 'TXT', edns: false });
  assert.equal(small.flag_tc, true);
  assert.ok(small.raw.length <= 512);
  const large = await queryUdp('127.0.0.1', l.address.port, { name: 'big.test', type: 'TXT', edns: { udpSize: 4096 } });
  assert.equal(large.flag_tc, false);
  assert.equal(large.answers.length, 60);
  await assert.rejects(queryUdp('127.0.0.1', l.address.port, { name: 'drop.test', type: 'A' }, 300), /no UDP reply/);
});

test('udp listener: past the in-flight cap UDP queries are dropped, and served again once below it', async (t) => {
  const l = await listenUdp({ host: '127.0.0.1', port: 0, family: 4 }, deps(1), silentLogger);
  t.after(() => l.close());
  const slow = queryUdp('127.0.0.1', l.address.port, { name: '1.delay-300.test', type: 'A' }, 2000);
  await sleep(50);
  await assert.rejects(queryUdp('127.0.0.1', l.address.port, { name: '2.delay-0.test', type: 'A' }, 150), /no UDP reply/);
  assert.equal((await slow).rcode, 'NOERROR');
  assert.equal((await queryUdp('127.0.0.1', l.address.port, { name: '3.delay-0.test', type: 'A' })).rcode, 'NOERROR');
});

test('listeners: IPv6 loopback works for UDP and TCP', async (t) => {
  const at = { host: '::1', port: 0, family: 6 as const };
  const u = await listenUdp(at, deps(), silentLogger);
  t.after(() => u.close());
  const tc = await listenTcp(u.address, deps(), limits, silentLogger);
  t.after(() => tc.close());
  const r = await queryUdp('::1', u.address.port, { name: '5.delay-0.test', type: 'A' });
  assert.equal(r.answers[0]!.data, '192.0.2.5');
  const c = await connect(u.address.port, '::1');
  t.after(() => c.sock.destroy());
  c.send('6.delay-0.test');
  await waitFor('the TCP reply', () => c.replies.length === 1, 3000);
  assert.equal(c.replies[0]!.answers[0]!.data, '192.0.2.6');
});

test('listeners: an EDNS version above 0 gets BADVERS, carried in an OPT record (RFC 6891 §6.1.3)', async (t) => {
  const l = await listenUdp({ host: '127.0.0.1', port: 0, family: 4 }, deps(), silentLogger);
  t.after(() => l.close());
  const q = encodeQuery({ name: '1.delay-0.test', type: 'A' });
  // The OPT record is last: TTL bytes are ext-rcode, version, DO/Z; set the version to 1.
  q[q.length - 11 + 6] = 1;
  const r = decodeReply(await exchangeUdpRaw('127.0.0.1', l.address.port, q));
  assert.equal(r.raw.readUInt16BE(2) & 0x0f, 0, 'the header holds the low 4 bits of 16');
  const opt = r.additionals.find((a) => a.type === 'OPT') as unknown as { extendedRcode: number } | undefined;
  assert.equal(opt?.extendedRcode, 1, 'the OPT record holds the upper bits: 16 = BADVERS');
  assert.equal(r.answers.length, 0);
});
