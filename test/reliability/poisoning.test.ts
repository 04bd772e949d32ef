/**
 * Anti-spoofing and poisoning (issue 6 item 2), through a running sidecar
 * with a plain UDP upstream:
 * - upstream queries leave from a pool of random source ports, each port
 *   carrying a bounded number of queries, with a random ID each (RFC 5452
 *   §9.2, §10; sidecar/upstream/README.md, "UDP source ports");
 * - only a reply whose source, ID and question match is accepted: spoofed
 *   replies sent before the real one (from another port, with a wrong ID,
 *   with a wrong question) never reach the client or the cache, and each
 *   is counted in tenant_dns_upstream_replies_dropped_total;
 * - records for names outside the question (an extra additional or answer
 *   record for victim.example) are never cached for those names: a later
 *   query for victim.example goes to the upstream.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { test } from 'node:test';
import { queryUdp } from '../helpers/dns-client.ts';
import { defaultAnswer, startDnsServer } from '../helpers/dns-server.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { UDP_POOL_DEFAULTS } from '../../sidecar/upstream/udp.ts';
import { addressesOf, echoAnswer, rawQuery, startRawUpstream, udpAsk } from './lib.ts';

/** Pairs of neighbours in `xs` that differ by exactly one (a counter, not randomness). */
function sequentialPairs(xs: readonly number[]): number {
  let n = 0;
  for (let i = 1; i < xs.length; i++) if (Math.abs(xs[i]! - xs[i - 1]!) === 1) n++;
  return n;
}

test('upstream UDP legs: 1,000 queries leave from many unpredictable source ports, none carrying more than its bounded share, with random IDs', async (t) => {
  const upstream = await startRawUpstream();
  const sc = await startTestSidecar({ upstream: [`udp://127.0.0.1:${upstream.port}`] });
  t.after(async () => {
    await sc.stop();
    await upstream.close();
  });
  const total = 1000;
  for (let i = 0; i < total; i++) {
    // The client always uses ID 1: the upstream ID must not follow the client's.
    const r = await udpAsk(sc.port, rawQuery(`n${i}.ports.example`, 1, 1, 1232), 2000);
    assert.ok(r && addressesOf(r)[0] === '192.0.2.1');
  }
  const legs = upstream.received.filter((q) => q.proto === 'udp');
  const ports = legs.map((q) => q.port);
  const ids = legs.map((q) => q.wire.readUInt16BE(0));
  const perPort = new Map<number, number>();
  for (const p of ports) perPort.set(p, (perPort.get(p) ?? 0) + 1);
  const firstUse = [...perPort.keys()];
  const spread = Math.max(...firstUse) - Math.min(...firstUse);
  const { socketQueries } = UDP_POOL_DEFAULTS;
  t.diagnostic(
    `${legs.length} upstream queries: ${perPort.size} distinct source ports spread over ${spread}, at most ${Math.max(...perPort.values())} queries on one, ` +
      `${new Set(ids).size} distinct IDs, sequential pairs ports ${sequentialPairs(firstUse)} IDs ${sequentialPairs(ids)}`,
  );
  assert.equal(legs.length, total);
  // A socket carries at most socketQueries (32) queries: 1,000 queries need 32 sockets at least, each on a port
  // the kernel drew from its ephemeral range (a port drawn twice merges two sockets' counts, hence the margin).
  assert.ok(perPort.size >= Math.floor(total / socketQueries) - 6, `many source ports: ${perPort.size}`);
  assert.ok(Math.max(...perPort.values()) <= 2 * socketQueries, 'no port carries more than its bounded share');
  // Unpredictable: the ports in the order they were first used do not count up, and they spread over the
  // ephemeral range (32768–60999 by default) rather than a window an attacker could sweep.
  assert.ok(sequentialPairs(firstUse) <= 2, 'the ports do not count up');
  assert.ok(spread >= 8192, `ports spread over ${spread}`);
  // 1,000 draws of 16 bits: about 8 repeats expected by chance.
  assert.ok(new Set(ids).size >= total - 30, 'random IDs');
  assert.ok(sequentialPairs(ids) <= 3, 'the IDs do not count up');
  assert.ok(ids.filter((id) => id === 1).length <= 3, 'the client ID is not reused upstream');
});

test('--upstream-udp-socket-queries 1: every upstream query leaves from a fresh socket', async (t) => {
  const upstream = await startRawUpstream();
  const sc = await startTestSidecar({ upstream: [`udp://127.0.0.1:${upstream.port}`], upstreamUdpSocketQueries: 1 });
  t.after(async () => {
    await sc.stop();
    await upstream.close();
  });
  for (let i = 0; i < 50; i++) {
    const r = await udpAsk(sc.port, rawQuery(`f${i}.ports.example`, 1, 1, 1232), 2000);
    assert.ok(r && addressesOf(r)[0] === '192.0.2.1');
  }
  const ports = upstream.received.filter((q) => q.proto === 'udp').map((q) => q.port);
  assert.equal(ports.length, 50);
  // A port the kernel hands out again later is possible, rarely.
  assert.ok(new Set(ports).size >= 48, `distinct source ports: ${new Set(ports).size}`);
});

