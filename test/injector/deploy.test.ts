/**
 * deploy/: `kubectl kustomize` renders the base and the cert-manager overlay,
 * every rendered object is schema-valid and the pieces agree with each other
 * (names, ports, paths, selectors, the injector's webhook paths); the
 * NetworkPolicies leave the injector its HTTPS port and, through the
 * tenant-namespace component as deploy/README.md includes it, the sidecar's
 * metrics port to the monitoring namespace; the cert-manager overlay is a CA
 * chain whose CA (not the serving certificate) both webhooks trust;
 * gen-certs.sh makes a certificate the webhook Service name verifies against,
 * keeps its CA across runs, and patches the caBundle of both webhooks.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { parseInjectorConfigYaml } from '../../injector/config.ts';
import { CONTROLLER_LEASE_NAME, Keys, METRICS_PORT_NAME } from '../../injector/names.ts';
import { WEBHOOK_PATHS } from '../../injector/server.ts';
import { renderedConfigMapNames } from '../../injector/validate.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';
import { repositoryFiles } from '../helpers/repo-files.ts';

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
    'ClusterRole',
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
    'PriorityClass',
    'Role',
    'RoleBinding',
    'Service',
    'ServiceAccount',
    'ValidatingWebhookConfiguration',
  ]);
  for (const o of objs) validateK8sObject(o);
  const clusterScoped = ['CustomResourceDefinition', 'Namespace', 'PriorityClass', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];
  for (const o of objs) if (!clusterScoped.includes(o.kind)) assert.equal(o.metadata.namespace, 'tenant-dns-system', `${o.kind} namespace`);
  // Tenants get DNSPolicy (and nothing else of ours) through the built-in roles; ClusterDNSPolicy, the rendered
  // ConfigMaps and the policies' status stay out of every aggregated role.
  const aggregated = objs.filter((o) => o.kind === 'ClusterRole' && Object.keys(o.metadata.labels ?? {}).some((k) => k.startsWith('rbac.authorization.k8s.io/aggregate-to-')));
  assert.deepEqual(aggregated.map((o) => o.metadata.name).sort(), ['tenant-dns-dnspolicy-edit', 'tenant-dns-dnspolicy-view']);
  for (const role of aggregated) for (const rule of role.rules) assert.deepEqual(rule.resources, ['dnspolicies'], `${role.metadata.name} grants only dnspolicies`);
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
  // Its own PriorityClass: admission in injected namespaces waits on it, so it outranks every workload it admits.
  const priority = find(objs, 'PriorityClass', pod.spec.priorityClassName);
  assert.equal(priority.globalDefault, false, 'the class is the injector\'s, not every pod\'s');
  assert.equal(priority.value, 1_000_000_000, 'the highest value outside the system-* classes');
  assert.notEqual(priority.preemptionPolicy, 'Never');
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
  // RBAC: namespaces for the tenant lookup; the controller reads the policy objects, writes their status and the
  // rendered ConfigMaps (no delete, no Secrets), and elects its leader with one Lease in its own namespace.
  const role = find(objs, 'ClusterRole', 'tenant-dns-injector');
  assert.deepEqual(role.rules, [
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
    { apiGroups: ['tenant-dns.io'], resources: ['dnspolicies', 'clusterdnspolicies'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['tenant-dns.io'], resources: ['dnspolicies/status', 'clusterdnspolicies/status'], verbs: ['update', 'patch'] },
    { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['networking.k8s.io'], resources: ['ingresses'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['gateway.networking.k8s.io'], resources: ['gateways', 'httproutes'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ]);
  const binding = find(objs, 'ClusterRoleBinding');
  assert.deepEqual(binding.subjects[0], { kind: 'ServiceAccount', name: pod.spec.serviceAccountName, namespace: 'tenant-dns-system' });
  const lease = find(objs, 'Role', 'tenant-dns-injector-leader-election');
  assert.equal(lease.metadata.namespace, 'tenant-dns-system');
  assert.deepEqual(lease.rules, [
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [CONTROLLER_LEASE_NAME], verbs: ['get', 'update'] },
  ]);
  assert.deepEqual(find(objs, 'RoleBinding').roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: lease.metadata.name });
  assert.deepEqual(find(objs, 'RoleBinding').subjects, [binding.subjects[0]]);
  // The controller's user as the webhook sees it is this ServiceAccount; it knows its pod and namespace.
  assert.equal(config.controllerUsername, `system:serviceaccount:${dep.metadata.namespace}:${pod.spec.serviceAccountName}`);
  assert.ok(c.args.includes('--controller=true'));
  const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
  assert.deepEqual([env.POD_NAME, env.POD_NAMESPACE], ['metadata.name', 'metadata.namespace']);
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
  assert.deepEqual(config.webhooks.map((w: any) => w.name), ['validate.tenant-dns.io', 'configmaps.validate.tenant-dns.io']);
  const hook = config.webhooks[0];
  checkWebhook(objs, hook, '/validate');
  // pods only: pods/ephemeralcontainers (kubectl debug) and pods/status are other resources.
  assert.deepEqual(hook.rules, [{ operations: ['CREATE', 'UPDATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
  assert.deepEqual(hook.namespaceSelector, mutating.webhooks[0].namespaceSelector);
  assert.equal(hook.failurePolicy, 'Fail', 'a pod that cannot be validated is not admitted');
});

test('deploy: the validating webhook sees writes of the two rendered policy ConfigMaps only, by name', { skip: NO_KUBECTL }, () => {
  const objs = render(DEPLOY);
  const config = find(objs, 'ValidatingWebhookConfiguration');
  const [pods, hook] = config.webhooks;
  assert.deepEqual(hook.rules, [{ operations: ['CREATE', 'UPDATE', 'DELETE'], apiGroups: [''], apiVersions: ['v1'], resources: ['configmaps'], scope: 'Namespaced' }]);
  assert.deepEqual(hook.namespaceSelector, pods.namespaceSelector, 'the same (injected) namespaces');
  assert.deepEqual({ ...hook.clientConfig, caBundle: undefined }, { ...pods.clientConfig, caBundle: undefined }, 'served by the same /validate');
  assert.equal(hook.failurePolicy, 'Fail', 'nobody rewrites rendered policy while the injector cannot check who it is');
  assert.equal(hook.objectSelector, undefined, 'labels are the writer\'s to set; the name is what counts');
  // The names in the condition are the ones the injector protects with the shipped config (both branches).
  const cm = find(objs, 'ConfigMap');
  const injector = parseInjectorConfigYaml(Object.values(cm.data)[0] as string, 'deploy/base/config.yaml');
  const [condition] = hook.matchConditions;
  const [onDelete, onWrite] = condition.expression.split(/\s:\s/);
  assert.match(onDelete, /^request\.operation == 'DELETE'\s*\?.*oldObject\.metadata\.name in \[/, 'DELETE carries no object: the old one is named');
  assert.match(onWrite, /object\.metadata\.name in \[/);
  assert.doesNotMatch(onWrite, /oldObject/);
  const listed = (branch: string) => /in \[([^\]]*)\]/.exec(branch)![1].split(',').map((n) => n.trim().replace(/^'|'$/g, ''));
  assert.deepEqual(listed(onDelete), [...renderedConfigMapNames(injector)]);
  assert.deepEqual(listed(onWrite), [...renderedConfigMapNames(injector)]);
});

test('deploy: failurePolicy is set in exactly one place', () => {
  const files = [...repositoryFiles(DEPLOY)].filter((f) => /\.ya?ml$/.test(f));
  const hits = files.filter((f) => /^\s*failurePolicy:/m.test(readFileSync(f, 'utf8')) || /failurePolicy/.test(readFileSync(f, 'utf8').replace(/^\s*#.*$/gm, '')));
  assert.deepEqual(hits.map((f) => f.slice(DEPLOY.length + 1)), ['base/webhook.yaml']);
});

test('deploy: the cert-manager overlay issues the serving certificate from its own CA and injects the CA, not the leaf, into both webhooks', { skip: NO_COMPONENTS }, () => {
  const objs = render(join(DEPLOY, 'overlays', 'cert-manager'));
  for (const o of objs) if (!o.apiVersion.startsWith('cert-manager.io/')) validateK8sObject(o);
  const certManager = objs.filter((o) => o.apiVersion === 'cert-manager.io/v1');
  for (const o of certManager) assert.equal(o.metadata.namespace, 'tenant-dns-system', `${o.kind} ${o.metadata.name}`);
  const issuerOf = (cert: any) => {
    assert.equal(cert.spec.issuerRef.kind, 'Issuer', `${cert.metadata.name} names a namespaced Issuer`);
    return find(certManager, 'Issuer', cert.spec.issuerRef.name);
  };
  // The serving certificate: the one whose Secret the Deployment mounts.
  const dep = find(objs, 'Deployment');
  const tlsSecret = dep.spec.template.spec.volumes.find((v: any) => v.name === 'tls').secret.secretName;
  const certs = certManager.filter((o) => o.kind === 'Certificate');
  assert.equal(certs.length, 2, 'a CA certificate and a serving certificate');
  const leaf = certs.find((c) => c.spec.secretName === tlsSecret);
  assert.ok(leaf, `a Certificate writes Secret ${tlsSecret}`);
  assert.notEqual(leaf.spec.isCA, true);
  const svc = find(objs, 'Service');
  assert.ok(leaf.spec.dnsNames.includes(`${svc.metadata.name}.${svc.metadata.namespace}.svc`));
  assert.equal(leaf.spec.privateKey.rotationPolicy, 'Always', 'a renewal brings a new key');
  // leaf ← CA Issuer ← CA Certificate ← self-signed Issuer.
  const caIssuer = issuerOf(leaf);
  assert.ok(caIssuer.spec.ca, `${caIssuer.metadata.name} signs with a CA`);
  const ca = certs.find((c) => c.spec.secretName === caIssuer.spec.ca.secretName);
  assert.ok(ca, `a Certificate writes the CA Issuer's Secret ${caIssuer.spec.ca.secretName}`);
  assert.notEqual(ca, leaf);
  assert.notEqual(ca.spec.secretName, tlsSecret, 'the CA has its own Secret');
  assert.equal(ca.spec.isCA, true);
  assert.ok(['ECDSA', 'RSA'].includes(ca.spec.privateKey.algorithm));
  assert.equal(ca.spec.privateKey.rotationPolicy, 'Never', 'a renewed CA keeps its key, so certificates it signed still verify');
  assert.deepEqual(issuerOf(ca).spec, { selfSigned: {} });
  // Durations (Go durations in hours): the CA outlives many serving certificates, each renewed well before its end.
  const hours = (d: string) => Number(/^(\d+)h$/.exec(d)?.[1] ?? NaN);
  assert.ok(hours(ca.spec.duration) >= 5 * hours(leaf.spec.duration), `CA ${ca.spec.duration}, leaf ${leaf.spec.duration}`);
  assert.ok(hours(leaf.spec.renewBefore) > 0 && hours(leaf.spec.renewBefore) < hours(leaf.spec.duration));
  assert.ok(hours(ca.spec.renewBefore) > hours(leaf.spec.duration), 'the CA is renewed while every certificate it signed is still valid');
  // Both webhooks trust the CA certificate (its Secret's ca.crt), so a leaf rotation never changes their caBundle.
  for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
    const hook = find(objs, kind);
    assert.equal(hook.metadata.annotations['cert-manager.io/inject-ca-from'], `${ca.metadata.namespace}/${ca.metadata.name}`, kind);
    assert.ok(hook.webhooks.length > 0 && hook.webhooks.every((w: any) => w.clientConfig.service), `${kind}: its webhooks call the Service`);
  }
});

/** Runs deploy/scripts/gen-certs.sh with `args`; its stdout. */
function genCerts(args: readonly string[], env: NodeJS.ProcessEnv = process.env): string {
  return execFileSync('sh', [join(DEPLOY, 'scripts', 'gen-certs.sh'), ...args], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `openssl verify` of `cert` against `caFile` for the Service's name: true when it verifies. */
function verifies(caFile: string, cert: string, host = 'tenant-dns-injector.tenant-dns-system.svc'): boolean {
  return spawnSync('openssl', ['verify', '-CAfile', caFile, '-verify_hostname', host, cert], { encoding: 'utf8' }).status === 0;
}

/** A stand-in kubectl in `dir`/bin that logs its arguments to `dir`/calls and stdin of `apply -f -` to `dir`/applied; `get` says one webhook. */
function standInKubectl(dir: string): NodeJS.ProcessEnv {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(
    join(bin, 'kubectl'),
    `#!/bin/sh\nprintf "%s\\n" "$*" >> "${dir}/calls"\ncase "$*" in *"create secret"*) echo "kind: Secret";; *"apply -f -"*) cat >> "${dir}/applied";; "get "*) printf 1;; esac\n`,
  );
  chmodSync(join(bin, 'kubectl'), 0o755);
  return { ...process.env, PATH: `${bin}:${process.env.PATH}` };
}

test('deploy: gen-certs.sh makes a certificate for the Service, signed by a CA it keeps across runs', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-gencerts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = join(dir, 'pki');
  const read = (f: string) => readFileSync(join(pki, f), 'utf8');
  assert.match(genCerts(['--no-apply', '--out', pki, '--days', '2']), /made a new CA/);
  const first = { ca: read('ca.crt'), caKey: read('ca.key'), leaf: read('tls.crt'), key: read('tls.key') };
  assert.ok(verifies(join(pki, 'ca.crt'), join(pki, 'tls.crt')));
  const ca = new X509Certificate(first.ca);
  assert.equal(ca.ca, true, 'the CA certificate says CA:TRUE');
  assert.ok(new X509Certificate(first.leaf).checkIssued(ca));
  writeFileSync(join(dir, 'first-tls.crt'), first.leaf);

  // The second run: the same CA (certificate and key), a new serving certificate and key that verify against it.
  assert.match(genCerts(['--no-apply', '--out', pki, '--days', '2']), /reusing the CA/);
  assert.equal(read('ca.crt'), first.ca);
  assert.equal(read('ca.key'), first.caKey);
  assert.notEqual(read('tls.crt'), first.leaf);
  assert.notEqual(read('tls.key'), first.key);
  assert.ok(verifies(join(pki, 'ca.crt'), join(pki, 'tls.crt')));
  assert.ok(verifies(join(pki, 'ca.crt'), join(dir, 'first-tls.crt')), 'the previous certificate still verifies: the trust anchor did not move');
  assert.notEqual(new X509Certificate(read('tls.crt')).serialNumber, new X509Certificate(first.leaf).serialNumber);

  // --new-ca replaces it; a CA that ends before a new certificate would is refused, naming --new-ca.
  genCerts(['--no-apply', '--out', pki, '--new-ca', '--ca-days', '3']);
  assert.notEqual(read('ca.crt'), first.ca);
  assert.ok(!verifies(join(pki, 'ca.crt'), join(dir, 'first-tls.crt')));
  assert.throws(() => genCerts(['--no-apply', '--out', pki, '--days', '30']), (err: { stderr: string }) => /expires within the 30 days.*--new-ca/.test(err.stderr));
});

test('deploy: gen-certs.sh stores certificate, key and CA in the Secret and patches the caBundle of every webhook of both configurations', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-gencerts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // Without --out the CA is kept under XDG_STATE_HOME, so two runs give the API server the same caBundle.
  const env = { ...standInKubectl(dir), XDG_STATE_HOME: join(dir, 'state') };
  const bundles: string[] = [];
  for (let run = 0; run < 2; run++) {
    rmSync(join(dir, 'calls'), { force: true });
    genCerts(['--namespace', 'dns', '--webhook', 'hook'], env);
    // The two sides of the pipe log in either order.
    const calls = readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n');
    assert.equal(calls.length, 6, calls.join('\n'));
    assert.ok(
      calls.slice(0, 2).some((c) => /^-n dns create secret generic tenant-dns-injector-tls --type=kubernetes.io\/tls --from-file=tls.crt=\S+ --from-file=tls.key=\S+ --from-file=ca.crt=\S+ --dry-run=client -o yaml$/.test(c)),
      calls.join('\n'),
    );
    assert.ok(calls.slice(0, 2).includes('apply -f -'));
    const patch = '--type=json -p \\[\\{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"[A-Za-z0-9+/=]+"\\}\\]$';
    assert.match(calls[2]!, /^get mutatingwebhookconfiguration hook -o go-template=\{\{len \.webhooks\}\}$/);
    assert.match(calls[3]!, new RegExp(`^patch mutatingwebhookconfiguration hook ${patch}`));
    assert.match(calls[4]!, /^get validatingwebhookconfiguration hook /);
    assert.match(calls[5]!, new RegExp(`^patch validatingwebhookconfiguration hook ${patch}`));
    const bundle = (call: string) => /"value":"([^"]+)"/.exec(call)![1]!;
    assert.match(Buffer.from(bundle(calls[3]!), 'base64').toString('utf8'), /^-----BEGIN CERTIFICATE-----/);
    assert.equal(bundle(calls[5]!), bundle(calls[3]!), 'the same CA in both');
    bundles.push(bundle(calls[3]!));
  }
  assert.equal(bundles[1], bundles[0], 'a second run keeps the caBundle');
  assert.match(readFileSync(join(dir, 'applied'), 'utf8'), /kind: Secret/);
  // --new-ca: the caBundle holds the new CA and the old one, so certificates still served from the old verify.
  rmSync(join(dir, 'calls'), { force: true });
  genCerts(['--namespace', 'dns', '--webhook', 'hook', '--new-ca'], env);
  const patched = readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n').find((c) => c.startsWith('patch mutatingwebhookconfiguration'))!;
  const pems = Buffer.from(/"value":"([^"]+)"/.exec(patched)![1]!, 'base64').toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
  assert.equal(pems.length, 2);
  assert.equal(pems[1], Buffer.from(bundles[0]!, 'base64').toString('utf8').trim(), 'the old CA stays trusted');
  assert.equal(pems[0], readFileSync(join(dir, 'state', 'tenant-dns', 'dns-tenant-dns-injector', 'ca.crt'), 'utf8').trim(), 'the new CA first');
});

