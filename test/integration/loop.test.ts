/**
 * Forwarding loops at run time: an upstream that sends the sidecar's own
 * query back to it. The sidecar recognizes its tag, answers SERVFAIL at once
 * with a log line, and the loop does not amplify.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { test } from 'node:test';
import { createLogger } from '../../sidecar/log.ts';
import { extendedError, queryUdp } from '../helpers/dns-client.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';

test('loop: a query that comes back to the sidecar is answered SERVFAIL at once and logged, without amplification', async (t) => {
  // A misconfigured "upstream" that forwards every query it gets to the sidecar, verbatim, and relays the reply.
  const reflector = dgram.createSocket('udp4');
  await new Promise<void>((r) => reflector.bind(0, '127.0.0.1', () => r()));
  t.after(() => reflector.close());
  let sidecarPort = 0;
  let reflected = 0;
  reflector.on('message', (msg, from) => {
    reflected++;
    const out = dgram.createSocket('udp4');
    out.on('message', (reply) => {
      reflector.send(reply, from.port, from.address);
      out.close();
    });
    out.send(msg, sidecarPort, '127.0.0.1');
  });
  const lines: string[] = [];
  const log = createLogger({}, 'info', (line) => lines.push(line));
  const sc = await startTestSidecar(
    { upstream: [`udp://127.0.0.1:${reflector.address().port}`], upstreamAttemptTimeoutMs: 1000, upstreamDeadlineMs: 2000, cacheStaleMaxAge: 0 },
    { log },
  );
  t.after(() => sc.stop());
  sidecarPort = sc.port;

  const reply = await queryUdp(sc.host, sc.port, { name: 'loop.example', type: 'A' }, 3000);
  assert.equal(reply.rcode, 'SERVFAIL');
  // At once: this SERVFAIL is the refusal the sidecar gave its own query when it came back, relayed by the
  // reflector as the upstream's reply, with its Extended DNS Error kept (RFC 8914); a SERVFAIL after the
  // upstream deadline would carry EDE 23 instead.
  assert.deepEqual(extendedError(reply), { code: 0, text: 'forwarding loop: this query came back to the sidecar that sent it' });
  assert.equal(reflected, 1, 'the query went round once, not again and again');
  assert.ok(lines.some((l) => l.includes('forwarding loop')), 'a log line names the loop');
});
