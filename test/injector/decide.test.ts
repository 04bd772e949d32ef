import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide } from '../../injector/decide.ts';

const config = { excludedNamespaces: ['kube-system', 'tenant-dns-system'] };
const pod = (spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}) => ({
  metadata,
  spec: { containers: [{ name: 'app', image: 'x' }], ...spec },
});
const reason = (p: unknown, ctx: Partial<{ namespace: string; operation: string }> = {}) => {
  const d = decide(p, { namespace: 'team-a', config, ...ctx });
  return d.inject ? 'inject' : d.reason;
};

test('decide: a plain pod is injected, offline and on CREATE', () => {
  assert.equal(reason(pod()), 'inject');
  assert.equal(reason(pod(), { operation: 'CREATE' }), 'inject');
});

test('decide: every skip reason', () => {
  assert.equal(reason({ kind: 'Service', spec: {} }), 'not-a-pod');
  assert.equal(reason(null), 'not-a-pod');
  assert.equal(reason(pod(), { operation: 'UPDATE' }), 'operation');
  assert.equal(reason(pod(), { namespace: 'kube-system' }), 'excluded-namespace');
  assert.equal(reason(pod({ hostNetwork: true })), 'host-network');
  assert.equal(reason(pod({}, { annotations: { 'kubernetes.io/config.mirror': 'abc' } })), 'mirror-pod');
  assert.equal(reason(pod({}, { labels: { 'tenant-dns.io/inject': 'false' } })), 'opted-out');
  assert.equal(reason(pod({ initContainers: [{ name: 'tenant-dns', image: 'x' }] })), 'already-injected');
  assert.equal(reason(pod({ containers: [{ name: 'tenant-dns', image: 'x' }] })), 'already-injected');
  assert.equal(reason(pod({ volumes: [{ name: 'tenant-dns-podinfo', emptyDir: {} }] })), 'name-conflict');
  assert.equal(reason(pod({ ephemeralContainers: [{ name: 'tenant-dns', image: 'x' }] })), 'name-conflict');
});

test('decide: a status annotation the pod set on itself does not skip injection', () => {
  assert.equal(reason(pod({}, { annotations: { 'tenant-dns.io/status': '{}' } })), 'inject');
});

test('decide: hostNetwork false and other inject label values do not skip', () => {
  assert.equal(reason(pod({ hostNetwork: false }, { labels: { 'tenant-dns.io/inject': 'true' } })), 'inject');
});
