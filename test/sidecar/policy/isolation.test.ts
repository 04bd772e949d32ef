import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compilePolicy } from '../../../sidecar/policy/compile.ts';
import { discoveryNamespace } from '../../../sidecar/policy/isolation.ts';
import { PolicyManager, parsePolicy, platformView } from '../../../sidecar/policy/manager.ts';
import { explain, validateFiles } from '../../../sidecar/policy/cli.ts';
import { SidecarError } from '../../../sidecar/errors.ts';
import { policy } from './helpers.ts';

const DOC = (spec: string) => `apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: t\nspec:\n${spec}`;
const ISOLATING = DOC('  serviceDiscovery:\n    isolation: tenant\n    namespaces: [team-a, team-a-jobs]\n    sharedNamespaces: [default]\n');

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tdns-isolation-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('discoveryNamespace: the label before svc or pod right below the cluster domain, for that name and every name below', () => {
  const cases: [string, string | undefined][] = [
    ['team-b.svc.cluster.local', 'team-b'],
    ['db.team-b.svc.cluster.local', 'team-b'],
    ['_p._tcp.svc.ns.svc.cluster.local', 'ns'], // an SRV name whose service is called "svc"
    ['host-0.db.team-b.svc.cluster.local', 'team-b'],
    ['10-0-0-1.team-b.pod.cluster.local', 'team-b'],
    ['svc.cluster.local', undefined],
    ['pod.cluster.local', undefined],
    ['cluster.local', undefined],
    ['db.team-b.other.cluster.local', undefined],
    ['team-b.svc.example.local', undefined], // another domain ending like it
    ['db.team\\.b.svc.cluster.local', 'team\\.b'], // an escaped dot stays inside its label
    ['db.team-b.svc\\.cluster.local', undefined],
  ];
  for (const [name, want] of cases) assert.equal(discoveryNamespace(name, 'cluster.local'), want, name);
  assert.equal(discoveryNamespace('db.team-b.svc.corp.k8s', 'corp.k8s'), 'team-b');
});

test('validation: only the platform layer may set serviceDiscovery (file:line and field), and tenant-isolation is a reserved rule name', (t) => {
  const dir = tempDir(t);
  const platform = join(dir, 'platform.yaml');
  writeFileSync(platform, ISOLATING);
  const tenant = join(dir, 'tenant.yaml');
  writeFileSync(tenant, ISOLATING);
  const r = validateFiles([tenant], { platformPolicy: platform });
  assert.equal(r.exitCode, 1);
  assert.deepEqual(r.output.trimEnd().split('\n'), [
    `${platform}: ok`,
    `${tenant}:7: spec.serviceDiscovery: only the platform's policy may set service-discovery isolation (a ClusterDNSPolicy); a tenant's policy cannot`,
  ]);
  // The sidecar's tenant file too, with or without a platform file.
  for (const platformPolicy of [platform, undefined]) {
    assert.throws(
      () => new PolicyManager({ policy: tenant, platformPolicy, watch: false }),
      (e: unknown) => e instanceof SidecarError && e.code === 'CONFIG_INVALID' && e.message.includes(`${tenant}:7: spec.serviceDiscovery: only the platform's policy`),
    );
  }
  // The tenant layer checked against the platform's view (as the control plane does).
  assert.throws(() => parsePolicy(ISOLATING, 'tenant.yaml', { platform: platformView(policy('{}')) }), /tenant\.yaml:7: spec\.serviceDiscovery/);

  const reserved = DOC('  rules:\n    - {name: ok, action: allow, names: [a.example]}\n    - {name: tenant-isolation, action: deny, names: [b.example]}\n');
  for (const file of ['platform.yaml', 'tenant.yaml']) {
    assert.throws(() => parsePolicy(reserved, file), new RegExp(`${file.replace('.', '\\.')}:8: spec\\.rules\\[1\\]\\.name: "tenant-isolation" is reserved`));
  }
});

test('compile: isolation is the platform\'s, sees the tenant\'s, the shared and the pod\'s own namespaces, and declares its decision series', () => {
  const c = compilePolicy({ platform: policy('serviceDiscovery: {isolation: tenant, namespaces: [team-a], sharedNamespaces: [default]}'), namespace: 'team-a-ci' });
  assert.deepEqual([...c.isolation!.visible].sort(), ['default', 'team-a', 'team-a-ci']);
  assert.deepEqual(c.ruleIds.at(-1), { action: 'deny', rule: 'tenant-isolation' });
  const none = compilePolicy({ platform: policy('serviceDiscovery: {isolation: none, namespaces: [team-a]}'), namespace: 'team-a' });
  assert.equal(none.isolation, undefined);
  assert.ok(!none.ruleIds.some((r) => r.rule === 'tenant-isolation'));
  assert.equal(compilePolicy({ namespace: 'team-a' }).isolation, undefined);
});

test('policy explain: an isolated name is denied by tenant-isolation, named with its namespace; the pod\'s own namespace resolves', (t) => {
  const dir = tempDir(t);
  const platform = join(dir, 'platform.yaml');
  writeFileSync(platform, ISOLATING);
  assert.equal(
    explain({ platformPolicy: platform, namespace: 'team-a', name: 'db.team-b.svc.cluster.local' }),
    [
      'query: db.team-b.svc.cluster.local A',
      'decided by: platform service-discovery isolation, rule "tenant-isolation" (namespace team-b is neither the pod\'s, nor its tenant\'s, nor shared)',
      'action: deny (logged)',
      'answer: NXDOMAIN with SOA cluster.local and EDE 15 (Blocked)',
      '',
    ].join('\n'),
  );
  assert.match(explain({ platformPolicy: platform, namespace: 'team-c', name: 'db.team-c.svc.cluster.local' }), /answer: forwarded to the cluster DNS/);
  assert.match(explain({ platformPolicy: platform, name: 'db.team-c.svc.cluster.local' }), /tenant-isolation/, 'without --namespace only the listed namespaces are visible');
  assert.match(explain({ platformPolicy: platform, name: 'db.team-b.svc.corp.k8s', clusterDomain: 'corp.k8s' }), /tenant-isolation/);
});
