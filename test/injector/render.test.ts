import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseInjectorConfig } from '../../injector/config.ts';
import { renderAll, settingsFromConfig, type RenderInput, type RenderResult } from '../../injector/render.ts';
import type { JsonObject } from '../../injector/json.ts';
import { parsePolicy, platformView } from '../../sidecar/policy/manager.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';

const settings = settingsFromConfig(parseInjectorConfig({ clusterDns: '10.96.0.10:53' }));

function ns(name: string, labels: Record<string, string> = {}, inject = true): JsonObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { ...(inject ? { 'tenant-dns.io/inject': 'enabled' } : {}), ...labels } } };
}

let uid = 0;
function cdp(name: string, spec: JsonObject, generation = 1): JsonObject {
  return { apiVersion: 'tenant-dns.io/v1alpha1', kind: 'ClusterDNSPolicy', metadata: { name, uid: `uid-${name}-${++uid}`, generation }, spec };
}
function dp(namespace: string, name: string, spec: JsonObject, generation = 1): JsonObject {
  return { apiVersion: 'tenant-dns.io/v1alpha1', kind: 'DNSPolicy', metadata: { name, namespace, uid: `uid-${namespace}-${name}-${++uid}`, generation }, spec };
}
const deny = (name: string, ...names: string[]) => ({ name, action: 'deny', names });
const allow = (name: string, ...names: string[]) => ({ name, action: 'allow', names });

function render(input: Partial<RenderInput>): RenderResult {
  return renderAll({ namespaces: [], clusterPolicies: [], policies: [], ...input }, settings);
}
function cm(r: RenderResult, namespace: string, layer: 'platform' | 'tenant'): JsonObject | undefined {
  return r.configMaps.find((c: any) => c.metadata.namespace === namespace && c.metadata.labels['tenant-dns.io/layer'] === layer);
}
/** The policy document of a rendered layer, parsed by the sidecar's own parser. */
function layer(r: RenderResult, namespace: string, which: 'platform' | 'tenant') {
  const c: any = cm(r, namespace, which);
  assert.ok(c, `${which} layer of ${namespace} rendered`);
  return parsePolicy(c.data['policy.yaml'], `${namespace}/${which}`);
}
function status(r: RenderResult, name: string) {
  const s = r.statuses.find((x) => x.name === name);
  assert.ok(s, `status of ${name}`);
  return s;
}

test('render: objects of a layer merge in order of name: lists concatenated, first defaultResponse, provenance annotation', () => {
  const r = render({
    namespaces: [ns('team-a')],
    clusterPolicies: [
      cdp('b-second', { rules: [deny('b-rule', 'b.example')], defaultResponse: { type: 'refused' }, forwardZones: [{ name: 'corp', zones: ['corp.example'], upstreams: ['udp://10.0.0.53:53'] }] }, 7),
      cdp('a-first', { rules: [deny('a-rule', 'a.example')], defaultResponse: { type: 'nodata' }, splitZones: [{ name: 'db', names: ['db.example'], addresses: ['10.0.0.1'] }] }, 3),
    ],
    policies: [dp('team-a', 'zz', { rules: [allow('z', 'z.example')] }), dp('team-a', 'aa', { rules: [allow('a', 'a.example')] })],
  });
  const platform = layer(r, 'team-a', 'platform');
  assert.deepEqual(platform.spec.rules.map((x) => x.name), ['a-rule', 'b-rule']);
  assert.deepEqual(platform.spec.defaultResponse, { type: 'nodata' });
  assert.deepEqual(platform.spec.splitZones.map((x) => x.name), ['db']);
  assert.deepEqual(platform.spec.forwardZones.map((x) => x.name), ['corp']);
  assert.equal((cm(r, 'team-a', 'platform') as any).metadata.annotations['tenant-dns.io/rendered-from'], 'ClusterDNSPolicy/a-first@3,ClusterDNSPolicy/b-second@7');
  assert.deepEqual(layer(r, 'team-a', 'tenant').spec.rules.map((x) => x.name), ['a', 'z']);
  assert.equal((cm(r, 'team-a', 'tenant') as any).metadata.annotations['tenant-dns.io/rendered-from'], 'DNSPolicy/aa@1,DNSPolicy/zz@1');
  // The input order does not matter, and the render is deterministic.
  const again = renderAll({ namespaces: [ns('team-a')], clusterPolicies: [], policies: [] }, settings);
  assert.deepEqual(again, renderAll({ namespaces: [ns('team-a')], clusterPolicies: [], policies: [] }, settings));
});

