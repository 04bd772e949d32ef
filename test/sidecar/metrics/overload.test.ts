/**
 * The sidecar's metrics and probe server against a hostile client (issue 18
 * item 2), over real sockets on loopback: 127.0.0.2 plays a pod that floods
 * the port, 127.0.0.3 Prometheus or the kubelet. Each test is an attack that
 * succeeded before the server had limits.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { Registry } from 'prom-client';
import { silentLogger } from '../../../sidecar/log.ts';
import { METRICS_LIMITS, readiness, startMetricsServer, type HttpLimits } from '../../../sidecar/metrics/http.ts';
import { ExpositionRenderer } from '../../../sidecar/metrics/exposition.ts';
import { until, untilClosed } from '../../helpers/events.ts';
import { heldRegistry } from './fixtures.ts';

const FLOODER = '127.0.0.2';
const SCRAPER = '127.0.0.3';

async function metricsServer(t: TestContext, opts: { limits?: Partial<HttpLimits>; renderer?: ExpositionRenderer; registry?: Registry } = {}): Promise<number> {
  const server = await startMetricsServer({
    address: '127.0.0.1:0',
    registry: opts.registry ?? new Registry(),
    probes: { ready: () => readiness(true, new Map()) },
    log: silentLogger,
    limits: { ...METRICS_LIMITS, ...opts.limits },
    ...(opts.renderer ? { renderer: opts.renderer } : {}),
  });
  t.after(() => server.close());
  return server.address.port;
}

/** A keep-alive connection from `from` that has had its answer to GET /healthz, or `closed` when the server closes it first. */
function probed(t: TestContext, port: number, from: string): Promise<net.Socket | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: from }, () => socket.write('GET /healthz HTTP/1.1\r\nHost: pod\r\n\r\n'));
    t.after(() => socket.destroy());
    socket.on('error', () => {});
    socket.once('data', () => resolve(socket));
    socket.on('close', () => resolve('closed'));
  });
}

/** GET `path` from `from` on a connection of its own. */
function get(port: number, from: string, path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, localAddress: from, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

test('metrics server overload: connections past the per-source cap are closed at accept, while another address is served', { timeout: 10_000 }, async (t) => {
  const port = await metricsServer(t, { limits: { connections: { perSource: 2, total: 16 } } });
  for (let i = 0; i < 2; i++) assert.notEqual(await probed(t, port, FLOODER), 'closed');
  assert.equal(await probed(t, port, FLOODER), 'closed', 'the third connection from one address gets no answer');
  const res = await get(port, SCRAPER, '/metrics');
  assert.equal(res.status, 200, 'another address still scrapes');
});

test('metrics server overload: headers that do not arrive in time end the connection with 408', { timeout: 5_000 }, async (t) => {
  const port = await metricsServer(t, { limits: { headersTimeoutMs: 300 } });
  const silent = net.connect({ host: '127.0.0.1', port, localAddress: FLOODER });
  const dribble = net.connect({ host: '127.0.0.1', port, localAddress: FLOODER }, () => dribble.write('GET /metrics HTTP/1.1\r\nHost: pod\r\n'));
  t.after(() => (silent.destroy(), dribble.destroy()));
  const [fromSilent, fromDribble] = await Promise.all([untilClosed(silent), untilClosed(dribble)]);
  assert.match(fromDribble, /^HTTP\/1\.1 408 /);
  assert.match(fromSilent, /^HTTP\/1\.1 408 /, 'a connection that never sends a byte is closed too');
});

test('metrics server overload: scrapes waiting together share one rendering; past the bound one gets 503 at once', { timeout: 10_000 }, async (t) => {
  const { registry, gates, renderings } = heldRegistry(t);
  const renderer = new ExpositionRenderer(registry, { minIntervalMs: 0, sliceMs: 1, maxWaiting: 3 });
  const port = await metricsServer(t, { registry, renderer });
  const first = get(port, SCRAPER, '/metrics');
  await gates.arrived('collect-1');
  const waiting = [get(port, SCRAPER, '/metrics'), get(port, FLOODER, '/metrics')];
  await until(() => renderer.waiting === 3, 'three scrapes wait');
  const turnedAway = await get(port, FLOODER, '/metrics');
  assert.equal(turnedAway.status, 503, 'a fourth is turned away without waiting');
  assert.equal(turnedAway.headers['retry-after'], '1');
  gates.open('collect-1');
  gates.open('collect-2');
  assert.match((await first).body, /^held_renderings 1$/m);
  for (const r of await Promise.all(waiting)) assert.match(r.body, /^held_renderings 2$/m, 'both waiting scrapes got the one rendering that followed');
  assert.equal(renderings(), 2);
});