/** The fenced code blocks of deploy/README.md with the given info string, in order. */
function readmeBlocks(lang: string): string[] {
  const readme = readFileSync(join(DEPLOY, 'README.md'), 'utf8');
  return [...readme.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

test('deploy: README installs the CRDs and creates the policies before it labels a namespace for injection', () => {
  const readme = readFileSync(join(DEPLOY, 'README.md'), 'utf8');
  const at = (what: string) => {
    const i = readme.indexOf(what);
    assert.ok(i >= 0, `deploy/README.md shows ${what}`);
    return i;
  };
  const crds = at('kubectl wait --for condition=established crd/clusterdnspolicies.tenant-dns.io crd/dnspolicies.tenant-dns.io');
  const cluster = at('kind: ClusterDNSPolicy');
  const tenant = at('kind: DNSPolicy');
  const label = at('tenant-dns.io/inject=enabled\n');
  assert.ok(crds < cluster && cluster < tenant && tenant < label, 'CRDs, ClusterDNSPolicy, DNSPolicy, then the label');
  // The tenant label comes with the injection label, so the first render knows the tenant.
  assert.match(readme, /kubectl label namespace team-a tenant-dns\.io\/tenant=acme tenant-dns\.io\/inject=enabled\n/);
});

test('deploy: README\'s per-pod version listing prints namespace, name, running sidecar image and status, native and legacy (real kubectl)', { skip: NO_KUBECTL }, () => {
  const command = readmeBlocks('sh').flatMap((b) => b.split('\n')).find((l) => l.startsWith('kubectl get pods -A -l tenant-dns.io/tenant -o jsonpath='));
  assert.ok(command, 'deploy/README.md shows the listing');
  const template = /-o jsonpath='(.*)'$/.exec(command)?.[1];
  assert.ok(template);
  // `kubectl get` of many pods gives a List; the per-item part runs on one pod through a local-only kubectl command.
  const perPod = /^\{range \.items\[\*\]\}(.*)\{end\}$/.exec(template)?.[1];
  assert.ok(perPod, template);
  const golden = join(ROOT, 'test', 'injector', 'golden');
  for (const [file, mode] of [['bare-pod.patched.yaml', 'native'], ['legacy-mode.patched.yaml', 'legacy']] as const) {
    const pod = parseAllDocuments(readFileSync(join(golden, file), 'utf8'))[0]!.toJS();
    const out: string = execFileSync(KUBECTL, ['annotate', '--local', '-f', join(golden, file), 'example.com/unused-', '-o', `jsonpath=${perPod}`], {
      encoding: 'utf8',
      env: { ...process.env, KUBECONFIG: '/dev/null' },
    });
    const sidecar = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c: any) => c.name === 'tenant-dns');
    const [namespace, name, image, status, ...more] = out.replace(/\n$/, '').split('\t');
    assert.deepEqual(more, [], out);
    assert.equal(namespace, pod.metadata.namespace ?? '');
    assert.equal(name, pod.metadata.name);
    assert.equal(image, sidecar.image, `${file}: the running sidecar's image`);
    const parsed = JSON.parse(status!);
    assert.equal(parsed.mode, mode);
    assert.equal(parsed.image, sidecar.image);
    assert.equal(typeof parsed.version, 'string');
  }
});
