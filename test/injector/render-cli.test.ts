import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { registerInjectorCommands } from '../../injector/cli.ts';
import { fieldSegments, runRenderCommand } from '../../injector/render-cli.ts';
import { parsePolicy } from '../../sidecar/policy/manager.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const EXAMPLES = ['namespaces.yaml', 'platform-baseline.yaml', 'regulated.yaml'].map((f) => join(ROOT, 'examples', 'control-plane', f));
const TENANT_EXAMPLES = ['allowlist.yaml', 'forward-zone.yaml', 'static-split.yaml', 'kafka-privatelink.yaml', 'frontend-deny-com.yaml'].map((f) => join(ROOT, 'examples', f));

/** Runs the command with captured output; `stdin` is what `-` reads. */
function run(opts: Parameters<typeof runRenderCommand>[0], stdin = '') {
  const out: string[] = [];
  const err: string[] = [];
  const code = runRenderCommand(opts, { readStdin: () => stdin, stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
  return { code, out: out.join(''), err: err.join('') };
}

/** Runs `fn` in a temporary directory. */
function inTmp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-render-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('render: every example renders: two valid ConfigMaps per injected namespace, each a policy the sidecar loads', () => {
  const r = run({ filename: [...EXAMPLES, ...TENANT_EXAMPLES] });
  assert.equal(r.code, 0, r.err);
  const docs = parseAllDocuments(r.out).map((d) => d.toJS());
  assert.equal(docs.length, 12);
  for (const d of docs) {
    validateK8sObject(d);
    parsePolicy(d.data['policy.yaml'], `${d.metadata.namespace}/${d.metadata.name}`);
  }
  const payments = docs.find((d) => d.metadata.namespace === 'payments' && d.metadata.name === 'tenant-dns-platform');
  assert.equal(payments.metadata.annotations['tenant-dns.io/rendered-from'], 'ClusterDNSPolicy/baseline,ClusterDNSPolicy/regulated');
  const policy = parsePolicy(payments.data['policy.yaml'], 'payments');
  assert.deepEqual(policy.spec.serviceDiscovery, { isolation: 'tenant', namespaces: ['payments', 'payments-batch'], sharedNamespaces: ['default', 'kube-system'] });
  // examples/platform-policy.yaml is a DNSPolicy without a namespace: it lands in -n's namespace, which is not injected.
  const extra = run({ filename: [...EXAMPLES, join(ROOT, 'examples', 'platform-policy.yaml')] });
  assert.equal(extra.code, 0, extra.err);
  assert.match(extra.err, /DNSPolicy default\/platform: namespace default is not injected/);
});

test('render: an object that would not be accepted is an error: FILE:LINE: field: message, exit 1, nothing on stdout', () => {
  inTmp((dir) => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      [
        'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n  labels: {tenant-dns.io/inject: enabled}',
        'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: a\n  namespace: team-a\nspec:\n  rules:\n    - name: ads\n      action: deny\n      names: [ads.example]',
        'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: b\n  namespace: team-a\nspec:\n  rules:\n    - name: ok\n      action: allow\n      names:\n        - ok.example\n        - "a..b"\n    - name: ads\n      action: deny\n      names: [x.example]',
      ].join('\n---\n') + '\n',
    );
    const r = run({ filename: [file] });
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    const lines = r.err.trim().split('\n');
    assert.deepEqual(lines, [`${file}:29: spec.rules[0].names[1]: empty label in "a..b"`, 'tenant-dns render: 1 object would not be accepted; nothing written']);
    // Fixed glob: now the duplicate rule name across objects is the problem, on the later object's line.
    writeFileSync(file, readFileSync(file, 'utf8').replace('"a..b"', 'a.b.example'));
    const r2 = run({ filename: [file] });
    assert.equal(r2.code, 1);
    assert.match(r2.err, new RegExp(`^${file.replace(/[.]/g, '\\.')}:30: spec\\.rules\\[1\\]\\.name: duplicate rule name "ads" \\(also DNSPolicy/a spec\\.rules\\[0\\]\\)$`, 'm'));
  });
});

test('render: stdin, Lists, other kinds left out with a note, -n for DNSPolicies without a namespace, --config names', () => {
  const list = JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'apps', labels: { 'tenant-dns.io/inject': 'enabled' } } },
      { apiVersion: 'tenant-dns.io/v1alpha1', kind: 'DNSPolicy', metadata: { name: 'p' }, spec: { defaultAction: 'deny' } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 's' } },
    ],
  });
  inTmp((dir) => {
    writeFileSync(join(dir, 'c.yaml'), 'platformPolicyConfigMap: plat\ntenantPolicyConfigMap: ten\n');
    const r = run({ filename: ['-'], namespace: 'apps', config: join(dir, 'c.yaml') }, list);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, /^tenant-dns render: <stdin>:1: left out: v1 ConfigMap is not a Namespace, ClusterDNSPolicy or DNSPolicy/);
    const docs = parseAllDocuments(r.out).map((d) => d.toJS());
    assert.deepEqual(docs.map((d) => `${d.metadata.namespace}/${d.metadata.name}`), ['apps/plat', 'apps/ten']);
    assert.equal(parsePolicy(docs[1].data['policy.yaml'], 't').spec.defaultAction, 'deny');
  });
});