test('render: ipFamilies comes from the first object of the layer that sets it, in each layer', () => {
  const r = render({
    namespaces: [ns('team-a')],
    clusterPolicies: [cdp('b', { ipFamilies: ['IPv4', 'IPv6'] }, 1), cdp('a', { rules: [deny('x', 'x.example')] }, 1)],
    policies: [dp('team-a', 'p', { ipFamilies: ['IPv4'] }), dp('team-a', 'q', { ipFamilies: ['IPv6'] })],
  });
  assert.deepEqual((layer(r, 'team-a', 'platform').spec as { ipFamilies?: string[] }).ipFamilies, ['IPv4', 'IPv6']);
  assert.deepEqual((layer(r, 'team-a', 'tenant').spec as { ipFamilies?: string[] }).ipFamilies, ['IPv4']);
});

test('render: defaultAction is deny when any object of the layer says deny', () => {
  const r = render({
    namespaces: [ns('team-a')],
    policies: [dp('team-a', 'a', { defaultAction: 'allow', rules: [allow('ok', 'ok.example')] }), dp('team-a', 'b', { defaultAction: 'deny' }), dp('team-a', 'c', {})],
  });
  assert.equal(layer(r, 'team-a', 'tenant').spec.defaultAction, 'deny');
  assert.equal(layer(r, 'team-a', 'platform').spec.defaultAction, 'allow');
});

