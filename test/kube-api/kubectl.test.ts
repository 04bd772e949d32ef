/**
 * The stand-in API server against Debian's kubectl (a client nobody here
 * wrote): discovery, `apply -f` creating and then 3-way-merge patching custom
 * objects with server-side field validation, `get -A` printing the CRD's
 * printer columns from a Table answer, `get -o yaml`, and `delete`. kubectl
 * runs with its own HOME and only the stand-in's kubeconfig.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { makeTestPki } from '../helpers/k8s-certs.ts';
import { startKubeApi, webhookAdmission, type KubeApi } from '../helpers/kube-api.ts';

const KUBECTL = '/usr/bin/kubectl';
const skip = existsSync(KUBECTL) ? false : 'kubectl is not installed (/usr/bin/kubectl)';

const CRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.test
spec:
  group: example.test
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Accepted, type: string, jsonPath: '.status.conditions[?(@.type=="Accepted")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
`;

interface Kubectl {
  (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  readonly dir: string;
  /** Starts a long-running kubectl (killed when the test ends); `lines(n)` resolves with the first n stdout lines. */
  stream(...args: string[]): { lines(n: number): Promise<string[]> };
}

async function setup(t: TestContext): Promise<{ api: KubeApi; kubectl: Kubectl }> {
  const api = await startKubeApi({ namespaces: ['team-a'] });
  t.after(() => api.close());
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-kubectl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { PATH: '/usr/bin:/bin', HOME: dir, KUBECONFIG: api.kubeconfigPath };
  const kubectl = ((...args: string[]) => new Promise((resolve) => {
    execFile(KUBECTL, ['--kubeconfig', api.kubeconfigPath, ...args], { env, cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  })) as Kubectl;
  const stream = (...args: string[]) => {
    const child = spawn(KUBECTL, ['--kubeconfig', api.kubeconfigPath, ...args], { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => child.kill());
    let out = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    return {
      lines: (n: number) => new Promise<string[]>((resolve, reject) => {
        const check = () => {
          const lines = out.split('\n').slice(0, -1);
          if (lines.length < n) return false;
          child.stdout.off('data', check);
          resolve(lines.slice(0, n));
          return true;
        };
        if (check()) return;
        child.stdout.on('data', check);
        child.once('exit', (code) => reject(new Error(`kubectl exited (${code}) before ${n} lines: ${out}${stderr}`)));
      }),
    };
  };
  Object.assign(kubectl, { dir, stream });
  return { api, kubectl };
}

function write(dir: string, name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

async function ok(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  assert.equal(r.code, 0, `kubectl failed: ${r.stderr}`);
  return r.stdout;
}

test('kube-api kubectl: apply creates a CRD and an object, re-apply patches it, get -A prints the printer columns', { skip, timeout: 120_000 }, async (t) => {
  const { api, kubectl } = await setup(t);
  assert.match(await ok(kubectl('apply', '-f', write(kubectl.dir, 'crd.yaml', CRD))), /customresourcedefinition.apiextensions.k8s.io\/gadgets.example.test created/);
  const obj = (size: number) => `apiVersion: example.test/v1alpha1\nkind: Gadget\nmetadata:\n  name: g1\n  namespace: team-a\n  labels: {tier: web}\nspec:\n  size: ${size}\n  color: red\n`;
  const file = write(kubectl.dir, 'g1.yaml', obj(3));
  assert.match(await ok(kubectl('apply', '-f', file)), /gadget.example.test\/g1 created/);
  api.put({ ...api.get('gadgets.example.test', 'g1', 'team-a')!, status: { conditions: [{ type: 'Accepted', status: 'True' }] } });
  write(kubectl.dir, 'g1.yaml', obj(5));
  assert.match(await ok(kubectl('apply', '-f', file)), /gadget.example.test\/g1 configured/);
  const patch = api.requests.find((r) => r.method === 'PATCH' && r.url.includes('/gadgets/g1'));
  assert.ok(patch, 'the second apply is a PATCH');
  assert.match(patch.url, /fieldValidation=Strict/, 'kubectl leaves validation to the server (it found fieldValidation in OpenAPI v3)');
  assert.equal(patch.contentType, 'application/merge-patch+json', 'a custom resource gets a JSON merge patch');
  const stored = api.get('gadgets', 'g1', 'team-a')!;
  assert.deepEqual([stored.spec, (stored.metadata as { generation: number }).generation], [{ size: 5, color: 'red' }, 2]);
  assert.deepEqual(stored.status, { conditions: [{ type: 'Accepted', status: 'True' }] }, 'apply leaves status alone');

  const table = (await ok(kubectl('get', 'gadgets', '-A'))).trim().split('\n').map((l) => l.trim().split(/\s+/));
  assert.deepEqual(table[0], ['NAMESPACE', 'NAME', 'SIZE', 'ACCEPTED', 'AGE']);
  assert.deepEqual(table[1].slice(0, 4), ['team-a', 'g1', '5', 'True']);
  assert.match(table[1][4], /^\d+s$/);
  assert.match(await ok(kubectl('get', 'gd', '-n', 'team-a', '-l', 'tier=web', '-o', 'name')), /^gadget.example.test\/g1\n$/);
});

test('kube-api kubectl: get -o yaml shows the stored object; delete removes it; a missing object is NotFound', { skip, timeout: 120_000 }, async (t) => {
  const { api, kubectl } = await setup(t);
  await ok(kubectl('apply', '-f', write(kubectl.dir, 'crd.yaml', CRD)));
  await ok(kubectl('apply', '-f', write(kubectl.dir, 'g.yaml', 'apiVersion: example.test/v1alpha1\nkind: Gadget\nmetadata: {name: g2}\nspec: {size: 1}\n')));
  const shown = parseYaml(await ok(kubectl('get', 'gadget', 'g2', '-o', 'yaml')));
  const stored = api.get('gadgets', 'g2', 'default')!;
  assert.deepEqual(shown, stored);
  assert.match(await ok(kubectl('delete', 'gadget', 'g2')), /gadget.example.test "g2" deleted/);
  assert.equal(api.get('gadgets', 'g2', 'default'), undefined);
  const missing = await kubectl('get', 'gadget', 'g2');
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /Error from server \(NotFound\): gadgets.example.test "g2" not found/);
});

test('kube-api kubectl: configmaps apply with a strategic merge patch, and namespaces list with their status', { skip, timeout: 120_000 }, async (t) => {
  const { api, kubectl } = await setup(t);
  const cm = (v: string, extra: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: team-a}\ndata:\n  a: "${v}"\n${extra}`;
  const file = write(kubectl.dir, 'cm.yaml', cm('1', '  b: "x"\n'));
  await ok(kubectl('apply', '-f', file));
  write(kubectl.dir, 'cm.yaml', cm('2', ''));
  assert.match(await ok(kubectl('apply', '-f', file)), /configmap\/c configured/);
  assert.deepEqual(api.get('configmaps', 'c', 'team-a')?.data, { a: '2' }, 'the 3-way merge removed b');
  assert.equal(api.requests.find((r) => r.method === 'PATCH')?.contentType, 'application/strategic-merge-patch+json');
  const lines = (await ok(kubectl('get', 'ns'))).trim().split('\n');
  assert.deepEqual(lines[0].split(/\s+/), ['NAME', 'STATUS', 'AGE']);
  assert.ok(lines.some((l) => /^team-a\s+Active\s+\d+s$/.test(l)));
});

test('kube-api kubectl: apply reports an unknown field (strict server-side validation) and a schema violation as the server words them', { skip, timeout: 120_000 }, async (t) => {
  const { api, kubectl } = await setup(t);
  await ok(kubectl('apply', '-f', write(kubectl.dir, 'crd.yaml', CRD)));
  const unknown = await kubectl('apply', '-f', write(kubectl.dir, 'u.yaml', 'apiVersion: example.test/v1alpha1\nkind: Gadget\nmetadata: {name: u}\nspec: {size: 1, shape: round}\n'));
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /Error from server \(BadRequest\).*strict decoding error: unknown field "spec.shape"/);
  const wrong = await kubectl('apply', '-f', write(kubectl.dir, 'w.yaml', 'apiVersion: example.test/v1alpha1\nkind: Gadget\nmetadata: {name: w}\nspec: {size: big}\n'));
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /The Gadget "w" is invalid: spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"/);
  assert.deepEqual(api.list('gadgets'), []);
});

test('kube-api kubectl: get -w prints a Table row for each watch event', { skip, timeout: 120_000 }, async (t) => {
  const { api, kubectl } = await setup(t);
  await ok(kubectl('apply', '-f', write(kubectl.dir, 'crd.yaml', CRD)));
  api.put({ apiVersion: 'example.test/v1alpha1', kind: 'Gadget', metadata: { name: 'g', namespace: 'team-a' }, spec: { size: 1 } });
  const watch = kubectl.stream('get', 'gadgets', '-n', 'team-a', '-w', '--output-watch-events');
  await watch.lines(2);
  while (!api.openWatches().some((p) => p.includes('/gadgets'))) await once(api.events, 'watch');
  api.put({ apiVersion: 'example.test/v1alpha1', kind: 'Gadget', metadata: { name: 'g', namespace: 'team-a' }, spec: { size: 7 }, status: { conditions: [{ type: 'Accepted', status: 'False' }] } });
  api.remove('gadgets', 'g', 'team-a');
  const rows = (await watch.lines(5)).map((l) => l.trim().split(/\s+/));
  assert.deepEqual(rows[0], ['EVENT', 'NAME', 'SIZE', 'ACCEPTED', 'AGE']);
  assert.deepEqual(rows.slice(1).map((r) => r.slice(0, 3)), [['ADDED', 'g', '1'], ['MODIFIED', 'g', '7'], ['MODIFIED', 'g', '7'], ['DELETED', 'g', '7']]);
  assert.equal(rows[3][3], 'False');
});

test('kube-api kubectl: create namespace, configmap, secret and serviceaccount (protobuf bodies), label, and a namespace delete that takes its objects', { skip, timeout: 120_000 }, async (t) => {
  const { api, kubectl } = await setup(t);
  await ok(kubectl('create', 'namespace', 'shop'));
  await ok(kubectl('label', 'namespace', 'shop', 'tenant-dns.io/inject=enabled'));
  const ns = api.get('namespaces', 'shop') as { metadata: { labels: Record<string, string> } };
  assert.deepEqual(ns.metadata.labels, { 'kubernetes.io/metadata.name': 'shop', 'tenant-dns.io/inject': 'enabled' });
  await ok(kubectl('-n', 'shop', 'create', 'configmap', 'p', '--from-literal=policy.yaml=spec: {}', '--from-literal=x=y'));
  assert.ok(api.requests.some((r) => r.method === 'POST' && r.contentType === 'application/vnd.kubernetes.protobuf'), 'kubectl create sent protobuf');
  assert.deepEqual(api.get('configmaps', 'p', 'shop')?.data, { 'policy.yaml': 'spec: {}', x: 'y' });
  await ok(kubectl('-n', 'shop', 'create', 'secret', 'generic', 's', '--from-literal=token=t0p'));
  await ok(kubectl('-n', 'shop', 'create', 'serviceaccount', 'bob'));
  assert.deepEqual([api.get('secrets', 's', 'shop')?.data, api.get('secrets', 's', 'shop')?.type], [{ token: 'dDBw' }, 'Opaque']);
  assert.ok(api.get('serviceaccounts', 'bob', 'shop'));
  const bad = await kubectl('create', 'namespace', 'Bad');
  assert.match(bad.stderr, /The Namespace "Bad" is invalid: metadata.name: Invalid value: "Bad": a lowercase RFC 1123 label/);
  await ok(kubectl('delete', 'namespace', 'shop'));
  assert.deepEqual([api.get('namespaces', 'shop'), api.list('configmaps', 'shop'), api.list('secrets', 'shop')], [undefined, [], []]);
});

test('kube-api kubectl: apply --server-side creates, drops a field it stops applying, and reports a conflict with another manager', { skip, timeout: 120_000 }, async (t) => {
  const { api, kubectl } = await setup(t);
  await ok(kubectl('apply', '-f', write(kubectl.dir, 'crd.yaml', CRD)));
  const file = (spec: string) => write(kubectl.dir, 's.yaml', `apiVersion: example.test/v1alpha1\nkind: Gadget\nmetadata: {name: s, namespace: team-a}\nspec: ${spec}\n`);
  assert.match(await ok(kubectl('apply', '--server-side', '-f', file('{size: 1, color: red}'))), /gadget.example.test\/s serverside-applied/);
  await ok(kubectl('apply', '--server-side', '-f', file('{size: 2}')));
  assert.deepEqual(api.get('gadgets', 's', 'team-a')?.spec, { size: 2 });
  const clash = await kubectl('apply', '--server-side', '--field-manager', 'someone-else', '-f', file('{size: 3}'));
  assert.equal(clash.code, 1);
  assert.match(clash.stderr, /Apply failed with 1 conflict: conflict with "kubectl" using example.test\/v1alpha1: .spec.size/);
  await ok(kubectl('apply', '--server-side', '--force-conflicts', '--field-manager', 'someone-else', '-f', file('{size: 3}')));
  assert.deepEqual(api.get('gadgets', 's', 'team-a')?.spec, { size: 3 });
});

test('kube-api kubectl: install-style manifests of other built-in kinds are stored as given (apply -k, then unchanged on re-apply)', { skip, timeout: 120_000 }, async (t) => {
  const { api, kubectl } = await setup(t);
  const dir = join(kubectl.dir, 'kustomize');
  mkdirSync(dir);
  write(dir, 'kustomization.yaml', 'namespace: team-a\nresources: [all.yaml]\n');
  write(dir, 'all.yaml', [
    'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: injector}',
    'apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: injector}\nrules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]',
    'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: injector}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: injector}}\n  template:\n    metadata: {labels: {app: injector}}\n    spec: {containers: [{name: c, image: "example/injector:1"}]}',
    'apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: injector}\nwebhooks: []',
  ].join('\n---\n') + '\n');
  assert.match(await ok(kubectl('apply', '-k', dir)), /deployment.apps\/injector created/);
  assert.equal((api.get('deployments.apps', 'injector', 'team-a')?.spec as { replicas: number }).replicas, 2);
  assert.equal(api.list('clusterroles').length, 1);
  assert.match(await ok(kubectl('apply', '-k', dir)), /deployment.apps\/injector unchanged/);
});

test('kube-api kubectl: a real validating webhook sees kubectl users in AdmissionReview.userInfo and its denial reaches kubectl', { skip, timeout: 120_000 }, async (t) => {
  const { api, kubectl } = await setup(t);
  const pki = makeTestPki(['localhost']);
  t.after(() => pki.cleanup());
  const reviews: Record<string, unknown>[] = [];
  const controller = 'system:serviceaccount:tenant-dns-system:tenant-dns-injector';
  const hook = createServer({ cert: readFileSync(pki.certFile), key: readFileSync(pki.keyFile) }, async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const review = JSON.parse(Buffer.concat(chunks).toString()) as { request: { uid: string; name: string; userInfo: { username: string } } };
    reviews.push(review.request);
    const allowed = review.request.userInfo.username === controller;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, allowed, status: allowed ? undefined : { code: 403, message: `${review.request.name} is written by ${controller} only` } } }));
  });
  hook.listen(0, '127.0.0.1');
  await once(hook, 'listening');
  t.after(() => {
    if (hook.listening) hook.close();
    hook.closeAllConnections();
  });
  const url = `https://127.0.0.1:${(hook.address() as AddressInfo).port}/validate`;
  api.setAdmission(webhookAdmission({ url, ca: pki.ca, matches: (r) => r.resource === 'configmaps' && r.name === 'tenant-dns-platform' }));
  api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'tenant-dns-platform', namespace: 'team-a' }, data: { 'policy.yaml': 'spec: {}' } });
  const tenant = await kubectl('--kubeconfig', api.kubeconfigFor('alice'), '-n', 'team-a', 'delete', 'configmap', 'tenant-dns-platform');
  assert.equal(tenant.code, 1);
  assert.match(tenant.stderr, /admission webhook "validate.tenant-dns.io" denied the request: tenant-dns-platform is written by system:serviceaccount:tenant-dns-system:tenant-dns-injector only/);
  assert.deepEqual(reviews.map((r) => [r.operation, (r.userInfo as { username: string; groups: string[] }).username, (r.userInfo as { groups: string[] }).groups]), [['DELETE', 'alice', ['system:authenticated']]]);
  await ok(kubectl('--kubeconfig', api.kubeconfigFor(controller), '-n', 'team-a', 'delete', 'configmap', 'tenant-dns-platform'));
  assert.equal(api.get('configmaps', 'tenant-dns-platform', 'team-a'), undefined);
  hook.close();
  hook.closeAllConnections();
  const down = await kubectl('-n', 'team-a', 'create', 'configmap', 'tenant-dns-platform');
  assert.match(down.stderr, /Internal error occurred: failed calling webhook "validate.tenant-dns.io"/, 'failurePolicy Fail: a webhook that is down refuses the write');
});