test('render: bad YAML, a missing file, the same object twice and a bad config exit 1 with a message', () => {
  assert.match(run({ filename: ['-'] }, 'a: [\n').err, /^tenant-dns render: <stdin>:\d+: \(document\): YAML syntax/);
  assert.match(run({ filename: ['/nonexistent.yaml'] }).err, /^tenant-dns render: reading \/nonexistent\.yaml: ENOENT/);
  const none = run({ filename: ['-'] }, 'apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n');
  assert.deepEqual([none.code, none.out], [0, '']);
  assert.match(none.err, /no injected namespace among the Namespaces given \(label tenant-dns\.io\/inject=enabled, not excluded\): nothing to render/);
  const twice = 'apiVersion: tenant-dns.io/v1alpha1\nkind: ClusterDNSPolicy\nmetadata: {name: x}\n---\napiVersion: tenant-dns.io/v1alpha1\nkind: ClusterDNSPolicy\nmetadata: {name: x}\n';
  const r = run({ filename: ['-'] }, twice);
  assert.equal(r.code, 1);
  assert.match(r.err, /<stdin>:5: ClusterDNSPolicy\/x is also defined at <stdin>:1/);
  inTmp((dir) => {
    writeFileSync(join(dir, 'c.yaml'), 'tenantLabel: 7\n');
    assert.match(run({ filename: ['-'], config: join(dir, 'c.yaml') }).err, /\/tenantLabel \(line 1\)/);
  });
});

test('render: field names become YAML paths', () => {
  assert.deepEqual(fieldSegments('spec.rules[12].names[0]'), ['spec', 'rules', 12, 'names', 0]);
  assert.deepEqual(fieldSegments('(document)'), []);
  assert.deepEqual(fieldSegments('spec.selector.namespaceSelector.matchExpressions[0].values'), ['spec', 'selector', 'namespaceSelector', 'matchExpressions', 0, 'values']);
});

test('cli: render is registered with -f (several files, repeatable), --config, -n and -o', async (t) => {
  const program = new Command('tenant-dns').exitOverride();
  registerInjectorCommands(program);
  const render = program.commands.find((c) => c.name() === 'render');
  assert.ok(render);
  for (const flag of ['--filename', '--config', '--namespace', '--output']) assert.ok(render.options.some((o) => o.long === flag), flag);
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-render-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'out.yaml');
  await program.parseAsync(['node', 'tenant-dns', 'render', '-f', EXAMPLES[0]!, EXAMPLES[1]!, '-f', TENANT_EXAMPLES[0]!, '-o', out]);
  const docs = parseAllDocuments(readFileSync(out, 'utf8')).map((d) => d.toJS());
  const tenant = docs.find((d) => d.metadata.namespace === 'payments' && d.metadata.name === 'tenant-dns-policy');
  assert.equal(tenant.metadata.annotations['tenant-dns.io/rendered-from'], 'DNSPolicy/payments-allowlist');
});

test('render: split horizon reads Ingress, Service, HTTPRoute and Gateway objects from the files', () => {
  const objects = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'tenant-dns.io/inject': 'enabled', 'tenant-dns.io/tenant': 'acme' } } },
    {
      apiVersion: 'tenant-dns.io/v1alpha1',
      kind: 'ClusterDNSPolicy',
      metadata: { name: 'acme' },
      spec: { selector: { tenants: ['acme'] }, domains: ['acme.example'], splitHorizon: { enabled: true, gateways: [{ namespace: 'shop', name: 'gw', addresses: ['10.96.0.90'] }] } },
    },
    { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'www', namespace: 'shop' }, spec: { rules: [{ host: 'www.acme.example' }] }, status: { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'shop', annotations: { 'tenant-dns.io/hostname': 'api.acme.example' } }, spec: { type: 'LoadBalancer', clusterIP: '10.96.0.5' }, status: { loadBalancer: { ingress: [{ ip: '203.0.113.11' }] } } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'shop' }, status: { addresses: [{ value: '203.0.113.12' }] } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'shop' }, spec: { hostnames: ['route.acme.example'], parentRefs: [{ name: 'gw' }] } },
  ];
  const r = run({ filename: ['-'] }, objects.map((o) => JSON.stringify(o)).join('\n---\n'));
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  const platform = parseAllDocuments(r.out).map((d) => d.toJS()).find((d) => d.metadata.name === 'tenant-dns-platform');
  // The Ingress has no class, hence no internal address: it keeps resolving publicly.
  assert.deepEqual(parsePolicy(platform.data['policy.yaml'], 'p').spec.splitZones.map((z) => [z.names, z.addresses]), [
    [['api.acme.example'], ['10.96.0.5']],
    [['route.acme.example'], ['10.96.0.90']],
  ]);
});
