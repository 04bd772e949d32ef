import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePolicy, NameTrie, selectorMatches, globBaseZone } from '../../../sidecar/policy/compile.ts';
import { evaluate } from '../../../sidecar/policy/evaluate.ts';
import { compiled, policy } from './helpers.ts';

function actionOf(c: ReturnType<typeof compiled>, name: string): string {
  const ev = evaluate(c, name);
  return `${ev.decision.action}:${ev.decision.rule}`;
}

test('glob: an exact name matches only itself', () => {
  const c = compiled('rules:\n  - {name: r, action: deny, names: [example.com]}');
  assert.equal(actionOf(c, 'example.com'), 'deny:r');
  assert.equal(actionOf(c, 'www.example.com'), 'allow:default');
  assert.equal(actionOf(c, 'com'), 'allow:default');
  assert.equal(actionOf(c, 'xexample.com'), 'allow:default');
});

test('glob: *.zone matches every depth below, not the apex', () => {
  const c = compiled('rules:\n  - {name: r, action: deny, names: ["*.example.com"]}');
  assert.equal(actionOf(c, 'a.example.com'), 'deny:r');
  assert.equal(actionOf(c, 'a.b.c.example.com'), 'deny:r');
  assert.equal(actionOf(c, 'example.com'), 'allow:default');
  assert.equal(actionOf(c, 'badexample.com'), 'allow:default');
});

test('glob: a * inside a label stays within that label', () => {
  const c = compiled('rules:\n  - {name: r, action: deny, names: ["ads-*.example.com"]}');
  assert.equal(actionOf(c, 'ads-1.example.com'), 'deny:r');
  assert.equal(actionOf(c, 'ads-.example.com'), 'deny:r');
  assert.equal(actionOf(c, 'x.ads-1.example.com'), 'allow:default');
  assert.equal(actionOf(c, 'ads.example.com'), 'allow:default');
  assert.equal(actionOf(c, 'ads-1.x.example.com'), 'allow:default');
});

test('glob: in-label patterns may sit in the middle of a glob', () => {
  const c = compiled('rules:\n  - {name: r, action: deny, names: ["*.s3.eu-*.amazonaws.com", "api.*-prod.example"]}');
  assert.equal(actionOf(c, 'bucket.s3.eu-west-1.amazonaws.com'), 'deny:r');
  assert.equal(actionOf(c, 'bucket.s3.us-east-1.amazonaws.com'), 'allow:default');
  assert.equal(actionOf(c, 'api.shop-prod.example'), 'deny:r');
  assert.equal(actionOf(c, 'api.a.b-prod.example'), 'allow:default');
});

test('glob: case-insensitive and the trailing dot is ignored', () => {
  const c = compiled('rules:\n  - {name: r, action: deny, names: ["Ads.EXAMPLE.com.", "*.Tracker.NET"]}');
  assert.equal(actionOf(c, 'ads.example.com'), 'deny:r');
  assert.equal(actionOf(c, 'x.tracker.net'), 'deny:r');
});

test('precedence: more literal labels win over fewer', () => {
  const c = compiled(
    'rules:\n  - {name: deny-com, action: deny, names: ["*.com"]}\n  - {name: allow-github, action: allow, names: ["*.github.com"]}',
  );
  assert.equal(actionOf(c, 'api.github.com'), 'allow:allow-github');
  assert.equal(actionOf(c, 'github.com'), 'deny:deny-com');
  assert.equal(actionOf(c, 'example.com'), 'deny:deny-com');
});

test('precedence: at the same depth exact beats in-label pattern beats subtree', () => {
  const c = compiled(
    [
      'rules:',
      '  - {name: subtree, action: deny, names: ["*.example.com"]}',
      '  - {name: pattern, action: log, names: ["ads-*.example.com"]}',
      '  - {name: exact, action: allow, names: [ads-1.example.com]}',
    ].join('\n'),
  );
  assert.equal(actionOf(c, 'ads-1.example.com'), 'allow:exact');
  assert.equal(actionOf(c, 'ads-2.example.com'), 'log:pattern');
  assert.equal(actionOf(c, 'www.example.com'), 'deny:subtree');
});

test('precedence: on a tie deny wins, whatever the order', () => {
  for (const order of [0, 1]) {
    const rules = ['  - {name: a, action: allow, names: ["*.example.com"]}', '  - {name: d, action: deny, names: ["*.example.com"]}'];
    if (order) rules.reverse();
    const c = compiled(['rules:', ...rules].join('\n'));
    assert.equal(actionOf(c, 'x.example.com'), 'deny:d');
  }
});