test('spoofed replies before the real one (other port, wrong ID, wrong question) are ignored: the client and the cache get the real answer', async (t) => {
  const spoofer = dgram.createSocket('udp4');
  await new Promise<void>((r) => spoofer.bind(0, '127.0.0.1', () => r()));
  const poisoned = (wire: Buffer, id: number, name?: string) => {
    const a = echoAnswer(name ? rawQuery(name, 1, id) : wire, [6, 6, 6, 6], 3600)!;
    a.writeUInt16BE(id, 0);
    return a;
  };
  const upstream = await startRawUpstream((q) => {
    const id = q.wire.readUInt16BE(0);
    // Spoofs first: the right ID and question from another port; wrong IDs from the right port; the wrong question.
    spoofer.send(poisoned(q.wire, id), q.port, '127.0.0.1');
    for (const delta of [1, -1, 256, 0x8000]) upstream.sendFrom(poisoned(q.wire, (id + delta) & 0xffff), q.port);
    upstream.sendFrom(poisoned(q.wire, id, 'other.spoof.example'), q.port);
    // Then the real answer, a little later.
    return { delayMs: 50, replies: [echoAnswer(q.wire)!] };
  });
  const sc = await startTestSidecar({ upstream: [`udp://127.0.0.1:${upstream.port}`] });
  t.after(async () => {
    await sc.stop();
    await upstream.close();
    spoofer.close();
  });
  for (let i = 0; i < 20; i++) {
    const name = `t${i}.spoof.example`;
    const first = await udpAsk(sc.port, rawQuery(name, 1, 100 + i, 1232), 2000);
    assert.ok(first, `${name}: answered`);
    assert.deepEqual(addressesOf(first), ['192.0.2.1'], `${name}: the real answer, not the spoof`);
    const cached = await udpAsk(sc.port, rawQuery(name, 1, 200 + i, 1232), 2000);
    assert.deepEqual(addressesOf(cached!), ['192.0.2.1'], `${name}: the cache holds the real answer`);
  }
  // Each query drew five spoofs on its own port (wrong IDs, wrong question); the one from another port the
  // connected socket's kernel filter dropped before the sidecar saw it.
  const scrape = await (await fetch(`http://127.0.0.1:${sc.sidecar.telemetry.metricsAddress!.port}/metrics`)).text();
  const dropped = scrape.split('\n').find((l) => l.startsWith('tenant_dns_upstream_replies_dropped_total{') && l.includes(`upstream="udp://127.0.0.1:${upstream.port}"`));
  assert.ok(dropped, 'the dropped-replies series of the upstream');
  assert.equal(Number(dropped.split(' ').pop()), 20 * 5, dropped);
  // An honest upstream now: a spoof that matches source, ID and question would be indistinguishable.
  upstream.setHandler((q) => [echoAnswer(q.wire)!]);
  const other = await udpAsk(sc.port, rawQuery('other.spoof.example', 1, 7, 1232), 2000);
  assert.deepEqual(addressesOf(other!), ['192.0.2.1'], 'the wrong-question spoof was not cached for its own name');
});

test('records for names outside the question are not cached for those names: victim.example still goes upstream', async (t) => {
  let victimQueries = 0;
  const upstream = await startDnsServer({
    handler: (q) => {
      const name = q.questions?.[0]?.name.toLowerCase() ?? '';
      if (name.startsWith('victim')) {
        victimQueries++;
        return defaultAnswer(q);
      }
      const reply = defaultAnswer(q);
      // An extra answer and an extra additional record for names the client did not ask about.
      reply.answers = [...(reply.answers ?? []), { name: 'victim2.example', type: 'A', class: 'IN', ttl: 3600, data: '6.6.6.6' }];
      reply.additionals = [{ name: 'victim.example', type: 'A', class: 'IN', ttl: 3600, data: '6.6.6.6' }];
      reply.authorities = [{ name: 'example', type: 'NS', class: 'IN', ttl: 3600, data: 'ns.attacker.example' }];
      return reply;
    },
  });
  const sc = await startTestSidecar({ upstream: [upstream.url('udp')] });
  t.after(async () => {
    await sc.stop();
    await upstream.close();
  });
  const bait = await queryUdp(sc.host, sc.port, { name: 'www.attacker.example', type: 'A' });
  assert.equal(bait.rcode, 'NOERROR');
  for (const victim of ['victim.example', 'victim2.example']) {
    const before = victimQueries;
    const r = await queryUdp(sc.host, sc.port, { name: victim, type: 'A' });
    assert.deepEqual(r.answers.map((a) => a.data), ['192.0.2.1'], `${victim}: the upstream's answer, not the injected record`);
    assert.equal(victimQueries, before + 1, `${victim}: went to the upstream`);
  }
  // Asked again: now its own (genuine) answer is cached.
  await queryUdp(sc.host, sc.port, { name: 'victim.example', type: 'A' });
  assert.equal(victimQueries, 2, 'the genuine answer for victim.example is cached');
});