test('render: a duplicate rule name across objects refuses the later one (Conflict) and, never accepted, holds the layer', () => {
  const input = {
    namespaces: [ns('team-a'), ns('team-b')],
    policies: [dp('team-a', 'first', { rules: [deny('shared', 'a.example')] }), dp('team-a', 'second', { rules: [allow('own', 'b.example'), deny('shared', 'c.example')] })],
  };
  const r = render(input);
  assert.equal(status(r, 'first').accepted, true);
  const s = status(r, 'second');
  assert.deepEqual([s.accepted, s.reason], [false, 'Conflict']);
  assert.match(s.message, /^spec\.rules\[1\]\.name: duplicate rule name "shared" \(also DNSPolicy\/first spec\.rules\[0\]\)/);
  assert.match(s.message, /keep their last rendered policy until it is fixed or deleted/);
  assert.deepEqual(s.problems, [{ field: 'spec.rules[1].name', message: 'duplicate rule name "shared" (also DNSPolicy/first spec.rules[0])' }]);
  assert.deepEqual(r.held.map((h) => [h.namespace, h.layer]), [['team-a', 'tenant']]);
  assert.match(r.held[0]!.reason, /DNSPolicy\/second is not accepted \(Conflict: /);
  assert.equal(cm(r, 'team-a', 'tenant'), undefined);
  assert.ok(cm(r, 'team-a', 'platform') && cm(r, 'team-b', 'tenant'), 'the other layers are rendered');
  assert.ok(!r.accepted.has(s.key));
  // With an earlier accepted spec, the object contributes that one instead and nothing is held.
  const earlier = { rules: [allow('own', 'b.example')], defaultAction: 'allow', splitZones: [], forwardZones: [] };
  const r2 = renderAll({ ...input, clusterPolicies: [], lastAccepted: new Map([[s.key, earlier]]) }, settings);
  assert.deepEqual(r2.held, []);
  assert.deepEqual(layer(r2, 'team-a', 'tenant').spec.rules.map((x) => x.name), ['shared', 'own']);
  assert.match((cm(r2, 'team-a', 'tenant') as any).metadata.annotations['tenant-dns.io/rendered-from'], /DNSPolicy\/second@last-accepted$/);
  assert.equal(status(r2, 'second').accepted, false);
  assert.match(status(r2, 'second').message, /its last accepted spec still applies$/);
  assert.deepEqual(r2.accepted.get(s.key), earlier);
});

test('render: a tenant object that shadows the platform is refused as a Conflict, checked against the platform layer', () => {
  const r = render({
    namespaces: [ns('team-a')],
    clusterPolicies: [cdp('corp', { rules: [deny('bad', '*.bad.example')], forwardZones: [{ name: 'corp', zones: ['corp.example'], upstreams: ['udp://10.0.0.53:53'] }] })],
    policies: [
      dp('team-a', 'fwd', { forwardZones: [{ name: 'mine', zones: ['a.corp.example'], upstreams: ['udp://10.1.0.53:53'] }] }),
      dp('team-a', 'split', { splitZones: [{ name: 'alias', names: ['x.team-a.example'], cname: 'c2.bad.example' }] }),
    ],
  });
  const fwd = status(r, 'fwd');
  assert.deepEqual([fwd.accepted, fwd.reason], [false, 'Conflict']);
  assert.match(fwd.message, /^spec\.forwardZones\[0\]\.zones\[0\]: "a\.corp\.example" lies in the platform's forward zone corp\.example \("corp"\)/);
  const split = status(r, 'split');
  assert.equal(split.reason, 'Conflict');
  assert.match(split.message, /^spec\.splitZones\[0\]\.cname: target "c2\.bad\.example" is denied by platform rule platform:bad/);
  assert.equal(status(r, 'corp').accepted, true);
  // Alone, both are valid policies: refused only beside this platform.
  const alone = render({ namespaces: [ns('team-a')], policies: [dp('team-a', 'fwd', { forwardZones: [{ name: 'mine', zones: ['a.corp.example'], upstreams: ['udp://10.1.0.53:53'] }] })] });
  assert.equal(alone.statuses[0]!.accepted, true);
});

test('render: an invalid update keeps the last accepted spec in the layer (Invalid, field named)', () => {
  const namespaces = [ns('team-a')];
  const good = dp('team-a', 'p', { rules: [deny('ads', 'ads.example')] }, 1);
  const first = render({ namespaces, policies: [good] });
  assert.equal(status(first, 'p').accepted, true);
  const key = status(first, 'p').key;
  const bad = { ...good, metadata: { ...(good.metadata as JsonObject), generation: 2 }, spec: { rules: [deny('ads', 'ads.example', 'a..b.example')] } };
  const second = renderAll({ namespaces, clusterPolicies: [], policies: [bad], lastAccepted: first.accepted }, settings);
  const s = status(second, 'p');
  assert.deepEqual([s.accepted, s.reason, s.generation], [false, 'Invalid', 2]);
  assert.match(s.message, /^spec\.rules\[0\]\.names\[1\]: empty label in "a\.\.b\.example": its last accepted spec still applies$/);
  assert.deepEqual(layer(second, 'team-a', 'tenant').spec.rules[0]!.names, ['ads.example']);
  assert.deepEqual(second.held, []);
  assert.deepEqual(second.accepted.get(key), first.accepted.get(key));
  // A schema problem is named like `policy validate` names it, too.
  const wrong = renderAll({ namespaces, clusterPolicies: [], policies: [{ ...good, spec: { rules: [{ name: 'x', action: 'block', names: ['a.example'] }] } }], lastAccepted: first.accepted }, settings);
  assert.match(status(wrong, 'p').message, /^spec\.rules\[0\]\.action: must be one of "allow", "deny", "log"/);
});

test('render: an invalid object never accepted holds the layers it would change; the rest is rendered', () => {
  const r = render({
    namespaces: [ns('team-a', { 'tenant-dns.io/tenant': 'acme' }), ns('team-b')],
    clusterPolicies: [cdp('ok', { rules: [deny('x', 'x.example')] }), cdp('broken', { selector: { tenants: ['acme'] }, rules: [deny('y', '**.example')] })],
  });
  const s = status(r, 'broken');
  assert.deepEqual([s.accepted, s.reason, s.namespaces], [false, 'Invalid', 1]);
  assert.match(s.message, /^spec\.rules\[0\]\.names\[0\]: "\*\*" is not supported/);
  assert.deepEqual(r.held.map((h) => `${h.namespace}/${h.layer}`), ['team-a/platform']);
  assert.equal(cm(r, 'team-a', 'platform'), undefined);
  assert.ok(cm(r, 'team-a', 'tenant'));
  assert.deepEqual(layer(r, 'team-b', 'platform').spec.rules.map((x) => x.name), ['x']);
  assert.ok(!r.accepted.has(s.key));
  assert.ok(r.accepted.has(status(r, 'ok').key));
  // A selector that cannot be read selects (and holds) every injected namespace.
  const unreadable = render({ namespaces: [ns('team-a'), ns('team-b')], clusterPolicies: [cdp('sel', { selector: { namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } } })] });
  assert.match(status(unreadable, 'sel').message, /^spec\.selector\.namespaceSelector\.matchExpressions\[0\]\.values: operator In needs values/);
  assert.deepEqual(unreadable.held.map((h) => h.namespace), ['team-a', 'team-b']);
});

test('render: the fields a kind may not set are refused: serviceDiscovery in a DNSPolicy, its namespaces in a ClusterDNSPolicy', () => {
  const r = render({
    namespaces: [ns('team-a')],
    clusterPolicies: [cdp('sd', { serviceDiscovery: { isolation: 'tenant', namespaces: ['team-a'] } })],
    policies: [dp('team-a', 'sd', { serviceDiscovery: { isolation: 'none' } })],
  });
  const [platform, tenant] = r.statuses;
  assert.equal(platform!.kind, 'ClusterDNSPolicy');
  assert.match(platform!.message, /^spec\.serviceDiscovery\.namespaces: is not a known field/);
  assert.equal(tenant!.kind, 'DNSPolicy');
  assert.match(tenant!.message, /^spec\.serviceDiscovery: is not a known field/);
});

test('render: selectors: tenants, matchLabels and every matchExpressions operator; all given parts must match', () => {
  const namespaces = [
    ns('a1', { 'tenant-dns.io/tenant': 'acme', tier: 'prod', pci: 'yes' }),
    ns('a2', { 'tenant-dns.io/tenant': 'acme', tier: 'dev' }),
    ns('b1', { 'tenant-dns.io/tenant': 'beta', tier: 'prod' }),
    ns('c1'),
  ];
  const policies = {
    all: {},
    empty: { selector: {} },
    tenants: { selector: { tenants: ['acme'] } },
    labels: { selector: { namespaceSelector: { matchLabels: { tier: 'prod' } } } },
    both: { selector: { tenants: ['acme'], namespaceSelector: { matchLabels: { tier: 'prod' } } } },
    in: { selector: { namespaceSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['dev', 'test'] }] } } },
    notin: { selector: { namespaceSelector: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['prod'] }] } } },
    exists: { selector: { namespaceSelector: { matchExpressions: [{ key: 'pci', operator: 'Exists' }] } } },
    absent: { selector: { namespaceSelector: { matchExpressions: [{ key: 'pci', operator: 'DoesNotExist' }, { key: 'tier', operator: 'Exists' }] } } },
  };
  const r = render({ namespaces, clusterPolicies: Object.entries(policies).map(([name, spec]) => cdp(name, { ...spec, rules: [deny(name, `${name}.example`)] })) });
  const selected = (n: string) => layer(r, n, 'platform').spec.rules.map((x) => x.name).sort();
  assert.deepEqual(selected('a1'), ['all', 'both', 'empty', 'exists', 'labels', 'tenants']);
  assert.deepEqual(selected('a2'), ['absent', 'all', 'empty', 'in', 'notin', 'tenants']);
  assert.deepEqual(selected('b1'), ['absent', 'all', 'empty', 'labels']);
  assert.deepEqual(selected('c1'), ['all', 'empty', 'notin']);
  assert.equal(status(r, 'labels').namespaces, 2);
  assert.equal(status(r, 'labels').message, 'applies to 2 injected namespaces');
});

