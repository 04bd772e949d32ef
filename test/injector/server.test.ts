/**
 * End to end over real HTTPS: a CA and certificates made with openssl in the
 * test, the injector server on 127.0.0.1:0, AdmissionReviews shaped as the API
 * server sends them.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, renameSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { connect } from 'node:tls';
import jsonpatch from 'fast-json-patch';
import { Registry } from 'prom-client';
import { parseInjectorConfig } from '../../injector/config.ts';
import { createInjectorMetrics } from '../../injector/metrics.ts';
import { NamespaceNameResolver } from '../../injector/namespaces.ts';
import { startInjectorServer } from '../../injector/server.ts';
import { makeTestPki, type TestPki } from '../helpers/k8s-certs.ts';
import { validatePod } from '../helpers/k8s-schema.ts';
import { admissionRequest, injectorRequest, samplePod, startTestInjector, type InjectorRequestInit } from './fixtures.ts';

const start = (t: TestContext, opts: { maxBodyBytes?: number; certCheckIntervalMs?: number } = {}) => startTestInjector(t, opts);

/** A request to the injector, as the API server's client sends it (it also accepts any type). */
const request = (pki: TestPki, port: number, path: string, init: InjectorRequestInit = {}) =>
  injectorRequest(pki.ca, port, path, { ...init, headers: { Accept: 'application/json, */*', ...init.headers } });

const post = (pki: TestPki, port: number, body: unknown, path = '/mutate') =>
  request(pki, port, `${path}?timeout=5s`, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) });

/** The certificate the injector at 127.0.0.1:`port` presents now, verified against the test CA for the Service's name. */
const servedCertificate = (pki: TestPki, port: number) =>
  new Promise<X509Certificate>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca: pki.ca, servername: 'tenant-dns-injector.tenant-dns-system.svc' }, () => {
      resolve(s.getPeerX509Certificate()!);
      s.end();
    });
    s.on('error', reject);
  });

test('server: /mutate answers an API-server-shaped CREATE with a patch that yields a valid pod', async (t) => {
  const { pki, port } = await start(t);
  const review = admissionRequest(samplePod(), { uid: '705ab4f5-6393-11e8-b7cc-42010a800002' });
  const res = await post(pki, port, review);
  assert.equal(res.status, 200);
  assert.match(String(res.headers['content-type']), /application\/json/);
  const out = JSON.parse(res.body);
  assert.equal(out.apiVersion, 'admission.k8s.io/v1');
  assert.equal(out.kind, 'AdmissionReview');
  assert.equal(out.response.uid, '705ab4f5-6393-11e8-b7cc-42010a800002');
  assert.equal(out.response.allowed, true);
  assert.equal(out.response.patchType, 'JSONPatch');
  const ops = JSON.parse(Buffer.from(out.response.patch, 'base64').toString('utf8'));
  const pod = jsonpatch.applyPatch(structuredClone(review.request.object), ops, true, false).newDocument as any;
  validatePod(pod);
  assert.equal(pod.spec.dnsPolicy, 'None');
  assert.deepEqual(pod.spec.dnsConfig.nameservers, ['127.0.0.1']);
});

test('server: dryRun CREATE is patched; UPDATE is allowed unmutated', async (t) => {
  const { pki, port } = await start(t);
  const dry = JSON.parse((await post(pki, port, admissionRequest(samplePod(), { dryRun: true }))).body);
  assert.equal(dry.response.patchType, 'JSONPatch');
  const upd = JSON.parse((await post(pki, port, admissionRequest(samplePod(), { operation: 'UPDATE' }))).body);
  assert.equal(upd.response.allowed, true);
  assert.equal(upd.response.patch, undefined);
  assert.equal(upd.response.patchType, undefined);
});

