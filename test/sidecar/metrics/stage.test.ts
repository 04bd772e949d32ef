import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RCode } from '../../../sidecar/dns/constants.ts';
import { QueryLog } from '../../../sidecar/metrics/querylog.ts';
import { createMetricsStage } from '../../../sidecar/metrics/stage.ts';
import { qtypeLabel, rcodeLabel } from '../../../sidecar/metrics/registry.ts';
import { dropOutcome } from '../../../sidecar/pipeline/stage.ts';
import { ctxFor, freshMetrics, nextWith, outcome, sample } from './fixtures.ts';

test('metrics stage: counts requests by proto and qtype, answers by rcode and source, decisions by action and rule', async () => {
  const m = freshMetrics();
  const stage = createMetricsStage(m);
  await stage.handle(ctxFor('www.example.com', 'A'), nextWith(outcome('upstream', RCode.NOERROR), { action: 'allow', rule: 'default', log: false }));
  await stage.handle(ctxFor('www.example.com', 'A'), nextWith(outcome('cache', RCode.NOERROR), { action: 'allow', rule: 'default', log: false }));
  await stage.handle(ctxFor('ads.example.com', 'AAAA', 'tcp'), nextWith(outcome('policy', RCode.NXDOMAIN, 'no-ads'), { action: 'deny', rule: 'no-ads', log: true }));
  await stage.handle(ctxFor('x.example.com', 'CAA'), nextWith(outcome('upstream', RCode.SERVFAIL)));
  await stage.handle(ctxFor('y.example.com', 'A'), nextWith(dropOutcome('local', 'overloaded')));
  const r = m.registry;
  assert.equal(await sample(r, 'tenant_dns_requests_total', { proto: 'udp', qtype: 'A', tenant: 'team-a' }), 3);
  assert.equal(await sample(r, 'tenant_dns_requests_total', { proto: 'tcp', qtype: 'AAAA' }), 1);
  assert.equal(await sample(r, 'tenant_dns_requests_total', { proto: 'udp', qtype: 'other' }), 1);
  assert.equal(await sample(r, 'tenant_dns_responses_total', { rcode: 'NOERROR', source: 'upstream' }), 1);
  assert.equal(await sample(r, 'tenant_dns_responses_total', { rcode: 'NOERROR', source: 'cache' }), 1);
  assert.equal(await sample(r, 'tenant_dns_responses_total', { rcode: 'NXDOMAIN', source: 'policy' }), 1);
  assert.equal(await sample(r, 'tenant_dns_responses_total', { rcode: 'SERVFAIL', source: 'upstream' }), 1);
  assert.equal(await sample(r, 'tenant_dns_responses_total', { rcode: 'none', source: 'local' }), 1);
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'allow', rule: 'default' }), 2);
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'deny', rule: 'no-ads' }), 1);
  assert.equal(await sample(r, 'tenant_dns_request_duration_seconds_count', { source: 'upstream' }), 2);
  assert.equal(await sample(r, 'tenant_dns_request_duration_seconds_count', { source: 'cache' }), 1);
  assert.equal(await sample(r, 'tenant_dns_request_duration_seconds_bucket', { source: 'cache', le: '+Inf' }), 1);
  assert.equal(m.query.inflight, 0);
});

test('metrics stage: in-flight queries are counted while the pipeline works, and given back when it throws', async () => {
  const m = freshMetrics();
  const stage = createMetricsStage(m);
  let release!: () => void;
  const pending = stage.handle(ctxFor('slow.example', 'A'), () => new Promise((resolve) => (release = () => resolve(outcome('upstream', 0)))));
  assert.equal(m.query.inflight, 1);
  assert.equal(await sample(m.registry, 'tenant_dns_inflight_queries'), 1);
  release();
  await pending;
  assert.equal(m.query.inflight, 0);
  await assert.rejects(async () => stage.handle(ctxFor('boom.example'), () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(m.query.inflight, 0);
});

test('metrics stage: histogram buckets are cumulative and the sum is in seconds', async () => {
  const m = freshMetrics();
  const slot = m.query.duration.slot({ source: 'test' });
  m.query.duration.observe(slot, 0.0002);
  m.query.duration.observe(slot, 0.003);
  m.query.duration.observe(slot, 9);
  const r = m.registry;
  assert.equal(await sample(r, 'tenant_dns_request_duration_seconds_bucket', { source: 'test', le: '0.0001' }), 0);
  assert.equal(await sample(r, 'tenant_dns_request_duration_seconds_bucket', { source: 'test', le: '0.00025' }), 1);
  assert.equal(await sample(r, 'tenant_dns_request_duration_seconds_bucket', { source: 'test', le: '0.005' }), 2);
  assert.equal(await sample(r, 'tenant_dns_request_duration_seconds_bucket', { source: 'test', le: '5' }), 2);
  assert.equal(await sample(r, 'tenant_dns_request_duration_seconds_bucket', { source: 'test', le: '+Inf' }), 3);
  assert.ok(Math.abs((await sample(r, 'tenant_dns_request_duration_seconds_sum', { source: 'test' }))! - 9.0032) < 1e-9);
});

test('metrics stage: feeds the query log with the decision and the outcome', async () => {
  const m = freshMetrics();
  const lines: string[] = [];
  const log = new QueryLog({ mode: 'denied', tenant: 'team-a', sink: { write: (c) => (lines.push(c), true), once: () => undefined } });
  const stage = createMetricsStage(m, log);
  await stage.handle(ctxFor('ads.example.com'), nextWith(outcome('policy', RCode.NXDOMAIN, 'no-ads'), { action: 'deny', rule: 'no-ads', log: true }));
  await stage.handle(ctxFor('ok.example.com'), nextWith(outcome('upstream', RCode.NOERROR), { action: 'allow', rule: 'default', log: false }));
  log.flushNow();
  const parsed = lines.join('').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(parsed.length, 1);
  assert.equal(parsed[0]!.qname, 'ads.example.com');
  assert.equal(parsed[0]!.rule, 'no-ads');
});

test('metrics labels: qtype and rcode labels come from fixed lists', () => {
  assert.equal(qtypeLabel(1), 'A');
  assert.equal(qtypeLabel(65), 'HTTPS');
  assert.equal(qtypeLabel(255), 'ANY');
  assert.equal(qtypeLabel(0), 'other');
  assert.equal(qtypeLabel(254), 'other');
  assert.equal(qtypeLabel(256), 'other');
  assert.equal(qtypeLabel(257), 'other');
  assert.equal(qtypeLabel(65535), 'other');
  assert.equal(rcodeLabel(0), 'NOERROR');
  assert.equal(rcodeLabel(3), 'NXDOMAIN');
  assert.equal(rcodeLabel(16), 'BADVERS');
  assert.equal(rcodeLabel(13), 'other');
  assert.equal(rcodeLabel(4000), 'other');
  assert.equal(rcodeLabel(-1), 'none');
});

test('metrics: dropped query log lines and build_info are counted', async () => {
  const m = freshMetrics();
  m.query.logDropped(3);
  const r = m.registry;
  assert.equal(await sample(r, 'tenant_dns_query_log_dropped_total'), 3);
  assert.equal(await sample(r, 'tenant_dns_build_info', { version: '0.0.0-test', node: process.versions.node }), 1);
});
