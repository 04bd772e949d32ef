/**
 * listenOn (sidecar/listener/address.ts): the TCP listener and the HTTP
 * servers bind through net.BoundSocket. What a user sees stays as it was: a
 * taken port is a LISTEN_FAILED error naming the address, an IPv6 DNS
 * listener takes no IPv4 connections, an HTTP server on [::] takes both.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { ErrorCodes, SidecarError } from '../../../sidecar/errors.ts';
import { listenOn } from '../../../sidecar/listener/address.ts';
import { InflightGate, type HandlerDeps } from '../../../sidecar/listener/handle.ts';
import { listenTcp } from '../../../sidecar/listener/tcp.ts';
import { silentLogger } from '../../../sidecar/log.ts';
import { readiness, startMetricsServer } from '../../../sidecar/metrics/http.ts';
import { servfail } from '../../../sidecar/pipeline/compose.ts';
import { internalRoute } from '../../../sidecar/route/classify.ts';

const limits = { idleTimeoutMs: 5000, maxConnections: 8, maxPipelined: 8 };

function deps(t: TestContext): HandlerDeps {
  const ac = new AbortController();
  t.after(() => ac.abort());
  return {
    chain: (ctx) => servfail(ctx, new Error('not asked')),
    router: { route: () => internalRoute('default') },
    gate: new InflightGate(16),
    signal: ac.signal,
    fail: (err, ctx) => servfail(ctx, err),
  };
}

/** A TCP port on `host` held by another server for the test's duration. */
async function takenPort(t: TestContext, host: string): Promise<number> {
  const other = net.createServer();
  await new Promise<void>((r) => other.listen(0, host, r));
  t.after(() => new Promise<void>((r) => other.close(() => r())));
  return (other.address() as net.AddressInfo).port;
}

/** Whether a TCP connection to host:port is accepted. */
function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

test('listenOn: the DNS TCP listener on a taken port fails with LISTEN_FAILED naming the address', async (t) => {
  const port = await takenPort(t, '127.0.0.1');
  await assert.rejects(listenTcp({ host: '127.0.0.1', port, family: 4 }, deps(t), limits, silentLogger), (err: unknown) => {
    assert.ok(err instanceof SidecarError);
    assert.equal(err.code, ErrorCodes.LISTEN_FAILED);
    assert.match(err.message, new RegExp(`binding TCP 127\\.0\\.0\\.1:${port}`));
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
    return true;
  });
});

test('listenOn: the metrics server on a taken port fails with LISTEN_FAILED naming the address', async (t) => {
  const port = await takenPort(t, '127.0.0.1');
  await assert.rejects(startMetricsServer({ address: `127.0.0.1:${port}`, registry: new Registry(), probes: { ready: () => readiness(true, new Map()) }, log: silentLogger }), (err: unknown) => {
    assert.ok(err instanceof SidecarError);
    assert.equal(err.code, ErrorCodes.LISTEN_FAILED);
    assert.match(err.message, new RegExp(`binding the metrics server to 127\\.0\\.0\\.1:${port}`));
    assert.equal((err.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
    return true;
  });
});

test('listenOn: ipv6Only decides whether an IPv6 wildcard takes IPv4 connections too', async (t) => {
  const only = net.createServer((s) => s.destroy());
  const dual = net.createServer((s) => s.destroy());
  t.after(() => {
    only.close();
    dual.close();
  });
  await listenOn(only, { host: '::', port: 0, family: 6 }, { backlog: 16, ipv6Only: true });
  await listenOn(dual, { host: '::', port: 0, family: 6 }, { backlog: 16, ipv6Only: false });
  const onlyPort = (only.address() as net.AddressInfo).port;
  const dualPort = (dual.address() as net.AddressInfo).port;
  assert.equal(await connects('::1', onlyPort), true);
  assert.equal(await connects('127.0.0.1', onlyPort), false, 'IPv6 only');
  assert.equal(await connects('::1', dualPort), true);
  assert.equal(await connects('127.0.0.1', dualPort), true, 'dual-stack');
});

test('listenOn: the server listens on the address asked for, port 0 picking a free one', async (t) => {
  const server = net.createServer((s) => s.destroy());
  t.after(() => server.close());
  await listenOn(server, { host: '127.0.0.2', port: 0, family: 4 }, { backlog: 16, ipv6Only: false });
  const at = server.address() as net.AddressInfo;
  assert.equal(at.address, '127.0.0.2');
  assert.ok(at.port > 0);
  assert.equal(await connects('127.0.0.2', at.port), true);
  assert.equal(await connects('127.0.0.1', at.port), false, 'bound to 127.0.0.2 only');
});