test('server: /validate admits the pod /mutate made and denies an UPDATE that swaps the sidecar image', async (t) => {
  const { pki, port } = await start(t);
  const create = admissionRequest(samplePod());
  const mutated = JSON.parse((await post(pki, port, create)).body);
  const pod = jsonpatch.applyPatch(structuredClone(create.request.object), JSON.parse(Buffer.from(mutated.response.patch, 'base64').toString('utf8')), true, false).newDocument as any;
  const ok = await post(pki, port, admissionRequest(pod, { uid: 'b5c3c1c2-0000-4000-8000-000000000001' }), '/validate');
  assert.equal(ok.status, 200);
  assert.match(String(ok.headers['content-type']), /application\/json/);
  assert.deepEqual(JSON.parse(ok.body), { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'b5c3c1c2-0000-4000-8000-000000000001', allowed: true } });
  const swapped = structuredClone(pod);
  swapped.spec.initContainers[0].image = 'registry.example/evil-dns:1';
  const res = await post(pki, port, admissionRequest(swapped, { operation: 'UPDATE', oldObject: pod }), '/validate');
  assert.equal(res.status, 200);
  const out = JSON.parse(res.body).response;
  assert.equal(out.allowed, false);
  assert.equal(out.status.code, 403);
  assert.match(out.status.message, /^tenant-dns: pod denied \(sidecar-changed\): container tenant-dns cannot change: image \(registry\.example\/evil-dns:1;/);
  assert.equal(out.patch, undefined, 'a validating webhook never patches');
});

test('server: malformed bodies get HTTP 400, on both webhooks', async (t) => {
  const { pki, port } = await start(t);
  for (const path of ['/mutate', '/validate']) {
    for (const body of ['{', 'null', '[]', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), '']) {
      const res = await post(pki, port, body, path);
      assert.equal(res.status, 400, `${path} body ${JSON.stringify(body)}: ${res.body}`);
    }
    assert.equal((await request(pki, port, path)).status, 405);
  }
  const noOld = admissionRequest(samplePod(), { operation: 'UPDATE' });
  noOld.request.oldObject = null;
  assert.equal((await post(pki, port, noOld, '/validate')).status, 400, 'an UPDATE without oldObject');
  assert.equal((await request(pki, port, '/nope')).status, 404);
});

test('server: oversized bodies get 413, declared or streamed, and the server keeps serving', async (t) => {
  const { pki, port } = await start(t, { maxBodyBytes: 64 * 1024 });
  const big = admissionRequest(samplePod());
  big.request.object.metadata.annotations = { filler: 'x'.repeat(200 * 1024) };
  const declared = await post(pki, port, big);
  assert.equal(declared.status, 413);
  assert.match(declared.body, /request too large/);
  const streamed = await new Promise<number>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', ca: pki.ca, servername: 'tenant-dns-injector.tenant-dns-system.svc', headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? resolve(413) : reject(err)));
    const chunk = Buffer.alloc(16 * 1024, 'x');
    for (let i = 0; i < 8; i++) req.write(chunk);
    req.end();
  });
  assert.equal(streamed, 413);
  assert.equal((await post(pki, port, admissionRequest(samplePod()))).status, 200);
});

test('server: /healthz, /readyz and /metrics', async (t) => {
  const { pki, port } = await start(t);
  assert.equal((await request(pki, port, '/healthz')).status, 200);
  assert.equal((await request(pki, port, '/readyz')).status, 200);
  await post(pki, port, admissionRequest(samplePod()));
  await post(pki, port, '{');
  await post(pki, port, admissionRequest(samplePod()), '/validate');
  await post(pki, port, '{', '/validate');
  const metrics = await request(pki, port, '/metrics');
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /tenant_dns_injector_admissions_total\{webhook="mutate",result="injected",reason="none"\} 1/);
  assert.match(metrics.body, /tenant_dns_injector_admissions_total\{webhook="mutate",result="error",reason="BAD_REQUEST"\} 1/);
  assert.match(metrics.body, /tenant_dns_injector_admissions_total\{webhook="validate",result="denied",reason="not-injected"\} 1/);
  assert.match(metrics.body, /tenant_dns_injector_admissions_total\{webhook="validate",result="error",reason="BAD_REQUEST"\} 1/);
  assert.match(metrics.body, /tenant_dns_injector_request_duration_seconds_count\{path="\/mutate",code="200"\} 1/);
  assert.match(metrics.body, /tenant_dns_injector_request_duration_seconds_count\{path="\/validate",code="400"\} 1/);
});

