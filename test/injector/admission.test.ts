import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import jsonpatch from 'fast-json-patch';
import { review, parseAdmissionReview, validateReview } from '../../injector/admission.ts';
import { parseInjectorConfig } from '../../injector/config.ts';
import { createInjectorMetrics } from '../../injector/metrics.ts';
import { NamespaceNameResolver, type TenantResolver } from '../../injector/namespaces.ts';
import { Keys } from '../../injector/names.ts';
import { admissionRequest, samplePod } from './fixtures.ts';
import { validatePod } from '../helpers/k8s-schema.ts';
import { referenceTimer } from '../helpers/events.ts';

function deps(over: { tenants?: TenantResolver; failureMode?: 'allow' | 'deny'; timeoutMs?: number; hostNetworkPods?: 'allow' | 'deny' } = {}) {
  const registry = new Registry();
  const metrics = createInjectorMetrics(registry);
  const cfg = parseInjectorConfig({
    clusterDns: '10.96.0.10:53',
    failureMode: over.failureMode ?? 'deny',
    namespaceLookupTimeoutMs: over.timeoutMs ?? 200,
    hostNetworkPods: over.hostNetworkPods ?? 'deny',
  });
  return { config: cfg, tenants: over.tenants ?? new NamespaceNameResolver(), metrics, registry };
}

const decode = (p: string | undefined) => JSON.parse(Buffer.from(p ?? '', 'base64').toString('utf8')) as jsonpatch.Operation[];

test('admission: CREATE gets a base64 JSONPatch, the uid echoed, the tenant from the resolver', async () => {
  const tenants: TenantResolver = { resolve: async () => ({ tenant: 'acme', source: 'label' }), close() {} };
  const d = deps({ tenants });
  const req = admissionRequest(samplePod(), { uid: 'e911857d-c318-11e8-bbad-025000000001' });
  const res = await review(req, d);
  assert.equal(res.apiVersion, 'admission.k8s.io/v1');
  assert.equal(res.kind, 'AdmissionReview');
  assert.equal(res.response.uid, 'e911857d-c318-11e8-bbad-025000000001');
  assert.equal(res.response.allowed, true);
  assert.equal(res.response.patchType, 'JSONPatch');
  const patched = jsonpatch.applyPatch(structuredClone(req.request.object), decode(res.response.patch), true, false).newDocument as any;
  validatePod(patched);
  assert.equal(patched.spec.initContainers[0].name, 'tenant-dns');
  assert.deepEqual(patched.spec.initContainers[0].env[2], { name: 'TENANT_DNS_TENANT', value: 'acme' });
  assert.deepEqual(patched.spec.dnsConfig.searches.slice(0, 1), ['team-a.svc.cluster.local']);
  assert.equal(patched.metadata.labels['tenant-dns.io/tenant'], 'acme', 'the pod is labelled with its tenant');
  assert.match(await d.registry.metrics(), /tenant_dns_injector_admissions_total\{webhook="mutate",result="injected",reason="none"\} 1/);
  assert.match(await d.registry.metrics(), /tenant_dns_injector_tenant_lookups_total\{source="label"\} 1/);
});

test('admission: dryRun requests are patched the same way (no side effects)', async () => {
  const res = await review(admissionRequest(samplePod(), { dryRun: true }), deps());
  assert.equal(res.response.patchType, 'JSONPatch');
});

test('admission: UPDATE is allowed without a patch or warning', async () => {
  const d = deps();
  const res = await review(admissionRequest(samplePod(), { operation: 'UPDATE' }), d);
  assert.deepEqual(Object.keys(res.response).sort(), ['allowed', 'uid']);
  assert.match(await d.registry.metrics(), /admissions_total\{webhook="mutate",result="skipped",reason="operation"\} 1/);
});

test('admission: a skipped pod is allowed with its reason in warnings and metrics', async () => {
  const d = deps({ hostNetworkPods: 'allow' });
  const pod = samplePod();
  pod.spec.hostNetwork = true;
  const res = await review(admissionRequest(pod), d);
  assert.equal(res.response.allowed, true);
  assert.equal(res.response.patch, undefined);
  assert.match(res.response.warnings?.[0] ?? '', /host-network/);
  assert.match(await d.registry.metrics(), /admissions_total\{webhook="mutate",result="skipped",reason="host-network"\} 1/);
});