test('precedence: the platform is evaluated first and a tenant cannot allow a platform deny', () => {
  const c = compiled(
    'rules:\n  - {name: allow-onion, action: allow, names: [hidden.onion, "*.onion"]}',
    'rules:\n  - {name: no-tor, action: deny, names: ["*.onion"]}',
  );
  const ev = evaluate(c, 'hidden.onion');
  assert.equal(ev.decision.action, 'deny');
  assert.equal(ev.decision.rule, 'platform:no-tor');
  assert.equal(ev.layer, 'platform');
  assert.equal(ev.soaZone, 'onion');
});

test('precedence: a platform default deny is final; a platform allow lets the tenant decide', () => {
  const c = compiled(
    'rules:\n  - {name: tenant-deny, action: deny, names: [x.example.com]}\n  - {name: tenant-allow, action: allow, names: [other.net]}',
    'defaultAction: deny\nrules:\n  - {name: ok, action: allow, names: ["*.example.com"]}',
  );
  assert.equal(actionOf(c, 'x.example.com'), 'deny:tenant-deny');
  assert.equal(actionOf(c, 'y.example.com'), 'allow:platform:ok');
  assert.equal(actionOf(c, 'other.net'), 'deny:platform:default');
});

test('precedence: with no tenant match a platform log rule applies, else the tenant default', () => {
  const c = compiled('defaultAction: deny\nrules:\n  - {name: t, action: allow, names: [a.example]}', 'rules:\n  - {name: audit, action: log, names: ["*.example"]}');
  assert.equal(actionOf(c, 'a.example'), 'allow:t');
  const ev = evaluate(c, 'b.example');
  assert.equal(ev.decision.rule, 'platform:audit');
  assert.equal(ev.decision.log, true);
  assert.equal(actionOf(c, 'c.org'), 'deny:default');
  assert.equal(evaluate(c, 'c.org').soaZone, 'org');
});

test('decision: deny rules log by default, log: false turns it off, allow rules log when asked', () => {
  const c = compiled(
    [
      'rules:',
      '  - {name: d1, action: deny, names: [a.test]}',
      '  - {name: d2, action: deny, names: [b.test], log: false}',
      '  - {name: a1, action: allow, names: [c.test], log: true}',
      '  - {name: a2, action: allow, names: [d.test]}',
    ].join('\n'),
  );
  assert.deepEqual(
    ['a.test', 'b.test', 'c.test', 'd.test'].map((n) => evaluate(c, n).decision.log),
    [true, false, true, false],
  );
});

test('deny response: rule response, else the policy defaultResponse, else nxdomain ttl 30', () => {
  const c = compiled(
    [
      'defaultResponse: {type: nodata, ttl: 5}',
      'rules:',
      '  - {name: r1, action: deny, names: [a.test], response: {type: refused}}',
      '  - {name: r2, action: deny, names: [b.test]}',
    ].join('\n'),
  );
  assert.deepEqual(evaluate(c, 'a.test').response, { type: 'refused', addresses: [], ttl: 30 });
  assert.deepEqual(evaluate(c, 'b.test').response, { type: 'nodata', addresses: [], ttl: 5 });
  assert.deepEqual(evaluate(compilePolicy(), 'x.test').response, undefined);
});

test('podSelector: matchLabels leaves the rule out for other pods', () => {
  const spec = 'rules:\n  - {name: fe, action: deny, names: ["*.com"], podSelector: {matchLabels: {app: frontend}}}';
  assert.equal(actionOf(compiled(spec, undefined, { app: 'frontend', tier: 'web' }), 'x.com'), 'deny:fe');
  assert.equal(actionOf(compiled(spec, undefined, { app: 'backend' }), 'x.com'), 'allow:default');
  assert.equal(actionOf(compiled(spec, undefined, {}), 'x.com'), 'allow:default');
});

test('podSelector: each matchExpressions operator', () => {
  const sel = (operator: string, values?: string[]) => ({ matchExpressions: [{ key: 'env', operator: operator as 'In', ...(values ? { values } : {}) }] });
  const prod = { env: 'prod' };
  const dev = { env: 'dev' };
  const none = {};
  assert.deepEqual([prod, dev, none].map((l) => selectorMatches(sel('In', ['prod', 'stage']), l)), [true, false, false]);
  assert.deepEqual([prod, dev, none].map((l) => selectorMatches(sel('NotIn', ['prod']), l)), [false, true, true]);
  assert.deepEqual([prod, dev, none].map((l) => selectorMatches(sel('Exists'), l)), [true, true, false]);
  assert.deepEqual([prod, dev, none].map((l) => selectorMatches(sel('DoesNotExist'), l)), [false, false, true]);
  assert.equal(selectorMatches({}, none), true);
  assert.equal(selectorMatches(undefined, none), true);
  assert.equal(selectorMatches({ matchLabels: { env: 'prod' }, matchExpressions: [{ key: 'team', operator: 'Exists' }] }, prod), false);
});