test('server: a slow client is cut off by the request timeout instead of hanging', async (t) => {
  const pki = makeTestPki(['localhost']);
  t.after(() => pki.cleanup());
  const registry = new Registry();
  const server = await startInjectorServer({
    host: '127.0.0.1', port: 0, certFile: pki.certFile, keyFile: pki.keyFile, registry, requestTimeoutMs: 300, certCheckIntervalMs: 0,
    deps: { config: parseInjectorConfig({}), tenants: new NamespaceNameResolver(), metrics: createInjectorMetrics(registry) },
  });
  t.after(() => server.close(100));
  // The request never completes: only the server's request timeout can end it, and it ends with 408.
  const ended = await new Promise<string>((resolve) => {
    const sock = connect({ host: '127.0.0.1', port: server.address.port, ca: pki.ca, servername: 'localhost' }, () => {
      sock.write('POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{');
    });
    let data = '';
    sock.on('data', (d) => (data += d.toString()));
    sock.on('close', () => resolve(data));
    sock.on('error', () => resolve(data));
  });
  assert.match(ended, /^HTTP\/1\.1 408/);
});

test('server: a renewed certificate is picked up; a broken one keeps the old', async (t) => {
  const { pki, server, port } = await start(t);
  const serial = async () => (await servedCertificate(pki, port)).serialNumber;
  const before = await serial();
  assert.equal(server.reloadCertificate(), false);
  // Like the kubelet: write the new pair beside, then swap in.
  pki.issue(join(pki.dir, 'new.crt'), join(pki.dir, 'new.key'));
  renameSync(join(pki.dir, 'new.crt'), pki.certFile);
  renameSync(join(pki.dir, 'new.key'), pki.keyFile);
  assert.equal(server.reloadCertificate(), true);
  const after = await serial();
  assert.notEqual(after, before);
  copyFileSync(pki.caFile, pki.keyFile); // not a key
  assert.equal(server.reloadCertificate(), false);
  assert.equal(await serial(), after);
  assert.equal((await request(pki, port, '/healthz')).status, 200);
});

test('server: /metrics gives the served certificate\'s notAfter, and the new one after a reload', async (t) => {
  const { pki, server, port } = await start(t);
  const served = () => servedCertificate(pki, port);
  const gauge = async () => {
    const text = (await request(pki, port, '/metrics')).body;
    const m = /^tenant_dns_injector_certificate_expiry_timestamp_seconds (\S+)$/m.exec(text);
    assert.ok(m, text);
    return Number(m[1]);
  };
  const first = await served();
  assert.equal(await gauge(), first.validToDate.getTime() / 1000);
  // A certificate valid 30 days instead of 2: the reload moves the gauge to its notAfter.
  pki.issue(join(pki.dir, 'new.crt'), join(pki.dir, 'new.key'), undefined, 30);
  renameSync(join(pki.dir, 'new.crt'), pki.certFile);
  renameSync(join(pki.dir, 'new.key'), pki.keyFile);
  assert.equal(server.reloadCertificate(), true);
  const second = await served();
  assert.notEqual(second.serialNumber, first.serialNumber);
  assert.ok(second.validToDate.getTime() - first.validToDate.getTime() >= 27 * 86_400_000, `${first.validTo} → ${second.validTo}`);
  // Every scrape gets a rendering that started after it arrived (sidecar/metrics/exposition.ts).
  assert.equal(await gauge(), second.validToDate.getTime() / 1000);
  // A broken pair is not loaded: the gauge keeps the served certificate's date.
  copyFileSync(pki.caFile, pki.keyFile);
  assert.equal(server.reloadCertificate(), false);
  assert.equal(await gauge(), second.validToDate.getTime() / 1000);
});

test('server: refuses to start without a usable certificate', async (t) => {
  const pki = makeTestPki();
  t.after(() => pki.cleanup());
  const registry = new Registry();
  await assert.rejects(
    startInjectorServer({ host: '127.0.0.1', port: 0, certFile: pki.certFile, keyFile: pki.caFile, registry, deps: { config: parseInjectorConfig({}), tenants: new NamespaceNameResolver(), metrics: createInjectorMetrics(registry) } }),
    { code: 'TLS' },
  );
});