test('admission: a pod that collides with the injection is denied: allowed false, 403, the conflict named, counted', async () => {
  const d = deps();
  const pod = samplePod();
  pod.spec.volumes = [{ name: 'tenant-dns-podinfo', emptyDir: {} }];
  const res = await review(admissionRequest(pod), d);
  assert.deepEqual(Object.keys(res.response).sort(), ['allowed', 'status', 'uid']);
  assert.equal(res.response.allowed, false);
  assert.deepEqual(res.response.status, {
    code: 403,
    reason: 'Forbidden',
    message: 'tenant-dns: pod denied (name-conflict): the pod already has a volume tenant-dns-podinfo, a name the injector needs',
  });
  assert.match(await d.registry.metrics(), /admissions_total\{webhook="mutate",result="denied",reason="name-conflict"\} 1/);
});

test('admission: a denial naming many conflicts stays within a bounded message', async () => {
  const pod = samplePod();
  pod.spec.dnsPolicy = 'None';
  pod.spec.dnsConfig = { nameservers: Array.from({ length: 500 }, (_, i) => `10.0.${i >> 8}.${i & 255}`) };
  const res = await review(admissionRequest(pod), deps());
  assert.equal(res.response.allowed, false);
  assert.ok((res.response.status?.message.length ?? 0) <= 2000);
  assert.match(res.response.status?.message ?? '', /^tenant-dns: pod denied \(own-nameservers\): .*…$/);
});

test('admission: /validate answers CREATE and UPDATE, counted under webhook="validate"', async () => {
  const tenants: TenantResolver = { resolve: async () => ({ tenant: 'acme', source: 'label' }), close() {} };
  const d = deps({ tenants });
  const created = await review(admissionRequest(samplePod()), d);
  const pod = jsonpatch.applyPatch(samplePod(), decode(created.response.patch), true, false).newDocument as any;
  const ok = await validateReview(admissionRequest(pod), d);
  assert.deepEqual(Object.keys(ok.response).sort(), ['allowed', 'uid']);
  assert.equal(ok.response.allowed, true);
  const bare = await validateReview(admissionRequest(samplePod()), d);
  assert.equal(bare.response.allowed, false);
  assert.equal(bare.response.status?.code, 403);
  assert.match(bare.response.status?.message ?? '', /^tenant-dns: pod denied \(not-injected\): the pod has no tenant-dns sidecar/);
  const swapped = structuredClone(pod);
  swapped.spec.initContainers[0].image = 'registry.example/other:1';
  const upd = await validateReview(admissionRequest(swapped, { operation: 'UPDATE', oldObject: pod }), d);
  assert.equal(upd.response.allowed, false);
  assert.match(upd.response.status?.message ?? '', /\(sidecar-changed\).*image \(registry\.example\/other:1; before ghcr\.io\/tenant-dns\/tenant-dns:0\.1\.0\)/);
  const text = await d.registry.metrics();
  assert.match(text, /admissions_total\{webhook="validate",result="allowed",reason="none"\} 1/);
  assert.match(text, /admissions_total\{webhook="validate",result="denied",reason="not-injected"\} 1/);
  assert.match(text, /admissions_total\{webhook="validate",result="denied",reason="sidecar-changed"\} 1/);
  assert.match(text, /tenant_lookups_total\{source="label"\} 3/, 'CREATE looks the tenant up for both webhooks, UPDATE does not');
});

test('admission: /validate lets subresources through (kubectl debug) and refuses an UPDATE without oldObject as a bad request', async () => {
  const d = deps();
  const eph = admissionRequest(samplePod(), { operation: 'UPDATE', subResource: 'ephemeralcontainers' });
  assert.deepEqual((await validateReview(eph, d)).response.allowed, true);
  assert.match(await d.registry.metrics(), /admissions_total\{webhook="validate",result="allowed",reason="not-a-pod"\} 1/);
  const noOld = admissionRequest(samplePod(), { operation: 'UPDATE' });
  noOld.request.oldObject = null;
  await assert.rejects(validateReview(noOld, d), { code: 'BAD_REQUEST' });
});

