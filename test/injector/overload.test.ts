/**
 * The injector's HTTPS server against a hostile client (issue 18 item 1),
 * over real sockets on loopback: 127.0.0.2 plays the attacker and 127.0.0.3
 * the API server (distinct source addresses through `localAddress`). Each
 * test is an attack that succeeded before the server's limits existed: one
 * address's connections starving everyone (per-source cap), connections that
 * never say hello or never finish their headers (handshake and header
 * deadlines), and reviews piling up without bound (the admission bound).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import type { Registry } from 'prom-client';
import type { AdmissionGateLimits } from '../../injector/admission-gate.ts';
import type { TenantResolver } from '../../injector/namespaces.ts';
import { Gates, until, untilClosed } from '../helpers/events.ts';
import type { TestPki } from '../helpers/k8s-certs.ts';
import { admissionRequest, postJson, samplePod, startTestInjector, type TestInjector } from './fixtures.ts';

const SERVICE = 'tenant-dns-injector.tenant-dns-system.svc';
const ATTACKER = '127.0.0.2';
const API_SERVER = '127.0.0.3';

/** A TLS connection from `from`: the socket once its handshake is done, or `closed` when the server closes it first. */
function tlsFrom(t: TestContext, pki: TestPki, port: number, from: string): Promise<TLSSocket | 'closed'> {
  return new Promise((resolve) => {
    const tcp = net.connect({ host: '127.0.0.1', port, localAddress: from });
    const socket = connect({ socket: tcp, ca: pki.ca, servername: SERVICE }, () => resolve(socket));
    t.after(() => (socket.destroy(), tcp.destroy()));
    socket.on('error', () => {});
    socket.on('close', () => resolve('closed'));
  });
}

