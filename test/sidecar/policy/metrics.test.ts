import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { PolicyMetrics } from '../../../sidecar/policy/metrics.ts';
import { sample } from '../metrics/fixtures.ts';
import { compiled } from './helpers.ts';

test('policy metrics: reloads are counted by result, the last one sets the success gauge', async () => {
  const r = new Registry();
  const m = new PolicyMetrics(r);
  assert.equal(await sample(r, 'tenant_dns_policy_last_reload_successful'), 1);
  m.reload('success');
  m.reload('failure');
  assert.equal(await sample(r, 'tenant_dns_policy_reloads_total', { result: 'success' }), 1);
  assert.equal(await sample(r, 'tenant_dns_policy_reloads_total', { result: 'failure' }), 1);
  assert.equal(await sample(r, 'tenant_dns_policy_last_reload_successful'), 0);
  m.reload('success');
  assert.equal(await sample(r, 'tenant_dns_policy_last_reload_successful'), 1);
});

test('policy metrics: the reload timestamp is read at scrape time, in seconds', async () => {
  const r = new Registry();
  const m = new PolicyMetrics(r);
  assert.equal(await sample(r, 'tenant_dns_policy_last_reload_success_timestamp_seconds'), 0);
  let at = 1_700_000_000_000;
  m.bindLastReloadSuccess(() => at);
  assert.equal(await sample(r, 'tenant_dns_policy_last_reload_success_timestamp_seconds'), 1_700_000_000);
  at += 5_000;
  assert.equal(await sample(r, 'tenant_dns_policy_last_reload_success_timestamp_seconds'), 1_700_000_005);
});

test('policy metrics: the rules of a compiled policy have their decision series at 0 before the first decision', async () => {
  const r = new Registry();
  const m = new PolicyMetrics(r);
  const policy = compiled('defaultAction: allow\nrules:\n  - name: no-ads\n    action: deny\n    names: ["*.ads.example"]', 'defaultAction: deny\nrules:\n  - name: onion\n    action: deny\n    names: ["*.onion"]');
  m.declareRules(policy.ruleIds);
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'deny', rule: 'no-ads' }), 0);
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'allow', rule: 'default' }), 0);
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'deny', rule: 'platform:onion' }), 0);
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'deny', rule: 'platform:default' }), 0);
  // Declaring again creates nothing new; decisions land in the declared series, others get their own.
  m.declareRules(policy.ruleIds);
  m.decision('deny', 'no-ads');
  m.decision('log', 'new-rule');
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'deny', rule: 'no-ads' }), 1);
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'log', rule: 'new-rule' }), 1);
  const text = await r.metrics();
  assert.equal(text.split('\n').filter((l) => l.startsWith('tenant_dns_policy_decisions_total{')).length, 5);
});
