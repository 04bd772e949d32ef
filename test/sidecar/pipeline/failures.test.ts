/**
 * The one failure path, end to end: a 30-second upstream outage under load
 * (the clock injected, so the 30 s pass in a moment) writes a bounded number
 * of log lines, every client gets SERVFAIL with the group's EDE, and the
 * failures are counted by code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../../sidecar/log.ts';
import { ERROR_LOG_INTERVAL_MS, failurePath } from '../../../sidecar/pipeline/failures.ts';
import { ErrorCodes, SidecarError } from '../../../sidecar/errors.ts';
import { extendedError, queryUdp } from '../../helpers/dns-client.ts';
import { freePort } from '../../helpers/ports.ts';
import { startTestSidecar } from '../../helpers/sidecar.ts';
import { queryContext } from '../policy/helpers.ts';

const OUTAGE_S = 30;
const QUERIES_PER_SECOND = 40;

test('failure path: a 30-second upstream outage under load writes a bounded number of log lines', async (t) => {
  // A closed loopback port: every exchange fails at once (ICMP port unreachable).
  const dead = await freePort();
  let now = 1_000_000;
  const lines: string[] = [];
  const log = createLogger({}, 'info', (line) => lines.push(line));
  const sc = await startTestSidecar(
    { upstream: [`udp://127.0.0.1:${dead}`], cacheMaxEntries: 0, upstreamAttemptTimeoutMs: 500, upstreamDeadlineMs: 1000 },
    { log, clock: () => now },
  );
  t.after(() => sc.stop());
  const before = lines.length;
  let answered = 0;
  for (let second = 0; second < OUTAGE_S; second++) {
    const replies = await Promise.all(
      Array.from({ length: QUERIES_PER_SECOND }, (_, i) => queryUdp(sc.host, sc.port, { name: `q${second}-${i}.example.org`, type: 'A' }, 3000)),
    );
    for (const r of replies) {
      assert.equal(r.rcode, 'SERVFAIL');
      assert.deepEqual(extendedError(r), { code: 23, text: 'no upstream of group default answered' });
    }
    answered += replies.length;
    now += 1000;
  }
  const failureLines = lines.slice(before).map((l) => JSON.parse(l) as { msg: string; code?: string; suppressed?: number });
  const queryFailed = failureLines.filter((l) => l.msg === 'query failed');
  // One line per code per interval: 30 s / 10 s, plus the first.
  assert.ok(queryFailed.length <= OUTAGE_S / (ERROR_LOG_INTERVAL_MS / 1000) + 1, `${queryFailed.length} "query failed" lines for ${answered} failed queries`);
  assert.ok(queryFailed.length >= 1);
  assert.ok(failureLines.length <= 10, `${failureLines.length} log lines in all during the outage`);
  assert.equal(queryFailed.every((l) => l.code === ErrorCodes.UPSTREAM_GROUP_FAILED), true);
  const suppressed = queryFailed.reduce((n, l) => n + (l.suppressed ?? 0), 0);
  assert.ok(suppressed > 0, 'the lines held back are counted');
  const metrics = await sc.sidecar.telemetry.registry.getSingleMetricAsString('tenant_dns_query_failures_total');
  assert.match(metrics, new RegExp(`tenant_dns_query_failures_total\\{code="UPSTREAM_GROUP_FAILED",tenant="default"\\} ${answered}`));
});

test('failure path: each code has its own interval; a line names the code, the stage and the error', () => {
  const lines: Record<string, unknown>[] = [];
  let now = 0;
  const counted: string[] = [];
  const path = failurePath({ log: (level, msg, fields) => lines.push({ level, msg, ...fields }), now: () => now, count: (c) => counted.push(c) });
  const ctx = queryContext('example.org');
  const upstream = new SidecarError(ErrorCodes.UPSTREAM_GROUP_FAILED, 'resolving through group default: every upstream failed');
  for (let i = 0; i < 5; i++) path.fail(upstream, ctx, 'forward');
  path.fail(new Error('a bug'), ctx, 'split');
  now += ERROR_LOG_INTERVAL_MS;
  const out = path.fail(upstream, ctx, 'forward');
  assert.equal(out.rcode, 2);
  assert.equal(out.reason, ErrorCodes.UPSTREAM_GROUP_FAILED);
  assert.equal(counted.length, 7);
  assert.deepEqual(
    lines.map((l) => [l.level, l.code, l.stage, l.suppressed]),
    [
      ['warn', 'UPSTREAM_GROUP_FAILED', 'forward', undefined],
      ['error', 'INTERNAL', 'split', undefined],
      ['warn', 'UPSTREAM_GROUP_FAILED', 'forward', 4],
    ],
  );
  assert.match(String(lines[1]!.error), /a bug/);
});