/** The value of one series of `name` (`labels` as in the exposition, e.g. `reason="evicted"`); undefined when absent. */
async function metricValue(registry: Registry, name: string, labels = ''): Promise<number | undefined> {
  const text = await registry.getSingleMetricAsString(name);
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

const closedFor = (registry: Registry, reason: string) => metricValue(registry, 'tenant_dns_injector_connections_closed_total', `reason="${reason}"`);

/** A review of a pod in namespace `ns` to /mutate from `from`. */
const review = (s: TestInjector, from: string, ns = 'team-a') => postJson(s.pki.ca, s.port, '/mutate', admissionRequest(samplePod(), { namespace: ns }), from);

/**
 * An injector whose tenant lookup of each review waits at the gate named
 * after the review's namespace, so a review holds its admission slot until the
 * test opens that gate.
 */
async function gatedInjector(t: TestContext, admissions: AdmissionGateLimits): Promise<{ s: TestInjector; gates: Gates; waiting: (n: number) => Promise<void> }> {
  const gates = new Gates();
  t.after(() => gates.openAll());
  const tenants: TenantResolver = {
    resolve: async (namespace) => (await gates.pass(namespace), { tenant: namespace, source: 'namespace' }),
    close: () => {},
  };
  const s = await startTestInjector(t, { tenants, config: { clusterDns: '10.96.0.10:53', namespaceLookupTimeoutMs: 10_000 }, server: { admissions } });
  const waiting = (n: number) => until(async () => (await metricValue(s.registry, 'tenant_dns_injector_admissions_waiting')) === n, `${n} admissions wait`);
  return { s, gates, waiting };
}

test('injector overload: connections past the per-source cap are closed at accept, while another address is served', { timeout: 10_000 }, async (t) => {
  const s = await startTestInjector(t, { server: { connections: { perSource: 3, total: 100 } } });
  const held: TLSSocket[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await tlsFrom(t, s.pki, s.port, ATTACKER);
    assert.notEqual(c, 'closed', `connection ${i + 1} of 3 is accepted`);
    held.push(c as TLSSocket);
  }
  assert.equal(await tlsFrom(t, s.pki, s.port, ATTACKER), 'closed', 'the fourth from the same address is closed before its handshake');
  const res = await review(s, API_SERVER);
  assert.equal(res.status, 200, 'another address is still served');
  assert.equal(JSON.parse(res.body).response.allowed, true);
  assert.equal(await closedFor(s.registry, 'per-source-cap'), 1);
  // A closed connection gives its place back (once the server has seen the close).
  const gone = untilClosed(held[0]!);
  held[0]!.destroy();
  await gone;
  let again: TLSSocket | 'closed' = 'closed';
  for (let i = 0; i < 50 && again === 'closed'; i++) again = await tlsFrom(t, s.pki, s.port, ATTACKER);
  assert.notEqual(again, 'closed');
});

test('injector overload: at the total cap, a newcomer from a lighter address takes an idle connection of the heaviest', { timeout: 10_000 }, async (t) => {
  const s = await startTestInjector(t, { server: { connections: { perSource: 4, total: 4 } } });
  const held: TLSSocket[] = [];
  for (let i = 0; i < 4; i++) held.push((await tlsFrom(t, s.pki, s.port, ATTACKER)) as TLSSocket);
  const firstClosed = untilClosed(held[0]!);
  assert.equal((await review(s, API_SERVER)).status, 200);
  await firstClosed; // the attacker's oldest connection made room
  assert.equal(await closedFor(s.registry, 'evicted'), 1);
  assert.equal(held.filter((c) => !c.destroyed).length, 3);
});

test('injector overload: a TCP connection that never sends a ClientHello is closed by the handshake timeout', { timeout: 5_000 }, async (t) => {
  const s = await startTestInjector(t, { server: { handshakeTimeoutMs: 200 } });
  const socket = net.connect({ host: '127.0.0.1', port: s.port, localAddress: ATTACKER });
  t.after(() => socket.destroy());
  assert.equal(await untilClosed(socket), '', 'closed without a byte sent');
  assert.equal(await closedFor(s.registry, 'handshake-timeout'), 1);
});

test('injector overload: headers that do not arrive in time end the connection with 408', { timeout: 5_000 }, async (t) => {
  const s = await startTestInjector(t, { server: { headersTimeoutMs: 300 } });
  const silent = await tlsFrom(t, s.pki, s.port, ATTACKER);
  const dribble = await tlsFrom(t, s.pki, s.port, ATTACKER);
  assert.ok(silent !== 'closed' && dribble !== 'closed');
  dribble.write('POST /mutate HTTP/1.1\r\nHost: injector\r\nContent-Type: application/json\r\n');
  const [fromSilent, fromDribble] = await Promise.all([untilClosed(silent), untilClosed(dribble)]);
  assert.match(fromDribble, /^HTTP\/1\.1 408 /);
  assert.match(fromSilent, /^HTTP\/1\.1 408 /, 'a connection that sends nothing after the handshake is closed too');
  assert.equal(await closedFor(s.registry, 'request-timeout'), 2);
});

test('injector overload: admissions in progress are bounded; past the waiting bound an address gets 429; waiting addresses take turns', { timeout: 10_000 }, async (t) => {
  const { s, gates, waiting } = await gatedInjector(t, { smallBodyBytes: 64 * 1024, small: 1, large: 1, largeRestMaxMs: 1_000, maxWaiting: 3, maxWaitingPerSource: 2 });
  const done: string[] = [];
  const tracked = (from: string, ns: string) => review(s, from, ns).then((r) => (done.push(ns), r));
  for (const ns of ['b', 'c', 'e']) gates.open(ns);

  const a = tracked(ATTACKER, 'a');
  await gates.arrived('a'); // a holds the only slot
  const b = tracked(ATTACKER, 'b');
  await waiting(1);
  const c = tracked(ATTACKER, 'c');
  await waiting(2);
  const d = await review(s, ATTACKER, 'd');
  assert.equal(d.status, 429, 'a third waiting review from one address is refused at once');
  assert.equal(d.headers['retry-after'], '1');
  const e = tracked(API_SERVER, 'e');
  await waiting(3);
  gates.open('a');
  for (const r of await Promise.all([a, b, c, e])) assert.equal(r.status, 200);
  assert.deepEqual(done, ['a', 'b', 'e', 'c'], 'after b, the other address is served before the attacker again');
  assert.equal(await metricValue(s.registry, 'tenant_dns_injector_admissions_total', 'webhook="mutate",result="error",reason="OVERLOADED"'), 1);
  assert.equal(await metricValue(s.registry, 'tenant_dns_injector_admissions_waiting'), 0);
});

test('injector overload: a large review waits for the one large slot while small reviews pass beside it', { timeout: 10_000 }, async (t) => {
  const { s, gates, waiting } = await gatedInjector(t, { smallBodyBytes: 16 * 1024, small: 4, large: 1, largeRestMaxMs: 1_000, maxWaiting: 8, maxWaitingPerSource: 8 });
  const large = (ns: string) => {
    const pod = samplePod();
    pod.metadata.annotations = { filler: 'x'.repeat(64 * 1024) };
    return postJson(s.pki.ca, s.port, '/mutate', admissionRequest(pod, { namespace: ns }), ATTACKER);
  };
  gates.open('small');
  const first = large('big-1');
  await gates.arrived('big-1');
  const second = large('big-2');
  await waiting(1);
  assert.equal((await review(s, API_SERVER, 'small')).status, 200, 'answered while a large review holds its slot and another waits');
  gates.open('big-1');
  gates.open('big-2');
  assert.equal((await first).status, 200);
  assert.equal((await second).status, 200);
});
