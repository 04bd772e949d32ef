/**
 * Failover under load: a group of two DoT upstreams serves a steady stream of
 * queries; midway the primary is stopped (connections reset, port closed) or
 * goes silent (accepts queries, never answers). Measures how many client
 * queries failed, the slowest answer, and how long until the primary was
 * marked down; the numbers are printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { fromUrl } from '../../../sidecar/upstream/from-url.ts';
import { createGroup } from '../../../sidecar/upstream/group.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { defaultAnswer, startDnsServer } from '../../helpers/dns-server.ts';
import { testPki } from '../../helpers/tls.ts';

const pki = testPki();

interface Run {
  failed: number;
  answered: number;
  byBackup: number;
  slowestMs: number;
  markedDownAfterMs: number;
}

/** 300 queries, one every 5 ms (≈ 1.5 s), the fault injected after 100. */
async function run(t: TestContext, fault: 'stop' | 'silent'): Promise<Run> {
  const primary = await startDnsServer({ tls: pki.good });
  const backup = await startDnsServer({ tls: pki.good });
  t.after(() => Promise.all([primary.close(), backup.close()]));
  let faultAt = 0;
  let downAt = 0;
  const opts = { bootstrap: { 'dns.test': ['127.0.0.1'] }, ca: [pki.ca] };
  const g = createGroup('default', [fromUrl(primary.url('tls'), opts), fromUrl(backup.url('tls'), opts)], {
    attemptTimeoutMs: 500,
    deadlineMs: 2000,
    failuresBeforeDown: 3,
    probeIntervalMs: 1000,
    observer: { onHealth: (_u, healthy) => (healthy ? undefined : (downAt ||= performance.now())) },
  });
  t.after(() => g.close());
  const result: Run = { failed: 0, answered: 0, byBackup: 0, slowestMs: 0, markedDownAfterMs: 0 };
  const inflight: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) {
    if (i === 100) {
      faultAt = performance.now();
      if (fault === 'stop') void primary.stop();
      else primary.setHandler(() => 'drop');
    }
    const started = performance.now();
    inflight.push(
      g.resolve(encodeQuery({ name: `q${i}.example.test`, type: 'A' }), AbortSignal.timeout(4500)).then(
        (r) => {
          result.answered++;
          if (r.upstream === backup.url('tls')) result.byBackup++;
          result.slowestMs = Math.max(result.slowestMs, performance.now() - started);
        },
        () => {
          result.failed++;
        },
      ),
    );
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(inflight);
  result.markedDownAfterMs = downAt ? Math.round(downAt - faultAt) : -1;
  result.slowestMs = Math.round(result.slowestMs);
  backup.setHandler((q) => defaultAnswer(q));
  return result;
}

describe('upstream failover under load', () => {
  it('failover: the primary stopped mid-run loses no client query', async (t) => {
    const r = await run(t, 'stop');
    t.diagnostic(`stop: ${JSON.stringify(r)}`);
    assert.equal(r.failed, 0);
    assert.equal(r.answered, 300);
    assert.ok(r.byBackup >= 195, `backup answered ${r.byBackup}`);
    assert.ok(r.markedDownAfterMs >= 0 && r.markedDownAfterMs < 500, `marked down after ${r.markedDownAfterMs} ms`);
  });

  it('failover: a primary gone silent mid-run loses no client query; answers wait at most one attempt', async (t) => {
    const r = await run(t, 'silent');
    t.diagnostic(`silent: ${JSON.stringify(r)}`);
    assert.equal(r.failed, 0);
    assert.ok(r.slowestMs < 500 + 300, `slowest ${r.slowestMs} ms`);
    assert.ok(r.markedDownAfterMs >= 0 && r.markedDownAfterMs < 1000, `marked down after ${r.markedDownAfterMs} ms`);
  });
});
