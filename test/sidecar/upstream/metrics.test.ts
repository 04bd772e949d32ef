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

/** The lines of `metric` (its `_bucket`, `_sum`, `_count` too) that name `upstream`. */
async function linesOf(r: Registry, upstream: string): Promise<string[]> {
  return (await r.metrics()).split('\n').filter((l) => l.startsWith('tenant_dns_upstream_') && l.includes(`upstream="${upstream}"`));
}

test('upstream metrics: declaring the upstreams of a reload removes the series of those it dropped', async () => {
  const r = new Registry();
  const m = new UpstreamMetrics(r);
  m.declareUpstreams(['udp://192.0.2.1:53', 'tls://dns.example:853']);
  m.attempt('tls://dns.example:853', 0, null, 0.02);
  m.attempt('tls://dns.example:853', 3, null, 0.02);
  m.attempt('tls://dns.example:853', null, 'UPSTREAM_BAD_REPLY', 0.02);
  m.connection('tls://dns.example:853', 1);
  m.connection('tls://dns.example:853', -1);
  // The TC fallback of a udp:// upstream counts under its tcp:// address.
  m.attempt('tcp://192.0.2.1:53', 0, null, 0.01);
  assert.ok((await linesOf(r, 'tls://dns.example:853')).length > 0);
  assert.equal(await sample(r, 'tenant_dns_upstream_request_duration_seconds_count', { upstream: 'tcp://192.0.2.1:53', rcode: 'NOERROR' }), 1);

  m.declareUpstreams(['udp://192.0.2.1:53']);
  assert.deepEqual(await linesOf(r, 'tls://dns.example:853'), [], 'every series of the dropped upstream is gone');
  assert.equal(await sample(r, 'tenant_dns_upstream_failures_total', { upstream: 'udp://192.0.2.1:53', code: 'UPSTREAM_TIMEOUT' }), 0, 'the kept one stays');
  assert.equal(await sample(r, 'tenant_dns_upstream_request_duration_seconds_count', { upstream: 'tcp://192.0.2.1:53', rcode: 'NOERROR' }), 1, 'and its TCP fallback');
  // A retired group finishing its queries after the reload does not bring the series back.
  m.attempt('tls://dns.example:853', 0, null, 0.02);
  m.attempt('tls://dns.example:853', null, 'UPSTREAM_TIMEOUT', 1.5);
  assert.deepEqual(await linesOf(r, 'tls://dns.example:853'), []);

  // Declared again (a later reload), the upstream starts from 0.
  m.declareUpstreams(['udp://192.0.2.1:53', 'tls://dns.example:853']);
  assert.equal(await sample(r, 'tenant_dns_upstream_request_duration_seconds_count', { upstream: 'tls://dns.example:853', rcode: 'NOERROR' }), 0);
  assert.equal(await sample(r, 'tenant_dns_upstream_request_duration_seconds_count', { upstream: 'tls://dns.example:853', rcode: 'NXDOMAIN' }), 0);
  assert.equal(await sample(r, 'tenant_dns_upstream_failures_total', { upstream: 'tls://dns.example:853', code: 'UPSTREAM_BAD_REPLY' }), undefined);
});

test('upstream metrics: a dropped upstream keeps its connections gauge until its connections close', async () => {
  const r = new Registry();
  const m = new UpstreamMetrics(r);
  m.declareUpstreams(['tls://dns.example:853']);
  m.connection('tls://dns.example:853', 1);
  m.declareUpstreams([]);
  assert.equal(await sample(r, 'tenant_dns_upstream_connections', { upstream: 'tls://dns.example:853' }), 1, 'still open: still counted');
  m.connection('tls://dns.example:853', -1);
  assert.equal(await sample(r, 'tenant_dns_upstream_connections', { upstream: 'tls://dns.example:853' }), undefined, 'closed: gone, never below 0');
});

test('upstream metrics: series stay bounded over reloads that each bring new upstreams', async () => {
  const r = new Registry();
  const m = new UpstreamMetrics(r);
  const counts: number[] = [];
  for (let reload = 0; reload < 3; reload++) {
    const upstreams = Array.from({ length: 10 }, (_, i) => `udp://192.0.2.${reload * 10 + i + 1}:53`);
    m.declareUpstreams(upstreams);
    for (const u of upstreams) m.attempt(u, 2, null, 0.01);
    counts.push((await r.metrics()).split('\n').filter((l) => l.startsWith('tenant_dns_upstream_')).length);
  }
  assert.equal(new Set(counts).size, 1, `series per reload: ${counts.join(' → ')}`);
});