test('podSelector: expressions resolved at compile time through a policy', () => {
  const spec = 'rules:\n  - name: r\n    action: deny\n    names: [x.test]\n    podSelector:\n      matchExpressions:\n        - {key: app, operator: NotIn, values: [admin]}';
  assert.equal(actionOf(compiled(spec, undefined, { app: 'web' }), 'x.test'), 'deny:r');
  assert.equal(actionOf(compiled(spec, undefined, { app: 'admin' }), 'x.test'), 'allow:default');
});

test('split zones: the most specific zone wins; forward zones match the apex and below', () => {
  const c = compiled(
    [
      'splitZones:',
      '  - {name: wide, names: ["*.svc.example"], addresses: [10.0.0.1]}',
      '  - {name: narrow, names: ["*.db.svc.example"], addresses: [10.0.0.2]}',
      'forwardZones:',
      '  - {name: corp, zones: [corp.example], upstreams: ["udp://10.0.0.53:53"]}',
      '  - {name: corp-eu, zones: [eu.corp.example], upstreams: ["udp://10.0.0.54:53"]}',
    ].join('\n'),
  );
  assert.equal(c.splitZones.lookup('a.svc.example')?.zone.name, 'wide');
  assert.equal(c.splitZones.lookup('a.db.svc.example')?.zone.name, 'narrow');
  assert.equal(c.splitZones.lookup('svc.example'), undefined);
  assert.equal(c.forwardZones.lookup('corp.example')?.zone.name, 'corp');
  assert.equal(c.forwardZones.lookup('x.corp.example')?.zone.name, 'corp');
  assert.equal(c.forwardZones.lookup('x.eu.corp.example')?.zone.name, 'corp-eu');
  assert.equal(c.forwardZones.lookup('x.eu.corp.example')?.matched, 'eu.corp.example');
  assert.equal(c.forwardZones.lookup('notcorp.example'), undefined);
});

test('globBaseZone: the labels after the last wildcard label', () => {
  assert.equal(globBaseZone('*.com'), 'com');
  assert.equal(globBaseZone('example.com'), 'example.com');
  assert.equal(globBaseZone('ads-*.example.com.'), 'example.com');
});

// How lookup cost grows (with the name, not the rule count) is measured by test/bench/policy-trie.bench.ts.
test('trie: 50,000 exact names and a subtree glob beside them', () => {
  const trie = new NameTrie<number>();
  for (let i = 0; i < 50_000; i++) trie.add(`host${i}.example${i % 100}.com`, i);
  trie.add('*.example7.com', -1);
  assert.equal(trie.lookup('host7.example7.com'), 7);
  assert.equal(trie.lookup('host49999.example99.com'), 49_999);
  assert.equal(trie.lookup('nothere.example7.com'), -1);
  assert.equal(trie.lookup('host7.example8.com'), undefined);
});

test('policy helper: empty spec compiles to default allow', () => {
  const c = compilePolicy({ tenant: policy('{}') });
  assert.equal(actionOf(c, 'anything.test'), 'allow:default');
});

test('rule ids: every rule and default as decisions name them, pod selectors aside, frozen', () => {
  const tenant = 'defaultAction: deny\nrules:\n  - {name: no-ads, action: deny, names: ["*.ads.example"]}\n  - {name: fe, action: allow, names: ["*.com"], podSelector: {matchLabels: {app: frontend}}}\n  - {name: watch, action: log, names: [x.example]}';
  const platform = 'defaultAction: deny\nrules:\n  - {name: onion, action: deny, names: ["*.onion"]}\n  - {name: ok, action: allow, names: ["*.ok.example"], podSelector: {matchLabels: {tier: none}}}';
  const c = compiled(tenant, platform, { app: 'backend' });
  assert.deepEqual(c.ruleIds, [
    { action: 'deny', rule: 'no-ads' },
    { action: 'allow', rule: 'fe' },
    { action: 'log', rule: 'watch' },
    { action: 'deny', rule: 'default' },
    { action: 'deny', rule: 'platform:onion' },
    { action: 'allow', rule: 'platform:ok' },
    { action: 'deny', rule: 'platform:default' },
  ]);
  // Named as the decisions name them (fe does not apply to this pod, but is listed all the same).
  assert.equal(actionOf(c, 'a.onion'), 'deny:platform:onion');
  assert.equal(actionOf(c, 'x.com'), 'deny:platform:default');
  assert.equal(actionOf(compiled(tenant, undefined, { app: 'backend' }), 'a.ads.example'), 'deny:no-ads');
  assert.ok(Object.isFrozen(c.ruleIds) && c.ruleIds.every((id) => Object.isFrozen(id)));
  // A platform that allows by default decides nothing by default; no policy at all: only the tenant default.
  assert.deepEqual(compiled('{}', 'defaultAction: allow').ruleIds, [{ action: 'allow', rule: 'default' }]);
  assert.deepEqual(compilePolicy().ruleIds, [{ action: 'allow', rule: 'default' }]);
});
