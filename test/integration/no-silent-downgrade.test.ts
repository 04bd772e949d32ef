/**
 * No silent downgrade: a group that mixes a DoT upstream with a plain one
 * would answer through the plain one whenever TLS verification fails, and
 * nobody would know. Such a group is refused unless --allow-plain-fallback;
 * a failed verification is logged at most once a minute per upstream.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { createLogger } from '../../sidecar/log.ts';
import { extendedError, queryUdp } from '../helpers/dns-client.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { testPki } from '../helpers/tls.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';

const pki = testPki();

/** A server answering A 198.51.100.<last> for every name. */
async function answering(last: number, tls?: { key: Buffer; cert: Buffer }) {
  return startDnsServer({
    ...(tls ? { tls } : {}),
    handler: (q) => ({
      id: q.id,
      type: 'response',
      flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE,
      questions: q.questions,
      answers: [{ name: q.questions![0]!.name, type: 'A', class: 'IN', ttl: 60, data: `198.51.100.${last}` }],
    }),
  });
}

test('no silent downgrade: a DoT upstream failing verification beside a plain one', async (t) => {
  // The DoT server presents a certificate for another name: verification fails every time.
  const dot = await answering(1, pki.wrongName);
  const plain = await answering(2);
  t.after(() => Promise.all([dot.close(), plain.close()]));
  const flags = { upstream: [dot.url('tls'), plain.url('udp')], bootstrap: ['dns.test=127.0.0.1'], upstreamCa: [pki.caFile], cacheMaxEntries: 0 };

  // Without the defence (the flag that allows the mix): the query is answered in plain text by the second upstream.
  const lines: string[] = [];
  const allowed = await startTestSidecar({ ...flags, allowPlainFallback: true }, { log: createLogger({}, 'info', (l) => lines.push(l)) });
  t.after(() => allowed.stop());
  for (let i = 0; i < 5; i++) {
    const r = await queryUdp(allowed.host, allowed.port, { name: `q${i}.example.org`, type: 'A' });
    assert.equal(r.answers[0]?.data, '198.51.100.2', 'answered by the plain upstream');
  }
  const failures = await allowed.sidecar.telemetry.registry.getSingleMetricAsString('tenant_dns_upstream_failures_total');
  const counted = Number(/code="UPSTREAM_TLS"[^}]*\} (\d+)/.exec(failures)?.[1] ?? 0);
  assert.ok(counted >= 2, `each failed verification is counted (${counted}; the member is marked down after 3)`);
  const tlsLines = lines.filter((l) => l.includes('failed TLS verification'));
  assert.equal(tlsLines.length, 1, `${counted} failures within a minute: one log line`);
  assert.match(tlsLines[0]!, new RegExp(dot.url('tls').replace(/[.:/]/g, '.')));

  // With the defence: the mixed group is refused at start, naming the flag.
  await assert.rejects(startTestSidecar(flags), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'CONFIG_INVALID');
    assert.match(err.message, /mixes encrypted .* and plain .* --allow-plain-fallback/);
    return true;
  });
});

test('no silent downgrade: a forward zone mixing DoT and plain upstreams answers SERVFAIL naming the zone, never the plain upstream', async (t) => {
  const plain = await answering(2);
  const fallback = await answering(3);
  t.after(() => Promise.all([plain.close(), fallback.close()]));
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'downgrade-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: {name: t}\nspec:\n  forwardZones:\n    - {name: corp, zones: [corp.example], upstreams: ["tls://127.0.0.1:1#tls-name=dns.test", "${plain.url('udp')}"]}\n`,
  );
  const sc = await startTestSidecar({ upstream: [fallback.url('udp')], policy, cacheMaxEntries: 0 });
  t.after(() => sc.stop());
  const r = await queryUdp(sc.host, sc.port, { name: 'git.corp.example', type: 'A' });
  assert.equal(r.rcode, 'SERVFAIL');
  assert.match(extendedError(r)?.text ?? '', /forward zone corp is unusable: .*--allow-plain-fallback/);
  assert.equal(plain.counts.total + fallback.counts.total, 0, 'neither the plain member nor the default group was asked');
});
