/**
 * Every answer is an outcome: what the listener answers (or drops) without
 * the pipeline — a malformed message, a query over the in-flight cap, a
 * forwarding loop — reaches the metrics and the query log like any answer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import * as packet from 'dns-packet';
import { exchangeUdpRaw, queryUdp } from '../helpers/dns-client.ts';
import { defaultAnswer, startDnsServer } from '../helpers/dns-server.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';

/** A query log sink that keeps the lines. */
function sink() {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    write(chunk: string) {
      for (const l of chunk.split('\n')) if (l) lines.push(JSON.parse(l));
      return true;
    },
    once() {},
  };
}

/** Waits (bounded) until `ok()` holds, yielding to the event loop between tries. */
async function until(ok: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10_000 && !ok(); i++) await new Promise((r) => setImmediate(r));
  assert.ok(ok(), what);
}

test('listener outcomes: a malformed message, an overload drop and a forwarding loop are counted and logged', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const upstream = await startDnsServer({ handler: async (q) => (await held, defaultAnswer(q)) });
  t.after(() => upstream.close());
  const log = sink();
  const sc = await startTestSidecar({ upstream: [upstream.url('udp')], maxInflight: 1, logQueries: 'all', cacheMaxEntries: 0 }, { queryLogSink: log });
  t.after(() => sc.stop());
  const metric = async (name: string) => sc.sidecar.telemetry.registry.getSingleMetricAsString(name);

  // Malformed: two questions.
  const two = packet.encode({ id: 7, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name: 'a.test', type: 'A' }, { name: 'b.test', type: 'A' }] });
  const formerr = packet.decode(await exchangeUdpRaw(sc.host, sc.port, two)) as packet.DecodedPacket & { rcode: string };
  assert.equal(formerr.rcode, 'FORMERR');
  assert.match(await metric('tenant_dns_rejected_requests_total'), /proto="udp",rcode="FORMERR",tenant="default"\} 1/);

  // Overload: one query holds the only in-flight slot; the next UDP query is dropped.
  const first = queryUdp(sc.host, sc.port, { name: 'held.example.org', type: 'A' }, 5000);
  await until(() => upstream.counts.total === 1, 'the first query reached the upstream');
  const client = dgram.createSocket('udp4');
  t.after(() => client.close());
  client.send(packet.encode({ id: 9, type: 'query', flags: packet.RECURSION_DESIRED, questions: [{ name: 'dropped.example.org', type: 'A' }] }), sc.port, sc.host);
  await until(() => log.lines.some((l) => l.reason === 'overload'), 'the drop reaches the query log');
  release();
  assert.equal((await first).rcode, 'NOERROR');
  assert.match(await metric('tenant_dns_responses_total'), /rcode="none",source="listener",tenant="default"\} 1/);

  // A loop: an "upstream" that sends every query back to the sidecar that asked it.
  const reflector = dgram.createSocket('udp4');
  await new Promise<void>((r) => reflector.bind(0, '127.0.0.1', () => r()));
  t.after(() => reflector.close());
  const looping = await startTestSidecar({ upstream: [`udp://127.0.0.1:${reflector.address().port}`], logQueries: 'all', cacheStaleMaxAge: 0 }, { queryLogSink: log });
  t.after(() => looping.stop());
  reflector.on('message', (msg, from) => {
    const out = dgram.createSocket('udp4');
    out.on('message', (reply) => {
      reflector.send(reply, from.port, from.address);
      out.close();
    });
    out.send(msg, looping.port, looping.host);
  });
  const loop = await queryUdp(looping.host, looping.port, { name: 'loop.example', type: 'A' }, 3000);
  assert.equal(loop.rcode, 'SERVFAIL');
  const loopMetrics = await looping.sidecar.telemetry.registry.getSingleMetricAsString('tenant_dns_query_failures_total');
  assert.match(loopMetrics, /code="FORWARDING_LOOP",tenant="default"\} 1/);
  assert.match(await looping.sidecar.telemetry.registry.getSingleMetricAsString('tenant_dns_responses_total'), /rcode="SERVFAIL",source="listener",tenant="default"\} 1/);

  const reasons = log.lines.filter((l) => l.source === 'listener').map((l) => `${l.reason} ${l.rcode}`);
  assert.deepEqual(reasons.sort(), ['FORWARDING_LOOP SERVFAIL', 'malformed FORMERR', 'overload none'].sort());
});
