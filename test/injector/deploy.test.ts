/**
 * deploy/: `kubectl kustomize` renders the base and the cert-manager overlay,
 * every rendered object is schema-valid and the pieces agree with each other
 * (names, ports, paths, selectors, the injector's webhook paths); the
 * NetworkPolicies leave the injector its HTTPS port and, through the
 * tenant-namespace component as deploy/README.md includes it, the sidecar's
 * metrics port to the monitoring namespace; gen-certs.sh
 * makes a certificate the webhook Service name verifies against, and patches
 * the caBundle of both webhooks.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseInjectorConfigYaml } from '../../injector/config.ts';
import { Keys, METRICS_PORT_NAME } from '../../injector/names.ts';
import { WEBHOOK_PATHS } from '../../injector/server.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const DEPLOY = join(ROOT, 'deploy');
/** The kubectl to render with (TENANT_DNS_KUBECTL overrides, e.g. to try Debian's older kubectl). */
const KUBECTL = process.env.TENANT_DNS_KUBECTL || 'kubectl';
const version = spawnSync(KUBECTL, ['version', '--client'], { encoding: 'utf8' });
const NO_KUBECTL = version.status === 0 ? false : 'kubectl is not installed (needed for `kubectl kustomize`)';
// Components need kustomize >= 3.7; Debian's kubectl 1.20 embeds kustomize 2 (and prints no Kustomize Version).
const kustomizeMajor = Number(/Kustomize Version: v(\d+)/.exec(version.stdout ?? '')?.[1] ?? 0);
const NO_COMPONENTS = NO_KUBECTL || (kustomizeMajor >= 4 ? false : 'the kustomize inside this kubectl is too old for components');

function render(dir: string): any[] {
  const out = execFileSync(KUBECTL, ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseAllDocuments(out).map((d) => d.toJS());
}

const find = (objs: any[], kind: string, name?: string) => {
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  assert.ok(o, `${kind} ${name ?? ''} rendered`);
  return o;
};

test('deploy: the base renders and every object is schema-valid', { skip: NO_KUBECTL }, () => {
  const objs = render(DEPLOY);
  assert.deepEqual(objs.map((o) => o.kind).sort(), [
    'ClusterRole',
    'ClusterRoleBinding',
    'ConfigMap',
    'CustomResourceDefinition',
    'CustomResourceDefinition',
    'Deployment',
    'MutatingWebhookConfiguration',
    'Namespace',
    'NetworkPolicy',
    'PodDisruptionBudget',
    'Service',
    'ServiceAccount',
    'ValidatingWebhookConfiguration',
  ]);
  for (const o of objs) validateK8sObject(o);
  const clusterScoped = ['CustomResourceDefinition', 'Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];
  for (const o of objs) if (!clusterScoped.includes(o.kind)) assert.equal(o.metadata.namespace, 'tenant-dns-system', `${o.kind} namespace`);
});

test('deploy: the injector Deployment is highly available, probed and restricted', { skip: NO_KUBECTL }, () => {
  const objs = render(DEPLOY);
  const dep = find(objs, 'Deployment', 'tenant-dns-injector');
  const pod = dep.spec.template;
  assert.equal(dep.spec.replicas, 2);
  assert.ok(pod.spec.affinity.podAntiAffinity);
  assert.equal(pod.metadata.labels['tenant-dns.io/inject'], 'false');
  const c = pod.spec.containers[0];
  assert.equal(c.args[0], 'injector');
  for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.equal(c[p].httpGet.scheme, 'HTTPS', p);
  assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(pod.spec.securityContext.runAsNonRoot, true);
  assert.equal(pod.spec.securityContext.seccompProfile.type, 'RuntimeDefault');
  const pdb = find(objs, 'PodDisruptionBudget');
  assert.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels);
  assert.equal(pdb.spec.minAvailable, 1);
  const svc = find(objs, 'Service', 'tenant-dns-injector');
  assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
  assert.equal(svc.spec.ports[0].targetPort, c.ports[0].name);
  // The args point into the mounted volumes; the ConfigMap is the injector's config and valid.
  const mounts = Object.fromEntries(c.volumeMounts.map((m: any) => [m.name, m.mountPath]));
  const vols = Object.fromEntries(pod.spec.volumes.map((v: any) => [v.name, v]));
  const arg = (flag: string) => c.args.find((a: string) => a.startsWith(`${flag}=`))?.split('=')[1];
  assert.ok(arg('--tls-cert')?.startsWith(mounts.tls + '/'));
  assert.ok(arg('--config')?.startsWith(mounts.config + '/'));
  const cm = find(objs, 'ConfigMap');
  assert.equal(vols.config.configMap.name, cm.metadata.name);
  const config = parseInjectorConfigYaml(cm.data[arg('--config')!.split('/').pop()!], 'deploy/base/config.yaml');
  assert.equal(config.image.split(':')[0], c.image.split(':')[0], 'the sidecar and injector come from one image');
  assert.equal(vols.tls.secret.secretName, 'tenant-dns-injector-tls');
  // RBAC: the namespace watch cache needs get/list/watch on namespaces, nothing else.
  const role = find(objs, 'ClusterRole');
  assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] }]);
  const binding = find(objs, 'ClusterRoleBinding');
  assert.deepEqual(binding.subjects[0], { kind: 'ServiceAccount', name: pod.spec.serviceAccountName, namespace: 'tenant-dns-system' });
});

