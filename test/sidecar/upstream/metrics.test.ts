import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { UpstreamMetrics } from '../../../sidecar/upstream/metrics.ts';
import { sample } from '../metrics/fixtures.ts';

test('upstream metrics: attempts by rcode, failures by error code and open connections are counted', async () => {
  const r = new Registry();
  const o = new UpstreamMetrics(r).observer();
  o.onAttempt('udp://192.0.2.53:53', 0, null, 0.004);
  o.onAttempt('udp://192.0.2.53:53', 2, null, 0.01);
  o.onAttempt('udp://192.0.2.53:53', null, 'UPSTREAM_TIMEOUT', 1.5);
  o.onConnection('tls://dns.example:853', 1);
  o.onConnection('tls://dns.example:853', 1);
  o.onConnection('tls://dns.example:853', -1);
  assert.equal(await sample(r, 'tenant_dns_upstream_request_duration_seconds_count', { upstream: 'udp://192.0.2.53:53', rcode: 'NOERROR' }), 1);
  assert.equal(await sample(r, 'tenant_dns_upstream_request_duration_seconds_count', { upstream: 'udp://192.0.2.53:53', rcode: 'SERVFAIL' }), 1);
  assert.equal(await sample(r, 'tenant_dns_upstream_failures_total', { upstream: 'udp://192.0.2.53:53', code: 'UPSTREAM_TIMEOUT' }), 1);
  assert.equal(await sample(r, 'tenant_dns_upstream_connections', { upstream: 'tls://dns.example:853' }), 1);
});

test('upstream metrics: the health gauge reads the groups at scrape time', async () => {
  const r = new Registry();
  const m = new UpstreamMetrics(r);
  assert.equal(await sample(r, 'tenant_dns_upstream_healthy'), undefined);
  let second = false;
  m.bindGroups(() => new Map([['default', { members: () => [{ address: 'udp://192.0.2.1:53', healthy: true }, { address: 'udp://192.0.2.2:53', healthy: second }] }]]));
  assert.equal(await sample(r, 'tenant_dns_upstream_healthy', { group: 'default', upstream: 'udp://192.0.2.1:53' }), 1);
  assert.equal(await sample(r, 'tenant_dns_upstream_healthy', { group: 'default', upstream: 'udp://192.0.2.2:53' }), 0);
  second = true;
  assert.equal(await sample(r, 'tenant_dns_upstream_healthy', { group: 'default', upstream: 'udp://192.0.2.2:53' }), 1);
});

test('upstream metrics: declared upstreams have their series at 0 before the first event', async () => {
  const r = new Registry();
  const m = new UpstreamMetrics(r);
  m.declareUpstreams(['udp://192.0.2.1:53', 'https://dns.example:443']);
  assert.equal(await sample(r, 'tenant_dns_upstream_failures_total', { upstream: 'udp://192.0.2.1:53', code: 'UPSTREAM_TIMEOUT' }), 0);
  assert.equal(await sample(r, 'tenant_dns_upstream_failures_total', { upstream: 'udp://192.0.2.1:53', code: 'UPSTREAM_TLS' }), undefined);
  assert.equal(await sample(r, 'tenant_dns_upstream_failures_total', { upstream: 'https://dns.example:443', code: 'UPSTREAM_HTTP' }), 0);
  assert.equal(await sample(r, 'tenant_dns_upstream_request_duration_seconds_count', { upstream: 'udp://192.0.2.1:53', rcode: 'NOERROR' }), 0);
  // Declaring again creates nothing new; events land in the declared series.
  m.declareUpstreams(['udp://192.0.2.1:53']);
  m.attempt('udp://192.0.2.1:53', null, 'UPSTREAM_TIMEOUT', 1.5);
  m.attempt('udp://192.0.2.1:53', 0, null, 0.01);
  assert.equal(await sample(r, 'tenant_dns_upstream_failures_total', { upstream: 'udp://192.0.2.1:53', code: 'UPSTREAM_TIMEOUT' }), 1);
  assert.equal(await sample(r, 'tenant_dns_upstream_request_duration_seconds_count', { upstream: 'udp://192.0.2.1:53', rcode: 'NOERROR' }), 1);
  const text = await r.metrics();
  assert.equal(text.split('\n').filter((l) => l.startsWith('tenant_dns_upstream_failures_total{') && l.includes('udp://192.0.2.1:53')).length, 2);
  assert.equal(text.split('\n').filter((l) => l.startsWith('tenant_dns_upstream_request_duration_seconds_count{') && l.includes('udp://192.0.2.1:53')).length, 2);
});
