import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, internalRoute, Router, ROUTE_MEMO_NAMES, type Route } from '../../../sidecar/route/classify.ts';
import { compilePolicy } from '../../../sidecar/policy/compile.ts';
import { compiled, policy } from '../policy/helpers.ts';

const ZONES = ['cluster.local', 'in-addr.arpa', 'ip6.arpa'];

const TENANT = [
  'rules:',
  '  - {name: no-com, action: deny, names: ["*.com"]}',
  '  - {name: shop, action: allow, names: [shop.example.com]}',
  '  - {name: audit, action: log, names: ["*.audit.test"]}',
  'splitZones:',
  '  - {name: kafka, names: ["*.kafka.test"], cname: vpce.example.net, resolveVia: corp}',
  '  - {name: in-cluster, names: [special.svc.cluster.local], addresses: [10.9.9.9]}',
  'forwardZones:',
  '  - {name: corp, zones: [corp.test], upstreams: ["udp://127.0.0.1:5300"]}',
].join('\n');
const PLATFORM = ['rules:', '  - {name: no-onion, action: deny, names: ["*.onion", "*.kafka.test"]}'].join('\n');

/** A route as one comparable line: kind, deciding rule, and where it goes. */
function line(r: Route): string {
  const rule = r.evaluation.decision.rule;
  if (r.kind === 'deny') return `deny ${rule}`;
  if (r.kind === 'split') return `split ${r.split.zone.name} ${rule}`;
  return `${r.kind} ${r.group} ${r.zone} ${rule}`;
}

test('classify: deny, then split, then cluster, then forward zones, then default; platform first', () => {
  const c = compiled(TENANT, PLATFORM);
  const cases: [string, string][] = [
    ['www.example.com', 'deny no-com'],
    ['shop.example.com', 'default default  shop'],
    ['b-1.kafka.test', 'deny platform:no-onion'], // the platform denies what the tenant splits
    ['x.onion', 'deny platform:no-onion'],
    ['special.svc.cluster.local', 'split in-cluster default'], // a split zone inside the cluster zone answers first
    ['kube-dns.kube-system.svc.cluster.local', 'cluster cluster cluster.local default'],
    ['4.3.2.1.in-addr.arpa', 'cluster cluster in-addr.arpa default'],
    ['git.corp.test', 'forward corp corp.test default'],
    ['a.audit.test', 'default default  audit'],
    ['example.org', 'default default  default'],
  ];
  for (const [name, want] of cases) assert.equal(line(classify(c, ZONES, name)), want, name);
});

test('classify: a route is frozen, and internal routes name the group they were sent through', () => {
  const r = classify(compiled(TENANT), ZONES, 'git.corp.test');
  assert.ok(Object.isFrozen(r));
  assert.deepEqual([internalRoute('default').kind, internalRoute('cluster').kind, internalRoute('corp').kind], ['default', 'cluster', 'forward']);
  assert.equal(internalRoute('corp').group, 'corp');
});

test('router: remembered routes equal classified ones past the memo size, and a new policy version forgets them', () => {
  const holder = { current: compiled(TENANT, PLATFORM) };
  const router = new Router(holder, ZONES);
  const names = ['www.example.com', 'shop.example.com', 'git.corp.test', 'x.svc.cluster.local', 'b.kafka.test'];
  for (let i = 0; i < ROUTE_MEMO_NAMES * 2 + 10; i++) names.push(`n${i}.${i % 2 ? 'com' : 'test'}`);
  for (const pass of [1, 2]) {
    for (const name of names) assert.equal(line(router.route(name)), line(classify(holder.current, ZONES, name)), `pass ${pass}: ${name}`);
  }
  assert.equal(router.route('www.example.com').kind, 'deny');
  holder.current = compiled('{}');
  assert.equal(router.route('www.example.com').kind, 'default', 'a reload acts on the next question');
});

test('layers: a tenant allow rule does not silence a platform log rule (log is an OR across layers)', () => {
  const c = compiled('rules:\n  - {name: quiet, action: allow, log: false, names: ["*.exfil.example"]}', 'rules:\n  - {name: watch, action: log, names: ["*.exfil.example"]}');
  const r = classify(c, ZONES, 'data.exfil.example');
  assert.equal(r.evaluation.decision.rule, 'quiet', 'the tenant rule decides');
  assert.equal(r.evaluation.decision.log, true, 'and the platform still logs it');
});

