/**
 * Failover under load: a group of two DoT upstreams serves a steady stream of
 * queries; midway the primary is stopped (connections reset, port closed) or
 * goes silent (accepts queries, never answers). Checks, from the group's
 * own events, that no client query failed, that the backup answered every
 * attempt it got, and that the primary was marked down by its third failure
 * in a row; the slowest answer and the time to mark it down are printed as
 * test diagnostics, not asserted.
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
  /** Attempts at the backup that failed. */
  backupFailures: number;
  /** The primary's failures in a row when it was marked down (-1: never). */
  streakAtDown: number;
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
  const result: Run = { failed: 0, answered: 0, byBackup: 0, backupFailures: 0, streakAtDown: -1, slowestMs: 0, markedDownAfterMs: 0 };
  /** The primary's failures in a row, counted as the group counts them (its own aborts and caps aside). */
  let streak = 0;
  const opts = { bootstrap: { 'dns.test': ['127.0.0.1'] }, ca: [pki.ca] };
  const g = createGroup('default', [fromUrl(primary.url('tls'), opts), fromUrl(backup.url('tls'), opts)], {
    attemptTimeoutMs: 500,
    deadlineMs: 2000,
    failuresBeforeDown: 3,
    probeIntervalMs: 1000,
    observer: {
      onAttempt: (u, _rcode, code) => {
        const failure = code !== null && code !== 'UPSTREAM_ABORTED' && code !== 'OVERLOADED';
        if (u === backup.url('tls')) result.backupFailures += failure ? 1 : 0;
        else streak = failure ? streak + 1 : 0;
      },
      onHealth: (_u, healthy) => {
        if (healthy || downAt) return;
        downAt = performance.now();
        result.streakAtDown = streak;
      },
    },
  });
  t.after(() => g.close());
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
    assert.equal(r.backupFailures, 0);
    assert.equal(r.streakAtDown, 3, 'marked down by its third failure in a row');
  });

  it('failover: a primary gone silent mid-run loses no client query; answers wait at most one attempt', async (t) => {
    const r = await run(t, 'silent');
    t.diagnostic(`silent: ${JSON.stringify(r)}`);
    assert.equal(r.failed, 0);
    // Two members in order: a query waits for at most the primary's one attempt when the backup answers every
    // attempt it gets.
    assert.equal(r.backupFailures, 0, 'every attempt at the backup answered');
    assert.equal(r.streakAtDown, 3, 'marked down by its third failure in a row');
  });
});
