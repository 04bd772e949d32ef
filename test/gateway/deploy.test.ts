/**
 * deploy/gateway/: `kubectl kustomize` renders it, every object is
 * schema-valid, the pieces agree (selectors, named ports, probes on the
 * metrics port, RBAC for exactly what the informers read and the Events they
 * write), the pod is restricted as the injector's is, the LoadBalancer
 * Service carries DNS on UDP and TCP, and the image's bundle accepts the
 * Deployment's args: it writes the zone from objects.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { readPodMonitor } from '../helpers/podmonitor.ts';
import { buildBundle } from '../helpers/image.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const KUBECTL = process.env.TENANT_DNS_KUBECTL || 'kubectl';
const NO_KUBECTL = spawnSync(KUBECTL, ['version', '--client'], { encoding: 'utf8' }).status === 0 ? false : 'kubectl is not installed (needed for `kubectl kustomize`)';

function render(): any[] {
  const out = execFileSync(KUBECTL, ['kustomize', join(ROOT, 'deploy/gateway')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseAllDocuments(out).map((d) => d.toJS());
}

const find = (objs: any[], kind: string) => {
  const o = objs.find((x) => x.kind === kind);
  assert.ok(o, `${kind} rendered`);
  return o;
};

test('deploy gateway: renders schema-valid objects in tenant-dns-system that agree with each other', { skip: NO_KUBECTL }, () => {
  const objs = render();
  assert.deepEqual(objs.map((o) => o.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'PodDisruptionBudget', 'Service', 'ServiceAccount']);
  for (const o of objs) {
    validateK8sObject(o);
    if (!o.kind.startsWith('Cluster')) assert.equal(o.metadata.namespace, 'tenant-dns-system', o.kind);
  }
  const dep = find(objs, 'Deployment');
  const pod = dep.spec.template;
  assert.equal(dep.spec.replicas, 2);
  assert.deepEqual(pod.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.labelSelector.matchLabels, dep.spec.selector.matchLabels);
  assert.equal(pod.metadata.labels['tenant-dns.io/inject'], 'false', 'no sidecar in the gateway');
  const c = pod.spec.containers[0];
  assert.equal(c.args[0], 'gateway');
  const ports = Object.fromEntries(c.ports.map((p: any) => [p.name, p]));
  for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.equal(c[p].httpGet.port, 'metrics', p);
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  const arg = (flag: string) => c.args.find((a: string) => a.startsWith(`${flag}=`))?.slice(flag.length + 1);
  assert.equal(Number(arg('--metrics')!.split(':')[1]), ports.metrics.containerPort);
  assert.equal(Number(arg('--listen')!.split(':')[1]), ports['dns-udp'].containerPort);
  assert.deepEqual([ports['dns-udp'].protocol, ports['dns-tcp'].protocol, ports['dns-tcp'].containerPort], ['UDP', 'TCP', ports['dns-udp'].containerPort]);
  // Restricted like the injector: non-root, no privilege escalation, read-only root, no capabilities, seccomp.
  assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(pod.spec.securityContext.runAsNonRoot, true);
  assert.equal(pod.spec.securityContext.seccompProfile.type, 'RuntimeDefault');
  assert.equal(find(objs, 'ServiceAccount').metadata.name, pod.spec.serviceAccountName);
  assert.equal(arg('--objects'), undefined, 'the objects come from the API');
  // RBAC: read what the informers list and watch (gateway/kube-source.ts), create Events; nothing else.
  const role = find(objs, 'ClusterRole');
  const read = ['get', 'list', 'watch'];
  assert.deepEqual(role.rules, [
    { apiGroups: [''], resources: ['namespaces', 'services'], verbs: read },
    { apiGroups: ['networking.k8s.io'], resources: ['ingresses'], verbs: read },
    { apiGroups: ['gateway.networking.k8s.io'], resources: ['gateways', 'httproutes'], verbs: read },
    { apiGroups: ['tenant-dns.io'], resources: ['clusterdnspolicies'], verbs: read },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ]);
  const binding = find(objs, 'ClusterRoleBinding');
  assert.equal(binding.roleRef.name, role.metadata.name);
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: pod.spec.serviceAccountName, namespace: 'tenant-dns-system' }]);
  // The LoadBalancer Service: port 53 on UDP and TCP, to the named container ports.
  const svc = find(objs, 'Service');
  assert.equal(svc.spec.type, 'LoadBalancer');
  assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
  assert.deepEqual(svc.spec.ports.map((p: any) => [p.port, p.protocol, p.targetPort]), [[53, 'UDP', 'dns-udp'], [53, 'TCP', 'dns-tcp']]);
  const pdb = find(objs, 'PodDisruptionBudget');
  assert.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels);
  assert.equal(pdb.spec.minAvailable, 1);
  // deploy/monitoring's PodMonitor selects these pods on their metrics port.
  const pm = readPodMonitor('gateway-podmonitor.yaml');
  assert.deepEqual(pm.spec.selector?.matchLabels, dep.spec.selector.matchLabels);
  assert.equal(pm.spec.podMetricsEndpoints[0]!.port, 'metrics');
});

test('deploy gateway: the image\'s bundle runs the Deployment\'s args (with objects from a file instead of the API)', { skip: NO_KUBECTL, timeout: 120_000 }, (t) => {
  const objs = render();
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-gateway-deploy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  buildBundle(join(dir, 'app'));
  const objectsFile = join(dir, 'objects.yaml');
  const ingress = { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'web', namespace: 'shop' }, spec: { rules: [{ host: 'www.shop.tenants.example.com' }] }, status: { loadBalancer: { ingress: [{ ip: '192.0.2.10' }] } } };
  writeFileSync(objectsFile, JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [ingress] }));
  const c = find(objs, 'Deployment').spec.template.spec.containers[0];
  const args = [...c.args, `--objects=${objectsFile}`];
  const zone = args.find((a: string) => a.startsWith('--zone='))!.slice('--zone='.length);
  const run = spawnSync(process.execPath, [join(dir, 'app/dist/tenant-dns.mjs'), ...args, '--tenant-domain', `shop=shop.${zone}`, '--dump-zone', zone], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, new RegExp(`^${zone.replace(/\./g, '\\.')}\\.\\t60\\tIN\\tNS\\tns1\\.dns\\.example\\.net\\.$`, 'm'));
  assert.match(run.stdout, /^www\.shop\.tenants\.example\.com\.\t60\tIN\tA\t192\.0\.2\.10$/m);
});