test('layers: a tenant forward zone named like a platform one gets its own group and cannot take over the platform zone', () => {
  const platform = 'forwardZones:\n  - {name: corp, zones: [corp.example], upstreams: ["udp://127.0.0.1:5301"]}';
  const tenant = 'forwardZones:\n  - {name: corp, zones: [other.example], upstreams: ["udp://127.0.0.1:5302"]}';
  const c = compiled(tenant, platform);
  const platformRoute = classify(c, ZONES, 'git.corp.example');
  const tenantRoute = classify(c, ZONES, 'x.other.example');
  assert.equal(platformRoute.kind === 'forward' && platformRoute.group, 'platform:corp');
  assert.equal(tenantRoute.kind === 'forward' && tenantRoute.group, 'corp');
  assert.deepEqual(c.forwardZoneList.map((z) => `${z.group} ${z.upstreams.join(',')}`), ['platform:corp udp://127.0.0.1:5301', 'corp udp://127.0.0.1:5302']);
});

test('isolation: names of namespaces the pod may not discover are denied by tenant-isolation before any rule or zone; the rest of the cluster domain is not affected', () => {
  const platform = 'serviceDiscovery: {isolation: tenant, namespaces: [team-a], sharedNamespaces: [default]}';
  const tenant = [
    'rules:',
    '  - {name: see-b, action: allow, names: ["*.team-b.svc.cluster.local"]}',
    'splitZones:',
    '  - {name: fake-b, names: [db.team-c.svc.cluster.local], addresses: [10.9.9.9]}',
  ].join('\n');
  const c = compilePolicy({ tenant: policy(tenant), platform: policy(platform), namespace: 'team-a-ci' });
  const cases: [string, string][] = [
    ['db.team-b.svc.cluster.local', 'deny tenant-isolation'], // a tenant allow rule cannot undo it
    ['db.team-c.svc.cluster.local', 'deny tenant-isolation'], // nor a tenant split zone
    ['10-0-0-1.team-b.pod.cluster.local', 'deny tenant-isolation'],
    ['team-b.svc.cluster.local', 'deny tenant-isolation'],
    ['_http._tcp.svc.team-b.svc.cluster.local', 'deny tenant-isolation'],
    ['db.team-a.svc.cluster.local', 'cluster cluster cluster.local default'],
    ['db.team-a-ci.svc.cluster.local', 'cluster cluster cluster.local default'], // the pod's own namespace
    ['kubernetes.default.svc.cluster.local', 'cluster cluster cluster.local default'],
    ['_http._tcp.svc.team-a.svc.cluster.local', 'cluster cluster cluster.local default'],
    ['svc.cluster.local', 'cluster cluster cluster.local default'],
    ['cluster.local', 'cluster cluster cluster.local default'],
    ['x.team-b.other.cluster.local', 'cluster cluster cluster.local default'],
    ['1.0.96.10.in-addr.arpa', 'cluster cluster in-addr.arpa default'], // PTR names are not isolated
    ['db.team-b.svc.example', 'default default  default'],
  ];
  for (const [name, want] of cases) assert.equal(line(classify(c, ZONES, name)), want, name);
  const denied = classify(c, ZONES, 'db.team-b.svc.cluster.local');
  assert.deepEqual(denied.evaluation.decision, { action: 'deny', rule: 'tenant-isolation', log: true });
  assert.deepEqual({ ...denied.evaluation.response }, { type: 'nxdomain', addresses: [], ttl: 30 });
  assert.equal(denied.evaluation.soaZone, 'cluster.local');
  // Without isolation the same names go to the cluster DNS.
  assert.equal(line(classify(compilePolicy({ tenant: policy(tenant) }), ZONES, 'db.team-b.svc.cluster.local')), 'cluster cluster cluster.local see-b');
});

test('isolation: a platform deny rule keeps its name where it also matches, and the platform default response does not change the isolation answer', () => {
  const platform = [
    'defaultResponse: {type: refused}',
    'rules:',
    '  - {name: no-secrets, action: deny, names: ["secrets.team-a.svc.cluster.local"]}',
    'serviceDiscovery: {isolation: tenant, namespaces: [team-a]}',
  ].join('\n');
  const c = compilePolicy({ platform: policy(platform), namespace: 'team-a' });
  assert.equal(line(classify(c, ZONES, 'secrets.team-a.svc.cluster.local')), 'deny platform:no-secrets');
  assert.equal(classify(c, ZONES, 'db.team-b.svc.cluster.local').evaluation.response?.type, 'nxdomain', 'a search-list walk must go on past it');
});
