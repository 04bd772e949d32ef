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
  // Declaring again creates nothing new; decisions land in the declared series.
  m.declareRules(policy.ruleIds);
  m.decision('deny', 'no-ads');
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'deny', rule: 'no-ads' }), 1);
  assert.equal(decisionLines(await r.metrics()).length, 4);
});

test('policy metrics: before any policy is declared, every decision gets its series on first use', async () => {
  const r = new Registry();
  const m = new PolicyMetrics(r);
  m.decision('log', 'new-rule');
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'log', rule: 'new-rule' }), 1);
});

/** The decision series lines of an exposition. */
function decisionLines(text: string): string[] {
  return text.split('\n').filter((l) => l.startsWith('tenant_dns_policy_decisions_total{'));
}

/** A tenant policy of `n` deny rules named `PREFIX-i`. */
function rules(prefix: string, n: number): string {
  return `defaultAction: allow\nrules:\n${Array.from({ length: n }, (_, i) => `  - {name: ${prefix}-${i}, action: deny, names: ["${prefix}-${i}.example"]}`).join('\n')}`;
}

test('policy metrics: a reload removes the decision series of the rules it removed, however many reloads', async () => {
  const r = new Registry();
  const m = new PolicyMetrics(r);
  const counts: number[] = [];
  for (const prefix of ['a', 'b', 'c']) {
    const policy = compiled(rules(prefix, 300), 'defaultAction: allow');
    m.declareRules(policy.ruleIds);
    m.decision('deny', `${prefix}-7`);
    counts.push(decisionLines(await r.metrics()).length);
  }
  // 300 rules and the default each time (the issue saw 303 → 603 → 903).
  assert.deepEqual(counts, [301, 301, 301]);
  const text = await r.metrics();
  assert.ok(!/rule="[ab]-/.test(text), 'no series of the rules of earlier policies');
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'deny', rule: 'c-7' }), 1);
  // A query decided by a removed rule and answered after the reload is not counted: its series stays gone.
  m.decision('deny', 'a-7');
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'deny', rule: 'a-7' }), undefined);
});

test('policy metrics: a rule whose action a reload changes keeps only the series of its new action', async () => {
  const r = new Registry();
  const m = new PolicyMetrics(r);
  m.declareRules(compiled('rules:\n  - {name: ads, action: deny, names: ["ads.example"]}', 'defaultAction: allow').ruleIds);
  m.decision('deny', 'ads');
  m.declareRules(compiled('rules:\n  - {name: ads, action: log, names: ["ads.example"]}', 'defaultAction: allow').ruleIds);
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'deny', rule: 'ads' }), undefined);
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'log', rule: 'ads' }), 0);
  m.decision('deny', 'ads');
  assert.equal(await sample(r, 'tenant_dns_policy_decisions_total', { action: 'deny', rule: 'ads' }), undefined);
});
