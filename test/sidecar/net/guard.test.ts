/**
 * The connection guard (sidecar/net/guard.ts) in front of a plain node:http
 * server on loopback, with distinct source addresses (127.0.0.2 …) through
 * `localAddress`.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { guardConnections, type ConnectionGuard, type ConnectionLimits, type GuardCloseReason } from '../../../sidecar/net/guard.ts';
import { Gates, untilClosed } from '../../helpers/events.ts';

interface Guarded {
  readonly port: number;
  readonly guard: ConnectionGuard;
  readonly closes: { reason: GuardCloseReason; source: string }[];
  /** Requests to /hold/<key> wait at gate <key> before they are answered. */
  readonly gates: Gates;
}

async function guarded(t: TestContext, limits: ConnectionLimits): Promise<Guarded> {
  const gates = new Gates();
  const closes: { reason: GuardCloseReason; source: string }[] = [];
  const server = http.createServer((req, res) => {
    res.once('close', guard.busy(req.socket));
    const hold = /^\/hold\/(.+)$/.exec(req.url ?? '')?.[1];
    void (hold ? gates.pass(hold) : Promise.resolve()).then(() => res.end('ok'));
  });
  const guard = guardConnections(server, limits, (reason, source) => closes.push({ reason, source }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    gates.openAll();
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, guard, closes, gates };
}

/** A keep-alive connection from `from` that has had one answer to `path` (so the server has taken it), or `closed`. */
function connection(t: TestContext, port: number, from: string, path = '/'): Promise<net.Socket | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: from }, () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
    t.after(() => socket.destroy());
    socket.on('error', () => {});
    socket.once('data', () => resolve(socket));
    socket.on('close', () => resolve('closed'));
  });
}

/** A connection from `from` whose request to `path` is in flight: resolves once the server took it (gate `key` arrived). */
async function busyConnection(t: TestContext, g: Guarded, from: string, key: string): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port: g.port, localAddress: from }, () => socket.write(`GET /hold/${key} HTTP/1.1\r\nHost: x\r\n\r\n`));
  t.after(() => socket.destroy());
  socket.on('error', () => {});
  await g.gates.arrived(key);
  return socket;
}

test('guard: connections past the per-source cap are closed at accept; another address is still served', { timeout: 10_000 }, async (t) => {
  const g = await guarded(t, { perSource: 2, total: 10 });
  for (let i = 0; i < 2; i++) assert.notEqual(await connection(t, g.port, '127.0.0.2'), 'closed');
  assert.equal(await connection(t, g.port, '127.0.0.2'), 'closed');
  assert.notEqual(await connection(t, g.port, '127.0.0.3'), 'closed');
  assert.deepEqual(g.closes, [{ reason: 'per-source-cap', source: '127.0.0.2' }]);
  assert.equal(g.guard.open(), 3);
  assert.equal(g.guard.openFrom('127.0.0.2'), 2);
});

test('guard: at the total cap a lighter address takes the oldest idle connection of the heaviest', { timeout: 10_000 }, async (t) => {
  const g = await guarded(t, { perSource: 4, total: 5 });
  const heavy: net.Socket[] = [];
  for (let i = 0; i < 4; i++) heavy.push((await connection(t, g.port, '127.0.0.2')) as net.Socket);
  assert.notEqual(await connection(t, g.port, '127.0.0.3'), 'closed');
  // Full: 4 + 1. A newcomer from a third address evicts 127.0.0.2's oldest.
  assert.notEqual(await connection(t, g.port, '127.0.0.4'), 'closed');
  await untilClosed(heavy[0]!);
  assert.equal(heavy.filter((s) => !s.destroyed).length, 3);
  assert.deepEqual(g.closes, [{ reason: 'evicted', source: '127.0.0.2' }]);
  // 3 + 1 + 1: the heaviest holds 3, a newcomer from 127.0.0.3 (1) may take one more of its places…
  assert.notEqual(await connection(t, g.port, '127.0.0.3'), 'closed');
  // …but then 2 + 2 + 1: nobody holds two more than 127.0.0.3, so its next newcomer is refused.
  assert.equal(await connection(t, g.port, '127.0.0.3'), 'closed');
  assert.deepEqual(g.closes.map((c) => c.reason), ['evicted', 'evicted', 'total-cap']);
  assert.equal(g.guard.open(), 5);
});

test('guard: a connection with a request in flight is never evicted', { timeout: 10_000 }, async (t) => {
  const g = await guarded(t, { perSource: 3, total: 3 });
  const busy: net.Socket[] = [];
  for (let i = 0; i < 3; i++) busy.push(await busyConnection(t, g, '127.0.0.2', `r${i}`));
  assert.equal(await connection(t, g.port, '127.0.0.3'), 'closed', 'all of the heaviest address are busy: the newcomer is refused');
  assert.deepEqual(g.closes, [{ reason: 'total-cap', source: '127.0.0.3' }]);
  // Once one request is answered, that connection is idle again and can make room.
  g.gates.open('r1');
  await new Promise<void>((r) => busy[1]!.once('data', () => r()));
  assert.notEqual(await connection(t, g.port, '127.0.0.3'), 'closed');
  await untilClosed(busy[1]!);
  assert.ok(!busy[0]!.destroyed && !busy[2]!.destroyed, 'the busy ones stay');
});

test('guard: refuses limits that are not positive integers with total ≥ perSource', () => {
  const server = net.createServer();
  assert.throws(() => guardConnections(server, { perSource: 0, total: 1 }), RangeError);
  assert.throws(() => guardConnections(server, { perSource: 4, total: 2 }), RangeError);
  assert.throws(() => guardConnections(server, { perSource: 1.5, total: 2 }), RangeError);
});
