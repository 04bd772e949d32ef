import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { ListenerMetrics } from '../../../sidecar/listener/metrics.ts';
import { sample } from '../metrics/fixtures.ts';

test('listener metrics: rejected messages are counted by transport and the rcode answered (none: dropped)', async () => {
  const r = new Registry();
  const m = new ListenerMetrics(r);
  assert.equal(await sample(r, 'tenant_dns_rejected_requests_total', { proto: 'udp', rcode: 'FORMERR' }), 0);
  m.rejectedRequest('udp', 1);
  m.rejectedRequest('tcp', -1);
  m.rejectedRequest('udp', 16);
  assert.equal(await sample(r, 'tenant_dns_rejected_requests_total', { proto: 'udp', rcode: 'FORMERR' }), 1);
  assert.equal(await sample(r, 'tenant_dns_rejected_requests_total', { proto: 'tcp', rcode: 'none' }), 1);
  assert.equal(await sample(r, 'tenant_dns_rejected_requests_total', { proto: 'udp', rcode: 'BADVERS' }), 1);
  assert.equal(await sample(r, 'tenant_dns_rejected_requests_total', { proto: 'tcp', rcode: 'FORMERR' }), 0);
});
