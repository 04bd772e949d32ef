/**
 * The stand-in API server against the official client, @kubernetes/client-node:
 * informers (list + watch, bookmarks, relist after 410 Gone, reconnect after a
 * dropped watch), optimistic concurrency, the status subresource, Leases, and
 * the error Status objects the client turns into ApiException.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test, type TestContext } from 'node:test';
import {
  ApiException, ApiextensionsV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer, PatchStrategy,
  setHeaderOptions, V1MicroTime, Watch, type KubernetesObject, type V1ConfigMap, type V1Namespace,
} from '@kubernetes/client-node';
import { Agent, fetch } from 'undici';
import { startKubeApi, type KubeApi, type KubeApiOptions } from '../helpers/kube-api.ts';

const CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'widgets.example.test' },
  spec: {
    group: 'example.test',
    scope: 'Namespaced',
    names: { plural: 'widgets', singular: 'widget', kind: 'Widget', shortNames: ['wd'] },
    versions: [{
      name: 'v1', served: true, storage: true, subresources: { status: {} },
      schema: {
        openAPIV3Schema: {
          type: 'object',
          properties: {
            spec: { type: 'object', properties: { size: { type: 'integer', minimum: 1 }, color: { type: 'string', enum: ['red', 'blue'] }, shape: { type: 'object', properties: { round: { type: 'boolean', default: false } } } } },
            status: { type: 'object', properties: { ready: { type: 'boolean' } } },
          },
        },
      },
    }],
  },
};

async function start(t: TestContext, opts?: KubeApiOptions): Promise<{ api: KubeApi; kc: KubeConfig }> {
  const api = await startKubeApi(opts);
  t.after(() => api.close());
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigPath);
  return { api, kc };
}

/** The Status body of a failed client call. */
async function statusOf(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ApiException, `expected an ApiException, got ${String(e)}`);
    const body = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
    assert.equal(body.code, e.code);
    return body as Record<string, unknown>;
  }
  assert.fail('the call succeeded');
}

function configMap(name: string, data: Record<string, string>, labels: Record<string, string> = {}): V1ConfigMap {
  return { metadata: { name, labels }, data };
}

/** Waits until `predicate` holds, checking after each informer event of `informer`. */
function until(informer: { on(verb: 'add' | 'update' | 'delete', cb: (o: KubernetesObject) => void): void }, predicate: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (predicate()) resolve();
    };
    informer.on('add', check);
    informer.on('update', check);
    informer.on('delete', check);
    check();
  });
}

test('kube-api: an unknown bearer token gets a 401 Status, a known one its identity', { timeout: 30_000 }, async (t) => {
  const { api } = await start(t);
  const res = await fetch(`${api.url}/api/v1/namespaces`, { headers: { authorization: 'Bearer not-a-token' }, dispatcher: new Agent({ connect: { ca: api.ca } }) });
  assert.equal(res.status, 401);
  assert.deepEqual(await res.json(), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
  const tenant = new KubeConfig();
  tenant.loadFromFile(api.kubeconfigFor('system:serviceaccount:team-a:app'));
  await tenant.makeApiClient(CoreV1Api).listNamespace();
  assert.equal(api.requests.at(-1)?.user, 'system:serviceaccount:team-a:app');
});

test('kube-api: an informer sees add, update and delete, and its cache matches the store', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  const core = kc.makeApiClient(CoreV1Api);
  await core.createNamespacedConfigMap({ namespace: 'default', body: configMap('before', { a: '1' }) });
  const informer = makeInformer(kc, '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default' }));
  const seen: string[] = [];
  informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
  informer.on('update', (o) => seen.push(`update ${o.metadata?.name} ${JSON.stringify(o.data)}`));
  informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
  await informer.start();
  t.after(() => informer.stop());
  await core.createNamespacedConfigMap({ namespace: 'default', body: configMap('x', { k: 'v1' }) });
  await core.patchNamespacedConfigMap({ namespace: 'default', name: 'x', body: { data: { k: 'v2' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'before' });
  await until(informer, () => seen.length >= 4);
  assert.deepEqual(seen, ['add before', 'add x', 'update x {"k":"v2"}', 'delete before']);
  assert.deepEqual(informer.list().map((o) => o.metadata?.name), ['x']);
  const stored = api.get('configmaps', 'x', 'default') as V1ConfigMap;
  assert.equal(informer.get('x', 'default')?.metadata?.resourceVersion, stored.metadata?.resourceVersion);
});