test('deploy: the injector accepts connections on its HTTPS port only, from any source', { skip: NO_KUBECTL }, () => {
  const objs = render(DEPLOY);
  const dep = find(objs, 'Deployment', 'tenant-dns-injector');
  const np = find(objs, 'NetworkPolicy', 'tenant-dns-injector');
  assert.deepEqual(np.spec.podSelector, { matchLabels: dep.spec.selector.matchLabels });
  assert.deepEqual(np.spec.policyTypes, ['Ingress']);
  // One rule: the container's one port (the Service's target, probes and /metrics), no `from`: the API server's source is cluster-specific.
  const ports = dep.spec.template.spec.containers.flatMap((c: any) => c.ports ?? []);
  assert.deepEqual(ports.map((p: any) => p.name), ['https']);
  assert.deepEqual(np.spec.ingress, [{ ports: [{ port: ports[0].name, protocol: 'TCP' }] }]);
  assert.equal(find(objs, 'Service').spec.ports[0].targetPort, ports[0].name);
});

/** The tenant-namespace component rendered for namespace team-a, through the kustomization deploy/README.md shows. */
function renderTenantNamespace(): any[] {
  const readme = readFileSync(join(DEPLOY, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## 5. Network policies'));
  const example = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(example !== undefined && example.includes('kind: Kustomization'), 'deploy/README.md shows the tenant namespace kustomization');
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-tenant-ns-'));
  try {
    const component = relative(dir, join(DEPLOY, 'components', 'tenant-namespace'));
    writeFileSync(join(dir, 'kustomization.yaml'), example.replace(/\S*deploy\/components\/tenant-namespace/, component));
    return render(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('deploy: in a tenant namespace, the sidecar metrics port of injected pods accepts the monitoring namespace only', { skip: NO_COMPONENTS }, () => {
  const objs = renderTenantNamespace();
  assert.deepEqual(objs.map((o) => o.kind), ['NetworkPolicy']);
  const np = objs[0];
  validateK8sObject(np);
  assert.equal(np.metadata.namespace, 'team-a');
  // Every pod the injector labelled (the label its validating webhook keeps), and only those.
  assert.deepEqual(np.spec.podSelector, { matchExpressions: [{ key: Keys.podTenant, operator: 'Exists' }] });
  assert.deepEqual(np.spec.policyTypes, ['Ingress']);
  // The README's patch moved the allowed namespace from `monitoring` to `prometheus`.
  assert.deepEqual(np.spec.ingress, [
    {
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'prometheus' } } }],
      ports: [{ port: METRICS_PORT_NAME, protocol: 'TCP' }],
    },
  ]);
  const unpatched = parseAllDocuments(readFileSync(join(DEPLOY, 'components', 'tenant-namespace', 'networkpolicy.yaml'), 'utf8'))[0]!.toJS();
  assert.deepEqual(unpatched.spec.ingress[0].from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
});

/** The parts both webhooks share: review versions, timeout, the Service, the namespaces, no mirror pods. */
function checkWebhook(objs: any[], hook: any, path: string): void {
  assert.deepEqual(hook.admissionReviewVersions, ['v1']);
  assert.equal(hook.sideEffects, 'None');
  assert.equal(hook.timeoutSeconds, 5);
  assert.ok(['Fail', 'Ignore'].includes(hook.failurePolicy));
  const svc = find(objs, 'Service', hook.clientConfig.service.name);
  assert.equal(hook.clientConfig.service.namespace, svc.metadata.namespace);
  assert.equal(hook.clientConfig.service.port, svc.spec.ports[0].port);
  assert.equal(hook.clientConfig.service.path, path);
  assert.ok(Object.hasOwn(WEBHOOK_PATHS, path), `the injector serves ${path}`);
  const ns = hook.namespaceSelector.matchExpressions;
  assert.deepEqual(ns[0], { key: 'tenant-dns.io/inject', operator: 'In', values: ['enabled'] });
  assert.deepEqual(new Set(ns[1].values), new Set(['kube-system', 'kube-public', 'kube-node-lease', svc.metadata.namespace]));
  // No objectSelector: the opt-out label is the injector's to judge (its optOut setting, the namespace label).
  assert.equal(hook.objectSelector, undefined);
  assert.deepEqual(hook.matchConditions.map((m: any) => m.name), ['not-mirror-pod']);
  assert.match(hook.matchConditions[0].expression, /kubernetes\.io\/config\.mirror/);
}

test('deploy: the mutating webhook sees every new pod of labelled namespaces but mirror pods, and may be reinvoked', { skip: NO_KUBECTL }, () => {
  const objs = render(DEPLOY);
  const hook = find(objs, 'MutatingWebhookConfiguration').webhooks[0];
  checkWebhook(objs, hook, '/mutate');
  assert.equal(hook.reinvocationPolicy, 'IfNeeded');
  assert.deepEqual(hook.rules, [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
});

test('deploy: the validating webhook checks CREATE and UPDATE of the same pods, not their subresources', { skip: NO_KUBECTL }, () => {
  const objs = render(DEPLOY);
  const config = find(objs, 'ValidatingWebhookConfiguration');
  const mutating = find(objs, 'MutatingWebhookConfiguration');
  assert.equal(config.webhooks.length, 1);
  const hook = config.webhooks[0];
  checkWebhook(objs, hook, '/validate');
  // pods only: pods/ephemeralcontainers (kubectl debug) and pods/status are other resources.
  assert.deepEqual(hook.rules, [{ operations: ['CREATE', 'UPDATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
  assert.deepEqual(hook.namespaceSelector, mutating.webhooks[0].namespaceSelector);
  assert.equal(hook.failurePolicy, 'Fail', 'a pod that cannot be validated is not admitted');
});

test('deploy: failurePolicy is set in exactly one place', () => {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (/\.ya?ml$/.test(e.name)) files.push(join(d, e.name));
    }
  };
  walk(DEPLOY);
  const hits = files.filter((f) => /^\s*failurePolicy:/m.test(readFileSync(f, 'utf8')) || /failurePolicy/.test(readFileSync(f, 'utf8').replace(/^\s*#.*$/gm, '')));
  assert.deepEqual(hits.map((f) => f.slice(DEPLOY.length + 1)), ['base/webhook.yaml']);
});

test('deploy: the cert-manager overlay adds the Certificate and CA injection', { skip: NO_COMPONENTS }, () => {
  const objs = render(join(DEPLOY, 'overlays', 'cert-manager'));
  for (const o of objs) if (!o.apiVersion.startsWith('cert-manager.io/')) validateK8sObject(o);
  const cert = find(objs, 'Certificate');
  const issuer = find(objs, 'Issuer');
  assert.equal(cert.spec.issuerRef.name, issuer.metadata.name);
  assert.equal(cert.metadata.namespace, 'tenant-dns-system');
  assert.equal(issuer.metadata.namespace, 'tenant-dns-system');
  const dep = find(objs, 'Deployment');
  assert.equal(cert.spec.secretName, dep.spec.template.spec.volumes.find((v: any) => v.name === 'tls').secret.secretName);
  const svc = find(objs, 'Service');
  assert.ok(cert.spec.dnsNames.includes(`${svc.metadata.name}.${svc.metadata.namespace}.svc`));
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
    const hook = find(objs, kind);
    assert.equal(hook.metadata.annotations['cert-manager.io/inject-ca-from'], `${cert.metadata.namespace}/${cert.metadata.name}`, kind);
  }
});

test('deploy: gen-certs.sh makes a certificate for the Service and patches the caBundle of both webhooks', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-gencerts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(DEPLOY, 'scripts', 'gen-certs.sh');
  execFileSync('sh', [script, '--no-apply', '--out', join(dir, 'pki'), '--days', '2'], { stdio: 'pipe' });
  const verify = execFileSync('openssl', ['verify', '-CAfile', join(dir, 'pki', 'ca.crt'), '-verify_hostname', 'tenant-dns-injector.tenant-dns-system.svc', join(dir, 'pki', 'tls.crt')], { encoding: 'utf8' });
  assert.match(verify, /OK/);
  // With a stand-in kubectl that records its arguments and stdin.
  const bin = join(dir, 'bin');
  execFileSync('mkdir', ['-p', bin]);
  writeFileSync(join(bin, 'kubectl'), `#!/bin/sh\nprintf "%s\\n" "$*" >> "${dir}/calls"\ncase "$*" in *"create secret"*) echo "kind: Secret";; *"apply -f -"*) cat >> "${dir}/applied";; esac\n`);
  chmodSync(join(bin, 'kubectl'), 0o755);
  execFileSync('sh', [script, '--namespace', 'dns', '--webhook', 'hook'], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, stdio: 'pipe' });
  // The two sides of the pipe log in either order.
  const calls = readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n');
  assert.equal(calls.length, 4);
  assert.ok(calls.slice(0, 2).some((c) => /^-n dns create secret tls tenant-dns-injector-tls --cert=\S+ --key=\S+ --dry-run=client -o yaml$/.test(c)), calls.join('\n'));
  assert.ok(calls.slice(0, 2).includes('apply -f -'));
  const patch = '--type=json -p \\[\\{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"[A-Za-z0-9+/=]+"\\}\\]$';
  assert.match(calls[2], new RegExp(`^patch mutatingwebhookconfiguration hook ${patch}`));
  assert.match(calls[3], new RegExp(`^patch validatingwebhookconfiguration hook ${patch}`));
  const bundle = (call: string) => /"value":"([^"]+)"/.exec(call)![1];
  const ca = Buffer.from(bundle(calls[2]), 'base64').toString('utf8');
  assert.match(ca, /^-----BEGIN CERTIFICATE-----/);
  assert.equal(bundle(calls[3]), bundle(calls[2]), 'the same CA in both');
  assert.match(readFileSync(join(dir, 'applied'), 'utf8'), /kind: Secret/);
});
