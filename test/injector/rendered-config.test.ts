/**
 * Protection of the rendered policy ConfigMaps over real HTTPS: ConfigMap
 * writes shaped as the API server sends them to `/validate` (the second entry
 * of the ValidatingWebhookConfiguration in deploy/base/webhook.yaml), from the
 * controller's ServiceAccount, the namespace controller and a tenant with
 * namespace-admin rights.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { validateK8sObject } from '../helpers/k8s-schema.ts';
import { configMapReview, postJson, startTestInjector } from './fixtures.ts';

const CONTROLLER = 'system:serviceaccount:tenant-dns-system:tenant-dns-injector';
const NAMESPACE_CONTROLLER = 'system:serviceaccount:kube-system:namespace-controller';
const TENANT = 'alice@team-a.example';

/** A ConfigMap as the controller renders it (the content does not matter to the webhook: who writes it does). */
function configMap(name: string, policy = 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: {name: platform}\nspec: {}\n'): Record<string, any> {
  const cm = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: 'team-a', labels: { 'app.kubernetes.io/managed-by': 'tenant-dns-controller' }, resourceVersion: '41', uid: randomUUID() },
    data: { 'policy.yaml': policy },
  };
  validateK8sObject(cm);
  return cm;
}

const review = (operation: 'CREATE' | 'UPDATE' | 'DELETE', username: string, object: Record<string, any> | null, oldObject: Record<string, any> | null) =>
  configMapReview(operation, username, object, oldObject);

interface Verdict {
  readonly allowed: boolean;
  readonly message?: string;
}

async function start(t: TestContext) {
  const { pki, port, registry } = await startTestInjector(t);
  const send = async (body: Record<string, any>): Promise<Verdict> => {
    const res = await postJson(pki.ca, port, '/validate', body);
    assert.equal(res.status, 200, res.body);
    const answer = JSON.parse(res.body);
    assert.equal(answer.apiVersion, 'admission.k8s.io/v1');
    assert.equal(answer.kind, 'AdmissionReview');
    const r = answer.response;
    assert.equal(r.uid, body.request.uid);
    assert.equal(r.patch, undefined, 'a validating webhook never patches');
    if (r.allowed) {
      assert.deepEqual(Object.keys(r).sort(), ['allowed', 'uid']);
      return { allowed: true };
    }
    // metav1.Status as the API server turns it into the client's error.
    assert.deepEqual(Object.keys(r.status).sort(), ['code', 'message', 'reason']);
    assert.equal(r.status.code, 403);
    assert.equal(r.status.reason, 'Forbidden');
    return { allowed: false, message: r.status.message };
  };
  return { send, registry };
}

/** The validating webhook entries of deploy/base/webhook.yaml whose rules match a write of `resource`. */
function entriesFor(resource: string, operation: string, webhooks: readonly any[]): any[] {
  return webhooks.filter((w) => w.rules.some((r: any) => r.resources.includes(resource) && r.operations.includes(operation)));
}

test('rendered config: a tenant\'s update of the platform ConfigMap is admitted without the ConfigMap webhook entry and denied with it', async (t) => {
  const { send } = await start(t);
  const docs = parseAllDocuments(readFileSync(join(import.meta.dirname, '..', '..', 'deploy', 'base', 'webhook.yaml'), 'utf8')).map((d) => d.toJS());
  const validating = docs.find((d) => d.kind === 'ValidatingWebhookConfiguration');
  const old = configMap('tenant-dns-platform');
  // The tenant lifts the platform's deny of *.evil.example by emptying the platform layer.
  const lifted = structuredClone(old);
  lifted.data['policy.yaml'] = 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: {name: platform}\nspec: {defaultAction: allow}\n';
  const write = review('UPDATE', TENANT, lifted, old);

  // Without the defence (the pod entry only, as before): the API server calls no webhook and stores the write.
  assert.deepEqual(entriesFor('configmaps', 'UPDATE', validating.webhooks.slice(0, 1)), []);
  // With it: the ConfigMap entry sends the write to /validate, which refuses it.
  const hooks = entriesFor('configmaps', 'UPDATE', validating.webhooks);
  assert.deepEqual(hooks.map((h) => h.clientConfig.service.path), ['/validate']);
  const verdict = await send(write);
  assert.equal(verdict.allowed, false);
  assert.match(verdict.message ?? '', /^tenant-dns: ConfigMap write denied \(rendered-config\): ConfigMap team-a\/tenant-dns-platform is rendered by the tenant-dns controller/);
  assert.ok(verdict.message?.includes(`UPDATE by ${TENANT} refused`), verdict.message);
  assert.ok(verdict.message?.includes(`only ${CONTROLLER} may create, update or delete it; ${NAMESPACE_CONTROLLER} may delete it`), verdict.message);
});

test('rendered config: only the controller writes both rendered ConfigMaps; the namespace controller may delete them', async (t) => {
  const { send, registry } = await start(t);
  for (const name of ['tenant-dns-platform', 'tenant-dns-policy']) {
    const cm = configMap(name);
    const next = configMap(name, '# changed\n');
    for (const [operation, object, old] of [
      ['CREATE', cm, null],
      ['UPDATE', next, cm],
      ['DELETE', null, cm],
    ] as const) {
      assert.equal((await send(review(operation, CONTROLLER, object, old))).allowed, true, `${operation} ${name} by the controller`);
      const byTenant = await send(review(operation, TENANT, object, old));
      assert.equal(byTenant.allowed, false, `${operation} ${name} by the tenant`);
      assert.ok(byTenant.message?.includes(`ConfigMap team-a/${name} `), byTenant.message);
      assert.equal((await send(review(operation, NAMESPACE_CONTROLLER, object, old))).allowed, operation === 'DELETE', `${operation} ${name} by the namespace controller`);
    }
  }
  // A tenant's own ConfigMap passes (the webhook's matchConditions normally keep it from reaching the injector).
  assert.equal((await send(review('UPDATE', TENANT, configMap('app-settings'), configMap('app-settings')))).allowed, true);
  const text = await registry.metrics();
  assert.match(text, /tenant_dns_injector_admissions_total\{webhook="validate",result="denied",reason="rendered-config"\} 10/);
  assert.match(text, /tenant_dns_injector_admissions_total\{webhook="validate",result="allowed",reason="none"\} 8/);
  assert.match(text, /tenant_dns_injector_admissions_total\{webhook="validate",result="allowed",reason="not-rendered"\} 1/);
});

test('rendered config: a ConfigMap review without a name is a bad request', async (t) => {
  const { pki, port } = await startTestInjector(t);
  const body = review('DELETE', CONTROLLER, null, configMap('tenant-dns-policy'));
  delete body.request.name;
  delete body.request.oldObject.metadata.name;
  const res = await postJson(pki.ca, port, '/validate', body);
  assert.equal(res.status, 400);
  assert.match(res.body, /a ConfigMap request without name or namespace/);
});