test('kube-api: bookmarks reach watches that ask for them, with the current resourceVersion', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  const events: { type: string; rv: string }[] = [];
  let bookmarked: () => void = () => {};
  const gotBookmark = new Promise<void>((resolve) => {
    bookmarked = resolve;
  });
  const watch = new Watch(kc);
  const onEvent = (type: string, o: KubernetesObject) => {
    events.push({ type, rv: String(o.metadata?.resourceVersion) });
    if (type === 'BOOKMARK') bookmarked();
  };
  const req = await watch.watch('/api/v1/namespaces/default/configmaps', { allowWatchBookmarks: true, resourceVersion: api.resourceVersion() }, onEvent, () => {});
  t.after(() => req.abort());
  let plainAdded: () => void = () => {};
  const gotPlain = new Promise<void>((resolve) => {
    plainAdded = resolve;
  });
  const plain = await watch.watch('/api/v1/namespaces/default/configmaps', { resourceVersion: api.resourceVersion() }, (type) => {
    events.push({ type, rv: 'plain' });
    plainAdded();
  }, () => {});
  t.after(() => plain.abort());
  while (api.openWatches().length < 2) await once(api.events, 'watch');
  api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'default' }, data: {} });
  const rv = api.resourceVersion();
  assert.equal(api.bookmark(), 1);
  await Promise.all([gotBookmark, gotPlain]);
  assert.deepEqual(events.filter((e) => e.rv !== 'plain'), [{ type: 'ADDED', rv }, { type: 'BOOKMARK', rv }]);
  assert.deepEqual(events.filter((e) => e.rv === 'plain').map((e) => e.type), ['ADDED'], 'no bookmark unless asked for');
});

