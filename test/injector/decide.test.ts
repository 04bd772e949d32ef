import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decide, type DecideContext } from '../../injector/decide.ts';

const config: DecideContext['config'] = { excludedNamespaces: ['kube-system', 'tenant-dns-system'], optOut: 'deny', hostNetworkPods: 'deny' };
const pod = (spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}) => ({
  metadata,
  spec: { containers: [{ name: 'app', image: 'x' }], ...spec },
});
const outcome = (p: unknown, ctx: Partial<DecideContext> = {}) => {
  const d = decide(p, { namespace: 'team-a', tenant: 'acme', config, ...ctx });
  return d.outcome === 'inject' ? 'inject' : `${d.outcome} ${d.reason}`;
};

test('decide: a plain pod goes on to injection, offline and on CREATE', () => {
  assert.equal(outcome(pod()), 'inject');
  assert.equal(outcome(pod(), { operation: 'CREATE' }), 'inject');
});

test('decide: every skip reason', () => {
  assert.equal(outcome({ kind: 'Service', spec: {} }), 'skip not-a-pod');
  assert.equal(outcome(null), 'skip not-a-pod');
  assert.equal(outcome(pod(), { operation: 'UPDATE' }), 'skip operation');
  assert.equal(outcome(pod(), { namespace: 'kube-system' }), 'skip excluded-namespace');
  assert.equal(outcome(pod({}, { annotations: { 'kubernetes.io/config.mirror': 'abc' } })), 'skip mirror-pod');
  assert.equal(outcome(pod({ hostNetwork: true }), { config: { ...config, hostNetworkPods: 'allow' } }), 'skip host-network');
  const optedOut = pod({}, { labels: { 'tenant-dns.io/inject': 'false' } });
  assert.equal(outcome(optedOut, { config: { ...config, optOut: 'allow' } }), 'skip opted-out');
  assert.equal(outcome(optedOut, { allowOptOut: true }), 'skip opted-out');
});

test('decide: hostNetwork, the opt-out label, a foreign tenant label and an ephemeral tenant-dns are denied by default', () => {
  assert.equal(outcome(pod({ hostNetwork: true })), 'deny host-network');
  assert.equal(outcome(pod({}, { labels: { 'tenant-dns.io/inject': 'false' } })), 'deny opt-out-not-allowed');
  assert.equal(outcome(pod({}, { labels: { 'tenant-dns.io/tenant': 'globex' } })), 'deny tenant-label');
  assert.equal(outcome(pod({ ephemeralContainers: [{ name: 'tenant-dns', image: 'x' }] })), 'deny name-conflict');
});

test('decide: the pod tenant label naming its own tenant, or no tenant to check against, is fine', () => {
  assert.equal(outcome(pod({}, { labels: { 'tenant-dns.io/tenant': 'acme' } })), 'inject');
  assert.equal(outcome(pod({}, { labels: { 'tenant-dns.io/tenant': 'globex' } }), { tenant: undefined }), 'inject');
});

test('decide: a status annotation the pod set on itself does not skip injection', () => {
  assert.equal(outcome(pod({}, { annotations: { 'tenant-dns.io/status': '{}' } })), 'inject');
});

test('decide: hostNetwork false and other inject label values go on to injection', () => {
  assert.equal(outcome(pod({ hostNetwork: false }, { labels: { 'tenant-dns.io/inject': 'true' } })), 'inject');
});