test('admission: non-pod resources and subresources pass through', async () => {
  const req = admissionRequest(samplePod());
  req.request.kind = { group: 'apps', version: 'v1', kind: 'Deployment' };
  assert.equal((await review(req, deps())).response.allowed, true);
  const eph = admissionRequest(samplePod(), { operation: 'UPDATE' });
  eph.request.subResource = 'ephemeralcontainers';
  assert.equal((await review(eph, deps())).response.patch, undefined);
});

test('admission: a slow tenant lookup falls back to the namespace name within the deadline', async (t) => {
  const slow: TenantResolver = { resolve: (_ns, signal) => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason))), close() {} };
  const d = deps({ tenants: slow, timeoutMs: 50 });
  // The lookup's 50 ms timer is started after this one, and timers fire in the order they expire.
  const late = referenceTimer(1_000);
  t.after(() => late.cancel());
  const res = await review(admissionRequest(samplePod()), d);
  assert.ok(!late.fired, 'answered at the lookup deadline');
  assert.equal(res.response.allowed, true);
  assert.match(res.response.warnings?.[0] ?? '', /timed out; using namespace name team-a/);
  const patch = decode(res.response.patch);
  assert.ok(JSON.stringify(patch).includes('"name":"TENANT_DNS_TENANT","value":"team-a"'));
});

test('admission: a failing tenant lookup falls back to the namespace name', async () => {
  const failing: TenantResolver = { resolve: async () => { throw new Error('forbidden'); }, close() {} };
  const res = await review(admissionRequest(samplePod()), deps({ tenants: failing }));
  assert.match(res.response.warnings?.[0] ?? '', /lookup failed/);
  assert.equal(res.response.patchType, 'JSONPatch');
});

test('admission: a pod it cannot patch is denied in deny mode, allowed with a warning in allow mode', async () => {
  const bad = samplePod() as any;
  bad.spec.volumes = 'not-a-list';
  const denied = await review(admissionRequest(bad), deps({ failureMode: 'deny' }));
  assert.equal(denied.response.allowed, false);
  assert.equal(denied.response.status?.code, 500);
  assert.match(denied.response.status?.message ?? '', /expected an array/);
  const d = deps({ failureMode: 'allow' });
  const allowed = await review(admissionRequest(bad), d);
  assert.equal(allowed.response.allowed, true);
  assert.equal(allowed.response.patch, undefined);
  assert.match(allowed.response.warnings?.[0] ?? '', /sidecar not injected/);
  assert.match(await d.registry.metrics(), /admissions_total\{webhook="mutate",result="error",reason="PATCH_FAILED"\} 1/);
});

test('admission: warnings stay within the API server limits', async () => {
  const pod = samplePod() as any;
  pod.metadata.annotations = { [Keys.ndots]: 'x'.repeat(300) };
  const res = await review(admissionRequest(pod), deps());
  for (const w of res.response.warnings ?? []) assert.ok(w.length <= 120, w);
});

test('admission: malformed reviews are rejected (HTTP 400 by the server)', () => {
  for (const body of [null, [], 'x', { kind: 'AdmissionReview' }, { apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'a' } }, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: '' } }]) {
    assert.throws(() => parseAdmissionReview(body), { code: 'BAD_REQUEST' }, JSON.stringify(body));
  }
});

test('admission: a Pod request without object or namespace is a bad request, not a failure-mode answer', async () => {
  const noObject = admissionRequest(samplePod());
  delete noObject.request.object;
  await assert.rejects(review(noObject, deps()), { code: 'BAD_REQUEST' });
  const pod = samplePod();
  delete pod.metadata.namespace;
  await assert.rejects(review(admissionRequest(pod, { namespace: '' }), deps()), { code: 'BAD_REQUEST' });
  // The namespace may come from the object when the request omits it.
  const res = await review(admissionRequest(samplePod(), { namespace: '' }), deps());
  assert.equal(res.response.patchType, 'JSONPatch');
});