test('kube-api: after compaction an informer relists from 410 Gone and its cache ends correct', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  const core = kc.makeApiClient(CoreV1Api);
  for (const n of ['keep', 'change', 'drop']) await core.createNamespacedConfigMap({ namespace: 'default', body: configMap(n, { v: '1' }) });
  const informer = makeInformer(kc, '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default' }));
  const deleted: string[] = [];
  informer.on('delete', (o) => deleted.push(String(o.metadata?.name)));
  await informer.start();
  t.after(() => informer.stop());
  await informer.stop();
  await core.patchNamespacedConfigMap({ namespace: 'default', name: 'change', body: { data: { v: '2' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  await core.deleteNamespacedConfigMap({ namespace: 'default', name: 'drop' });
  await core.createNamespacedConfigMap({ namespace: 'default', body: configMap('new', { v: '1' }) });
  api.compact();
  const gone = new Promise<number>((resolve) => {
    api.events.on('request', (r) => {
      if (r.url.includes('watch=true') && r.url.includes(`resourceVersion=`) && !r.url.includes(`resourceVersion=${api.resourceVersion()}`)) resolve(r.code);
    });
  });
  await informer.start();
  await until(informer, () => informer.list().length === 3 && informer.get('change', 'default')?.data?.v === '2' && deleted.includes('drop'));
  assert.equal(await gone, 200, 'the stale watch is answered 200 with an ERROR event, as kube-apiserver does');
  assert.deepEqual(informer.list().map((o) => o.metadata?.name).sort(), ['change', 'keep', 'new']);
  const lists = api.requests.filter((r) => r.method === 'GET' && !r.url.includes('watch') && r.url.includes('/configmaps'));
  assert.equal(lists.length, 2, 'one initial list and one relist after 410');
});

test('kube-api: a stale watch gets an ERROR event carrying a 410 Expired Status, then the stream ends', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  const old = api.resourceVersion();
  api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'default' }, data: {} });
  api.compact();
  const events: { type: string; object: Record<string, unknown> }[] = [];
  const done = new Promise<unknown>((resolve) => {
    void new Watch(kc).watch('/api/v1/namespaces/default/configmaps', { resourceVersion: old }, (type, object) => events.push({ type, object }), resolve);
  });
  assert.equal(await done, null);
  assert.deepEqual(events, [{
    type: 'ERROR',
    object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${old} (${Number(api.resourceVersion()) + 1})`, reason: 'Expired', code: 410 },
  }]);
});

test('kube-api: dropped watches end cleanly and an informer reconnects and sees what follows', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  const core = kc.makeApiClient(CoreV1Api);
  const informer = makeInformer(kc, '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default' }));
  await informer.start();
  t.after(() => informer.stop());
  while (api.openWatches().length < 1) await once(api.events, 'watch');
  const reopened = once(api.events, 'watch');
  assert.equal(api.dropWatches(), 1);
  await reopened;
  await core.createNamespacedConfigMap({ namespace: 'default', body: configMap('after', {}) });
  await until(informer, () => informer.get('after', 'default') !== undefined);
  const lists = api.requests.filter((r) => r.method === 'GET' && !r.url.includes('watch') && r.url.includes('/configmaps'));
  assert.equal(lists.length, 1, 'a clean end resumes the watch from its resourceVersion without relisting');
});

test('kube-api: replace with a stale resourceVersion is a 409 Conflict Status; the fresh one wins', { timeout: 30_000 }, async (t) => {
  const { kc } = await start(t);
  const core = kc.makeApiClient(CoreV1Api);
  const created = await core.createNamespacedConfigMap({ namespace: 'default', body: configMap('c', { v: '1' }) });
  const first = await core.replaceNamespacedConfigMap({ namespace: 'default', name: 'c', body: { ...created, data: { v: '2' } } });
  assert.notEqual(first.metadata?.resourceVersion, created.metadata?.resourceVersion);
  const body = await statusOf(core.replaceNamespacedConfigMap({ namespace: 'default', name: 'c', body: { ...created, data: { v: '3' } } }));
  assert.deepEqual(body, {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'Conflict', code: 409,
    message: 'Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again',
    details: { name: 'c', kind: 'configmaps' },
  });
  const unchanged = await core.replaceNamespacedConfigMap({ namespace: 'default', name: 'c', body: first });
  assert.equal(unchanged.metadata?.resourceVersion, first.metadata?.resourceVersion, 'a no-op update keeps the resourceVersion');
  assert.equal((await statusOf(core.createNamespacedConfigMap({ namespace: 'default', body: configMap('c', {}) }))).reason, 'AlreadyExists');
  assert.equal((await statusOf(core.readNamespacedConfigMap({ namespace: 'default', name: 'nope' }))).message, 'configmaps "nope" not found');
  assert.equal((await statusOf(core.createNamespacedConfigMap({ namespace: 'missing', body: configMap('c', {}) }))).message, 'namespaces "missing" not found');
});

test('kube-api: the status subresource isolates status from spec, and generation follows spec only', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  api.put(CRD);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ref = { group: 'example.test', version: 'v1', namespace: 'default', plural: 'widgets' };
  const created = await custom.createNamespacedCustomObject({ ...ref, body: { apiVersion: 'example.test/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1 }, status: { ready: true } } });
  assert.equal(created.status, undefined, 'create drops status when the status subresource is on');
  assert.equal(created.metadata.generation, 1);
  const withStatus = await custom.replaceNamespacedCustomObjectStatus({ ...ref, name: 'w', body: { ...created, spec: { size: 99 }, status: { ready: true } } });
  assert.deepEqual([withStatus.spec, withStatus.status, withStatus.metadata.generation], [{ size: 1 }, { ready: true }, 1]);
  const respec = await custom.replaceNamespacedCustomObject({ ...ref, name: 'w', body: { ...withStatus, spec: { size: 2 }, status: { ready: false } } });
  assert.deepEqual([respec.spec, respec.status, respec.metadata.generation], [{ size: 2 }, { ready: true }, 2]);
  const patched = await custom.patchNamespacedCustomObjectStatus({ ...ref, name: 'w', body: [{ op: 'replace', path: '/status/ready', value: false }] }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
  assert.deepEqual([patched.status, patched.metadata.generation], [{ ready: false }, 2]);
  const noRv = await statusOf(custom.replaceNamespacedCustomObject({ ...ref, name: 'w', body: { ...patched, metadata: { name: 'w' } } }));
  assert.equal(noRv.code, 422, 'custom resources need metadata.resourceVersion on update, as in kube-apiserver');
});

test('kube-api: Leases are created and replaced with MicroTime stamps; a millisecond stamp is a 400 as on a real server', { timeout: 30_000 }, async (t) => {
  const { kc } = await start(t);
  const coord = kc.makeApiClient(CoordinationV1Api);
  const lease = await coord.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'leader' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: new V1MicroTime(), renewTime: new V1MicroTime(), leaseTransitions: 0 } } });
  assert.equal(lease.spec?.holderIdentity, 'a');
  const taken = await coord.replaceNamespacedLease({ namespace: 'default', name: 'leader', body: { ...lease, spec: { ...lease.spec, holderIdentity: 'b', renewTime: new V1MicroTime(), leaseTransitions: 1 } } });
  assert.equal(taken.spec?.holderIdentity, 'b');
  const lost = await statusOf(coord.replaceNamespacedLease({ namespace: 'default', name: 'leader', body: { ...lease, spec: { ...lease.spec, holderIdentity: 'c' } } }));
  assert.equal(lost.reason, 'Conflict');
  const millis = await statusOf(coord.replaceNamespacedLease({ namespace: 'default', name: 'leader', body: { ...taken, spec: { ...taken.spec, renewTime: new Date() } } }));
  assert.equal(millis.code, 400);
  assert.match(String(millis.message), /as "2006-01-02T15:04:05.000000Z07:00"/);
  const zero = await statusOf(coord.replaceNamespacedLease({ namespace: 'default', name: 'leader', body: { ...taken, spec: { ...taken.spec, leaseDurationSeconds: 0 } } }));
  assert.equal(zero.message, 'Lease.coordination.k8s.io "leader" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0');
});

test('kube-api: list selects by label and field and pages with limit and continue; an expired continue is 410', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  const core = kc.makeApiClient(CoreV1Api);
  for (const [n, tier] of [['a', 'web'], ['b', 'db'], ['c', 'web']]) await core.createNamespacedConfigMap({ namespace: 'default', body: configMap(n, {}, { tier }) });
  const names = (l: { items: { metadata?: { name?: string } }[] }) => l.items.map((i) => i.metadata?.name);
  assert.deepEqual(names(await core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'tier=web' })), ['a', 'c']);
  assert.deepEqual(names(await core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'tier notin (web),tier' })), ['b']);
  assert.deepEqual(names(await core.listConfigMapForAllNamespaces({ fieldSelector: 'metadata.name=b' })), ['b']);
  assert.deepEqual(names(await core.listNamespacedConfigMap({ namespace: 'default', fieldSelector: 'metadata.namespace!=default' })), []);
  const page = await core.listNamespacedConfigMap({ namespace: 'default', limit: 2 });
  assert.deepEqual([names(page), page.metadata?.remainingItemCount], [['a', 'b'], 1]);
  assert.deepEqual(names(await core.listNamespacedConfigMap({ namespace: 'default', limit: 2, _continue: page.metadata?._continue })), ['c']);
  await core.createNamespacedConfigMap({ namespace: 'default', body: configMap('d', {}) });
  api.compact();
  assert.equal((await statusOf(core.listNamespacedConfigMap({ namespace: 'default', limit: 2, _continue: page.metadata?._continue }))).code, 410);
  assert.equal((await statusOf(core.listNamespacedConfigMap({ namespace: 'default', fieldSelector: 'data.x=1' }))).message, 'field label not supported: data.x');
});

test('kube-api: injected failures answer the next matching requests with a Status, then the server serves again', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  const core = kc.makeApiClient(CoreV1Api);
  api.failNext(1, { method: 'GET', path: '/configmaps', code: 503 });
  const failed = await statusOf(core.listNamespacedConfigMap({ namespace: 'default' }));
  assert.deepEqual([failed.code, failed.reason], [503, 'ServiceUnavailable']);
  assert.deepEqual((await core.listNamespacedConfigMap({ namespace: 'default' })).items, []);
  api.failNext(1, { path: '/configmaps', code: 429, retryAfterSeconds: 1 });
  const throttled = await fetch(`${api.url}/api/v1/namespaces/default/configmaps`, { headers: { authorization: `Bearer ${api.token}` }, dispatcher: new Agent({ connect: { ca: api.ca } }) });
  assert.deepEqual([throttled.status, throttled.headers.get('retry-after')], [429, '1']);
  assert.deepEqual(((await throttled.json()) as { reason: string; details: unknown }).details, { retryAfterSeconds: 1 });
});

test('kube-api: an admission hook sees who writes what and can deny it', { timeout: 30_000 }, async (t) => {
  const { api } = await start(t);
  api.setAdmission((r) => (r.resource === 'configmaps' && r.user !== 'admin' ? { allowed: false, message: `${r.user} may not ${r.operation} ${r.name}` } : undefined));
  const tenant = new KubeConfig();
  tenant.loadFromFile(api.kubeconfigFor('tenant'));
  const denied = await statusOf(tenant.makeApiClient(CoreV1Api).createNamespacedConfigMap({ namespace: 'default', body: configMap('x', {}) }));
  assert.deepEqual([denied.code, denied.message], [403, 'tenant may not CREATE x']);
  assert.equal(api.get('configmaps', 'x', 'default'), undefined);
});

test('kube-api: custom objects are pruned, defaulted and checked against the CRD schema, per fieldValidation', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  api.put(CRD);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ref = { group: 'example.test', version: 'v1', namespace: 'default', plural: 'widgets' };
  const widget = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'example.test/v1', kind: 'Widget', metadata: { name }, spec });
  const warned = await custom.createNamespacedCustomObjectWithHttpInfo({ ...ref, body: widget('w', { size: 2, colour: 'red', shape: {} }) });
  assert.equal(warned.headers.warning, '299 - "unknown field \\"spec.colour\\""');
  assert.deepEqual(api.get('widgets', 'w', 'default')?.spec, { size: 2, shape: { round: false } }, 'pruned and defaulted');
  const strict = await statusOf(custom.createNamespacedCustomObject({ ...ref, body: widget('s', { size: 2, colour: 'red' }), fieldValidation: 'Strict' }));
  assert.deepEqual([strict.code, strict.message], [400, 'Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.colour"']);
  const bad = await statusOf(custom.createNamespacedCustomObject({ ...ref, body: widget('b', { size: 'big', color: 'green' }) }));
  assert.equal(bad.code, 422);
  assert.equal(bad.message, 'Widget.example.test "b" is invalid: [spec.size: Invalid value: "string": spec.size in body must be of type integer: "string", spec.color: Unsupported value: "green": supported values: "red", "blue"]');
  assert.deepEqual((bad.details as { causes: unknown[] }).causes[1], { reason: 'FieldValueNotSupported', message: 'Unsupported value: "green": supported values: "red", "blue"', field: 'spec.color' });
  const tooSmall = await statusOf(custom.patchNamespacedCustomObject({ ...ref, name: 'w', body: { spec: { size: 0 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)));
  assert.match(String(tooSmall.message), /spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1/);
  assert.equal((api.get('widgets', 'w', 'default')?.spec as { size: number }).size, 2, 'a rejected patch changes nothing');
});

test('kube-api: a label-selected informer sees an object arrive and leave as its labels change', { timeout: 30_000 }, async (t) => {
  const { kc } = await start(t);
  const core = kc.makeApiClient(CoreV1Api);
  const selector = 'app.kubernetes.io/managed-by=tenant-dns-controller';
  const informer = makeInformer(kc, '/api/v1/configmaps', () => core.listConfigMapForAllNamespaces({ labelSelector: selector }), selector);
  const seen: string[] = [];
  informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
  informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
  await informer.start();
  t.after(() => informer.stop());
  await core.createNamespacedConfigMap({ namespace: 'default', body: configMap('c', {}) });
  const label = (v: string | null) => core.patchNamespacedConfigMap({ namespace: 'default', name: 'c', body: { metadata: { labels: { 'app.kubernetes.io/managed-by': v } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  await label('tenant-dns-controller');
  await until(informer, () => seen.length === 1);
  await label(null);
  await until(informer, () => seen.length === 2);
  assert.deepEqual(seen, ['add c', 'delete c']);
  assert.deepEqual(informer.list(), []);
});

test('kube-api: an abruptly dropped watch is an error to the informer, which then needs a restart', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  const core = kc.makeApiClient(CoreV1Api);
  const informer = makeInformer(kc, '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default' }));
  const failed = new Promise<unknown>((resolve) => informer.on('error', resolve));
  await informer.start();
  t.after(() => informer.stop());
  while (api.openWatches().length < 1) await once(api.events, 'watch');
  assert.equal(api.dropWatches(true), 1);
  assert.ok(await failed);
  await core.createNamespacedConfigMap({ namespace: 'default', body: configMap('later', {}) });
  await informer.start();
  await until(informer, () => informer.get('later', 'default') !== undefined);
});

test('kube-api: bookmarks also come on their own every bookmarkIntervalMs', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t, { bookmarkIntervalMs: 20 });
  const rv = api.resourceVersion();
  let req: AbortController | undefined;
  const bookmark = await new Promise<string>((resolve) => {
    void new Watch(kc).watch('/api/v1/namespaces', { allowWatchBookmarks: true, resourceVersion: rv }, (type, o) => {
      if (type === 'BOOKMARK') resolve(o.metadata.resourceVersion);
    }, () => {}).then((r) => (req = r));
  });
  req?.abort();
  assert.equal(bookmark, rv);
});

test('kube-api: when the history window overflows, a watch from before it gets 410 while a recent one replays', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t, { historyLimit: 3 });
  const old = api.resourceVersion();
  for (let i = 0; i < 5; i++) api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `c${i}`, namespace: 'default' } });
  const recent = String(Number(api.resourceVersion()) - 2);
  const watchFrom = (rv: string, until: (type: string) => boolean) => new Promise<string[]>((resolve) => {
    const types: string[] = [];
    let req: AbortController | undefined;
    void new Watch(kc).watch('/api/v1/namespaces/default/configmaps', { resourceVersion: rv }, (type, o) => {
      types.push(`${type} ${o.metadata?.name ?? o.code}`);
      if (until(type)) {
        req?.abort();
        resolve(types);
      }
    }, () => resolve(types)).then((r) => (req = r));
  });
  assert.deepEqual(await watchFrom(old, () => false), ['ERROR 410']);
  let n = 0;
  assert.deepEqual(await watchFrom(recent, () => ++n === 2), ['ADDED c3', 'ADDED c4']);
});

test('kube-api: deleting a CRD removes its objects (watchers see DELETED, then their watch ends) and its resource; generateName and deletecollection work', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  api.put(CRD);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ref = { group: 'example.test', version: 'v1', namespace: 'default', plural: 'widgets' };
  const made = await custom.createNamespacedCustomObject({ ...ref, body: { apiVersion: 'example.test/v1', kind: 'Widget', metadata: { generateName: 'w-', labels: { batch: '1' } }, spec: {} } });
  assert.match(made.metadata.name, /^w-[a-z0-9]{5}$/);
  await custom.createNamespacedCustomObject({ ...ref, body: { apiVersion: 'example.test/v1', kind: 'Widget', metadata: { name: 'keep' }, spec: {} } });
  await custom.createNamespacedCustomObject({ ...ref, body: { apiVersion: 'example.test/v1', kind: 'Widget', metadata: { name: 'other', labels: { batch: '1' } }, spec: {} } });
  await custom.deleteCollectionNamespacedCustomObject({ ...ref, labelSelector: 'batch=1' });
  assert.deepEqual(api.list('widgets').map((o) => (o.metadata as { name: string }).name), ['keep']);
  const events: string[] = [];
  const ended = new Promise<string[]>((resolve) => {
    void new Watch(kc).watch('/apis/example.test/v1/widgets', { resourceVersion: api.resourceVersion() }, (type, o) => {
      events.push(`${type} ${o.metadata.name}`);
    }, () => resolve(events)).then((r) => t.after(() => r.abort()));
  });
  while (api.openWatches().length < 1) await once(api.events, 'watch');
  await kc.makeApiClient(ApiextensionsV1Api).deleteCustomResourceDefinition({ name: 'widgets.example.test' });
  assert.deepEqual(await ended, ['DELETED keep'], 'watchers see the objects go, then the watch ends');
  const gone = await statusOf(custom.listNamespacedCustomObject(ref));
  assert.deepEqual([gone.code, gone.message], [404, 'the server could not find the requested resource']);
});

test('kube-api: server-side apply removes what a manager stops applying and reports conflicts between managers', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  const core = kc.makeApiClient(CoreV1Api);
  const ssa = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
  const apply = (manager: string, data: Record<string, string>, force = false) => core.patchNamespacedConfigMap({
    namespace: 'default', name: 'c', fieldManager: manager, force, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'default' }, data },
  }, ssa);
  await apply('renderer', { a: '1', b: '2' });
  await apply('renderer', { a: '1' });
  assert.deepEqual(api.get('configmaps', 'c', 'default')?.data, { a: '1' }, 'b was dropped by the manager that owned it');
  const conflict = await statusOf(apply('intruder', { a: '9' }));
  assert.deepEqual([conflict.code, conflict.reason, conflict.message], [409, 'Conflict', 'Apply failed with 1 conflict: conflict with "renderer" using v1: .data.a']);
  await apply('intruder', { a: '9' }, true);
  assert.deepEqual(api.get('configmaps', 'c', 'default')?.data, { a: '9' });
  assert.equal((await statusOf(apply('renderer', { a: '1' }))).code, 409, 'the forced field now belongs to the intruder');
  const missing = await statusOf(core.patchNamespacedConfigMap({ namespace: 'default', name: 'c', body: { data: {} } }, ssa));
  assert.deepEqual([missing.code, missing.message], [422, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch']);
});

test('kube-api: deleting a namespace deletes its objects as the namespace controller, through admission; a denial leaves it Terminating', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t, { namespaces: ['shop', 'stuck'] });
  const core = kc.makeApiClient(CoreV1Api);
  for (const ns of ['shop', 'stuck']) await core.createNamespacedConfigMap({ namespace: ns, body: configMap('tenant-dns-platform', {}) });
  const deleters: string[] = [];
  api.setAdmission((r) => {
    if (r.operation !== 'DELETE' || r.resource !== 'configmaps') return undefined;
    deleters.push(`${r.user} ${r.namespace}/${r.name}`);
    return r.namespace === 'stuck' ? { allowed: false, message: 'no' } : undefined;
  });
  await core.deleteNamespace({ name: 'shop' });
  assert.deepEqual([api.get('namespaces', 'shop'), api.list('configmaps', 'shop')], [undefined, []]);
  const terminating = (await core.deleteNamespace({ name: 'stuck' })) as unknown as V1Namespace;
  assert.equal(terminating.status?.phase, 'Terminating', 'the answer is the Namespace, as kube-apiserver sends (client-node types it as a Status)');
  assert.deepEqual(deleters, ['system:serviceaccount:kube-system:namespace-controller shop/tenant-dns-platform', 'system:serviceaccount:kube-system:namespace-controller stuck/tenant-dns-platform']);
  const refused = await statusOf(core.createNamespacedConfigMap({ namespace: 'stuck', body: configMap('new', {}) }));
  assert.deepEqual([refused.code, refused.message], [403, 'configmaps "new" is forbidden: unable to create new content in namespace stuck because it is being terminated']);
  api.setAdmission(undefined);
  await core.deleteNamespace({ name: 'stuck' });
  assert.equal(api.get('namespaces', 'stuck'), undefined);
});

test('kube-api: putYaml loads a YAML stream in order, and waitFor resolves on the write a test expects', { timeout: 30_000 }, async (t) => {
  const { api, kc } = await start(t);
  const stored = api.putYaml(`${JSON.stringify(CRD)}\n---\n# a comment-only document is skipped\n---\napiVersion: example.test/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\nspec: {size: 1}\n`);
  assert.deepEqual(stored.map((o) => o.kind), ['CustomResourceDefinition', 'Widget']);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const ready = api.waitFor('widgets', (objects) => objects.find((o) => (o.status as { ready?: boolean } | undefined)?.ready === true));
  const current = await custom.getNamespacedCustomObject({ group: 'example.test', version: 'v1', namespace: 'default', plural: 'widgets', name: 'w' });
  await custom.replaceNamespacedCustomObjectStatus({ group: 'example.test', version: 'v1', namespace: 'default', plural: 'widgets', name: 'w', body: { ...current, status: { ready: true } } });
  assert.equal(((await ready).metadata as { name: string }).name, 'w');
  await assert.rejects(api.waitFor('configmaps', () => false, 50), /waitFor configmaps: not satisfied within 50 ms/);
});