test('render: excluded and not injected namespaces get nothing; a DNSPolicy there is accepted with 0 namespaces', () => {
  const r = render({
    namespaces: [ns('kube-system'), ns('plain', {}, false), ns('off', { 'tenant-dns.io/inject': 'disabled' }, false), ns('team-a')],
    clusterPolicies: [cdp('all', {})],
    policies: [dp('plain', 'p', { rules: [deny('x', 'x.example')] })],
  });
  assert.deepEqual(r.configMaps.map((c: any) => `${c.metadata.namespace}/${c.metadata.name}`), ['team-a/tenant-dns-platform', 'team-a/tenant-dns-policy']);
  const s = status(r, 'p');
  assert.deepEqual([s.accepted, s.namespaces], [true, 0]);
  assert.match(s.message, /namespace plain is not injected/);
  assert.equal(status(r, 'all').namespaces, 1);
  // A namespace with no policy at all still gets both layers, each an empty policy.
  const empty = layer(r, 'team-a', 'tenant');
  assert.deepEqual([empty.spec.rules, empty.spec.defaultAction], [[], 'allow']);
});

test('render: tenant isolation lists every namespace of the tenant and the union of shared namespaces, sorted', () => {
  const r = render({
    namespaces: [
      ns('pay-web', { 'tenant-dns.io/tenant': 'payments' }),
      ns('pay-batch', { 'tenant-dns.io/tenant': 'payments' }),
      ns('pay-legacy', { 'tenant-dns.io/tenant': 'payments' }, false),
      ns('solo'),
      ns('bad-label', { 'tenant-dns.io/tenant': 'not a tenant!' }),
    ],
    clusterPolicies: [
      cdp('a', { serviceDiscovery: { isolation: 'tenant', sharedNamespaces: ['kube-system', 'default'] } }),
      cdp('b', { serviceDiscovery: { isolation: 'none', sharedNamespaces: ['monitoring', 'default'] } }),
    ],
  });
  assert.deepEqual(layer(r, 'pay-web', 'platform').spec.serviceDiscovery, {
    isolation: 'tenant',
    namespaces: ['pay-batch', 'pay-legacy', 'pay-web'],
    sharedNamespaces: ['default', 'kube-system', 'monitoring'],
  });
  assert.deepEqual(layer(r, 'solo', 'platform').spec.serviceDiscovery?.namespaces, ['solo']);
  assert.deepEqual(layer(r, 'bad-label', 'platform').spec.serviceDiscovery?.namespaces, ['bad-label']);
  // A namespace list the sidecar's schema refuses holds the platform layer of that tenant's namespaces only.
  const badName = render({ namespaces: [ns('Team_X', { 'tenant-dns.io/tenant': 'x' }), ns('ok')], clusterPolicies: [cdp('a', { serviceDiscovery: { isolation: 'tenant' } })] });
  assert.deepEqual(badName.held.map((h) => `${h.namespace}/${h.layer}`), ['Team_X/platform']);
  assert.match(badName.held[0]!.reason, /^spec\.serviceDiscovery\.namespaces\[0\]: .*\(the tenant's namespaces, rendered\)$/);
  assert.ok(cm(badName, 'ok', 'platform'));
  // Without an object that sets isolation tenant, no serviceDiscovery is rendered.
  const none = render({ namespaces: [ns('solo')], clusterPolicies: [cdp('b', { serviceDiscovery: { isolation: 'none', sharedNamespaces: ['default'] } })] });
  assert.equal(layer(none, 'solo', 'platform').spec.serviceDiscovery, undefined);
});

test('render: every rendered ConfigMap is a valid ConfigMap whose policy.yaml the sidecar loads, the tenant layer under its platform', () => {
  const r = render({
    namespaces: [ns('team-a'), ns('team-b', { 'tenant-dns.io/tenant': 'team-a' })],
    clusterPolicies: [cdp('base', { rules: [deny('tor', '*.onion')], serviceDiscovery: { isolation: 'tenant', sharedNamespaces: ['default'] } })],
    policies: [dp('team-b', 'p', { rules: [allow('x', 'x.example')], splitZones: [{ name: 's', names: ['s.example'], cname: 't.example' }] })],
  });
  assert.equal(r.configMaps.length, 4);
  for (const c of r.configMaps as any[]) {
    validateK8sObject(c);
    assert.deepEqual(Object.keys(c.data), ['policy.yaml']);
    assert.equal(c.metadata.labels['app.kubernetes.io/managed-by'], 'tenant-dns-controller');
    assert.equal(c.metadata.name, c.metadata.labels['tenant-dns.io/layer'] === 'platform' ? 'tenant-dns-platform' : 'tenant-dns-policy');
    assert.match(c.data['policy.yaml'], /^# The (platform|tenant) policy layer of namespace team-[ab], rendered by tenant-dns-controller/);
  }
  const platform = layer(r, 'team-b', 'platform');
  const tenant = parsePolicy((cm(r, 'team-b', 'tenant') as any).data['policy.yaml'], 'tenant', { platform: platformView(platform) });
  assert.deepEqual(tenant.spec.splitZones[0]!.resolveVia, 'default');
  // Settings come from the injector configuration.
  const named = settingsFromConfig(parseInjectorConfig({ clusterDns: '10.96.0.10:53', platformPolicyConfigMap: 'plat', tenantPolicyConfigMap: 'ten', tenantLabel: 'example.com/team' }));
  const r2 = renderAll({ namespaces: [ns('x', { 'example.com/team': 'blue' }), ns('y', { 'example.com/team': 'blue' })], clusterPolicies: [cdp('i', { serviceDiscovery: { isolation: 'tenant' } })], policies: [] }, named);
  assert.deepEqual(r2.configMaps.map((c: any) => c.metadata.name), ['plat', 'ten', 'plat', 'ten']);
  assert.deepEqual(parsePolicy((r2.configMaps[0] as any).data['policy.yaml'], 'p').spec.serviceDiscovery?.namespaces, ['x', 'y']);
});

test('render: a forward zone inside the cluster domain is refused with the configured domain', () => {
  const r = render({ namespaces: [ns('team-a')], policies: [dp('team-a', 'p', { forwardZones: [{ name: 'in', zones: ['svc.cluster.local'], upstreams: ['udp://10.0.0.1:53'] }] })] });
  assert.match(status(r, 'p').message, /^spec\.forwardZones\[0\]\.zones\[0\]: "svc\.cluster\.local" lies in the cluster zone cluster\.local/);
  assert.equal(status(r, 'p').reason, 'Invalid');
});

test('render: a ClusterDNSPolicy that conflicts in one namespace is refused there, named with it, and still applies where it does not', () => {
  const r = render({
    namespaces: [ns('both', { shared: 'yes' }), ns('only-b')],
    clusterPolicies: [cdp('a', { selector: { namespaceSelector: { matchLabels: { shared: 'yes' } } }, rules: [deny('dup', 'a.example')] }), cdp('b', { rules: [deny('dup', 'b.example')] })],
  });
  const b = status(r, 'b');
  assert.deepEqual([b.accepted, b.reason, b.namespaces], [false, 'Conflict', 2]);
  assert.match(b.message, /^spec\.rules\[0\]\.name: duplicate rule name "dup" \(also ClusterDNSPolicy\/a spec\.rules\[0\]\) \(in namespace both\)/);
  assert.deepEqual(r.held.map((h) => `${h.namespace}/${h.layer}`), ['both/platform']);
  assert.deepEqual(layer(r, 'only-b', 'platform').spec.rules.map((x) => x.names[0]), ['b.example']);
});
