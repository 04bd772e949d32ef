/**
 * The namespace watch cache (a client-node informer) against the stand-in
 * API server (test/helpers/kube-api.ts: list, watch, 410 Gone after
 * compaction), a hanging server for the deadline, and loading API access
 * from a kubeconfig or a ServiceAccount.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadKubeConfig } from '../../injector/kube.ts';
import { Keys } from '../../injector/names.ts';
import { isTenantName, NamespaceWatchCache, resolveTenant } from '../../injector/namespaces.ts';
import { referenceTimer } from '../helpers/events.ts';
import { startKubeApi, type KubeApi } from '../helpers/kube-api.ts';
import { kubeConfigAt } from './fixtures.ts';

const ns = (name: string, labels: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });

async function standIn(t: TestContext, items: ReturnType<typeof ns>[]): Promise<KubeApi> {
  const api = await startKubeApi();
  t.after(() => api.close());
  for (const i of items) api.put(i);
  return api;
}

function cacheOn(t: TestContext, api: KubeApi): NamespaceWatchCache {
  const cache = new NamespaceWatchCache({ kubeConfig: loadKubeConfig(api.kubeconfigPath)!, label: Keys.namespaceTenant, backoffMs: 20 });
  t.after(() => cache.close());
  return cache;
}

/** Resolves when `check` holds, checking after every request the API server answers. */
function until(api: KubeApi, check: () => boolean | Promise<boolean>, what: string, ms = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let busy = false;
    const finish = (err?: Error) => {
      clearTimeout(timer);
      api.events.off('request', probe);
      api.events.off('watch', probe);
      if (err) reject(err);
      else resolve();
    };
    const probe = async () => {
      if (busy) return;
      busy = true;
      try {
        if (await check()) finish();
      } finally {
        busy = false;
      }
    };
    const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}`)), ms);
    api.events.on('request', probe);
    api.events.on('watch', probe);
    void probe();
  });
}

/** Resolves when `check` holds, checking after every change the cache's informer applies. */
function untilCached(cache: NamespaceWatchCache, check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const probe = () => {
      if (check()) resolve();
    };
    for (const verb of ['add', 'update', 'delete'] as const) cache.namespaces.informer.on(verb, probe);
    probe();
  });
}

const signal = () => new AbortController().signal;
const namespaceGets = (api: KubeApi) => api.requests.filter((r) => /^\/api\/v1\/namespaces\/[^/?]+$/.test(r.url));
const namespaceLists = (api: KubeApi) => api.requests.filter((r) => r.method === 'GET' && /^\/api\/v1\/namespaces(\?(?!.*watch=)|$)/.test(r.url));

test('namespaces: tenant from the label after the initial list, else the namespace name; opt-out only where the namespace allows it', async (t) => {
  const api = await standIn(t, [
    ns('team-a', { [Keys.namespaceTenant]: 'acme' }),
    ns('team-b'),
    ns('team-open', { [Keys.namespaceAllowOptOut]: 'true' }),
    ns('team-yes', { [Keys.namespaceAllowOptOut]: 'yes' }),
  ]);
  const cache = cacheOn(t, api);
  cache.start();
  await cache.namespaces.whenSynced;
  assert.deepEqual(await cache.resolve('team-a', signal()), { tenant: 'acme', source: 'label', allowOptOut: false });
  assert.deepEqual(await cache.resolve('team-b', signal()), { tenant: 'team-b', source: 'namespace', allowOptOut: false });
  assert.deepEqual(await cache.resolve('team-open', signal()), { tenant: 'team-open', source: 'namespace', allowOptOut: true });
  assert.equal((await cache.resolve('team-yes', signal())).allowOptOut, false, 'only the value "true" allows it');
  assert.equal(namespaceGets(api).length, 0, 'answered from the cache');
});

test('namespaces: watch events update the cache; after 410 Gone it relists', async (t) => {
  const api = await standIn(t, [ns('team-a')]);
  const cache = cacheOn(t, api);
  cache.start();
  await until(api, () => api.openWatches().some((w) => w.startsWith('/api/v1/namespaces')), 'the namespace watch');
  const watch = api.requests.find((r) => r.url.startsWith('/api/v1/namespaces?') && r.url.includes('watch=true'));
  assert.match(watch?.url ?? '', /allowWatchBookmarks=true/, 'bookmarks asked for');
  api.put(ns('team-a', { [Keys.namespaceTenant]: 'acme' }));
  api.put(ns('team-c', { [Keys.namespaceTenant]: 'corp' }));
  await untilCached(cache, () => cache.namespaces.informer.get('team-c') !== undefined && cache.namespaces.informer.get('team-a')?.metadata?.labels?.[Keys.namespaceTenant] === 'acme');
  assert.equal((await cache.resolve('team-a', signal())).tenant, 'acme');
  assert.equal((await cache.resolve('team-c', signal())).tenant, 'corp');
  assert.equal(namespaceGets(api).length, 0, 'from the cache, not fetched');
  // The watch goes away, a change happens, and the history it would resume from is compacted: 410, relist.
  const lists = namespaceLists(api).length;
  api.dropWatches(true);
  api.put(ns('team-d', { [Keys.namespaceTenant]: 'delta' }));
  api.compact();
  await untilCached(cache, () => cache.namespaces.informer.get('team-d') !== undefined);
  assert.equal(namespaceLists(api).length, lists + 1, 'relisted after 410 Gone');
  assert.equal(cache.namespaces.lists, 2);
  assert.equal((await cache.resolve('team-d', signal())).tenant, 'delta');
});

test('namespaces: an unseen namespace is fetched directly; a missing one is its own tenant', async (t) => {
  const api = await standIn(t, [ns('team-a')]);
  const cache = cacheOn(t, api); // not started: nothing is cached
  api.put(ns('late', { [Keys.namespaceTenant]: 'late-tenant' }));
  assert.deepEqual(await cache.resolve('late', signal()), { tenant: 'late-tenant', source: 'label', allowOptOut: false });
  assert.deepEqual(await cache.resolve('gone', signal()), { tenant: 'gone', source: 'namespace' });
  assert.deepEqual(namespaceGets(api).map((r) => `${r.url} ${r.code}`), ['/api/v1/namespaces/late 200', '/api/v1/namespaces/gone 404']);
});

/** An API server that never answers (it accepts and holds every request). */
async function hangingApi(t: TestContext): Promise<string> {
  const server = http.createServer(() => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

test('namespaces: a slow API server is cut off by the deadline', async (t) => {
  const cache = new NamespaceWatchCache({ kubeConfig: kubeConfigAt(await hangingApi(t)), label: Keys.namespaceTenant });
  t.after(() => cache.close());
  // The deadline's timer is started after the reference timer, and timers fire in the order they expire.
  const late = referenceTimer(1_000);
  t.after(() => late.cancel());
  const r = await resolveTenant(cache, 'team-a', 100);
  assert.ok(!late.fired, 'the slow lookup was cut off at its deadline');
  assert.deepEqual({ tenant: r.tenant, source: r.source }, { tenant: 'team-a', source: 'fallback' });
  assert.match(r.warning ?? '', /timed out/);
});

test('namespaces: an unreachable API server means fallback, and the watch loop retries', async (t) => {
  const errors: string[] = [];
  let twice!: () => void;
  const retried = new Promise<void>((r) => (twice = r));
  const cache = new NamespaceWatchCache({
    kubeConfig: kubeConfigAt('http://127.0.0.1:9'),
    label: 'l',
    backoffMs: 10,
    onError: (m) => {
      if (errors.push(m) === 2) twice();
    },
  });
  t.after(() => cache.close());
  cache.start();
  await retried;
  const r = await resolveTenant(cache, 'team-a', 500);
  assert.equal(r.source, 'fallback');
  assert.match(r.warning ?? '', /lookup failed/);
});

test('namespaces: API access from --kubeconfig, else from the ServiceAccount in a cluster, else none', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-sa-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n');
  assert.equal(loadKubeConfig(file)?.getCurrentCluster()?.server, 'https://127.0.0.1:6443');
  assert.equal(loadKubeConfig(undefined, {}, dir), undefined, 'no KUBERNETES_SERVICE_HOST: not in a cluster');
  assert.equal(loadKubeConfig(undefined, { KUBERNETES_SERVICE_HOST: '10.96.0.1' }, dir), undefined, 'no token mounted');
  const sa = join(dir, 'var/run/secrets/kubernetes.io/serviceaccount');
  mkdirSync(sa, { recursive: true });
  for (const f of ['token', 'ca.crt', 'namespace']) writeFileSync(join(sa, f), f === 'namespace' ? 'tenant-dns-system' : 'x');
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  t.after(() => {
    for (const [k, v] of [['KUBERNETES_SERVICE_HOST', saved.host], ['KUBERNETES_SERVICE_PORT', saved.port]] as const) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  });
  process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
  process.env.KUBERNETES_SERVICE_PORT = '443';
  const kc = loadKubeConfig(undefined, process.env, dir);
  assert.equal(kc?.getCurrentCluster()?.server, 'https://10.96.0.1:443');
  assert.equal(kc?.getContextObject(kc.getCurrentContext())?.namespace, 'tenant-dns-system');
});

test('namespaces: tenant names are label values of at most 63 characters', () => {
  for (const ok of ['a', 'team-a', 'Team_A.1', 'x'.repeat(63)]) assert.ok(isTenantName(ok), ok);
  for (const bad of ['', '-a', 'a-', 'x'.repeat(64), 'a b', 'a/b', 7]) assert.ok(!isTenantName(bad), String(bad));
});
