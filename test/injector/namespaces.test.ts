/**
 * The namespace watch cache (a client-node informer) against a fake API
 * server on 127.0.0.1 that serves list, watch (chunked JSON lines) and get
 * for namespaces; loading API access from a kubeconfig or a ServiceAccount.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { Keys } from '../../injector/names.ts';
import { loadKubeConfig } from '../../injector/kube.ts';
import { isTenantName, NamespaceWatchCache, resolveTenant } from '../../injector/namespaces.ts';
import { kubeConfigAt } from './fixtures.ts';
import { referenceTimer } from '../helpers/events.ts';

const ns = (name: string, labels: Record<string, string> = {}, rv = '1') => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels, resourceVersion: rv } });

interface FakeApi {
  url: string;
  watchers: http.ServerResponse[];
  requests: string[];
  auth: (string | undefined)[];
  send(event: unknown): void;
  getDelayMs: number;
}

async function fakeApi(t: TestContext, items: ReturnType<typeof ns>[]): Promise<FakeApi> {
  const api: FakeApi = { url: '', watchers: [], requests: [], auth: [], getDelayMs: 0, send: () => {} };
  const server = http.createServer((req, res) => {
    api.requests.push(req.url ?? '');
    api.auth.push(req.headers.authorization);
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/api/v1/namespaces' && url.searchParams.get('watch') === 'true') {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
      api.watchers.push(res);
      return;
    }
    if (url.pathname === '/api/v1/namespaces') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'NamespaceList', apiVersion: 'v1', metadata: { resourceVersion: '100' }, items }));
      return;
    }
    const m = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(url.pathname);
    if (m) {
      setTimeout(() => {
        const found = items.find((i) => i.metadata.name === m[1]);
        res.writeHead(found ? 200 : 404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(found ?? { kind: 'Status', code: 404 }));
      }, api.getDelayMs).unref();
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  api.send = (event) => {
    for (const w of api.watchers) w.write(JSON.stringify(event) + '\n');
  };
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return api;
}

const until = async (cond: () => boolean, ms = 2_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

const signal = () => new AbortController().signal;

test('namespaces: tenant from the label after the initial list, else the namespace name; opt-out only where the namespace allows it', async (t) => {
  const api = await fakeApi(t, [
    ns('team-a', { [Keys.namespaceTenant]: 'acme' }),
    ns('team-b'),
    ns('team-open', { [Keys.namespaceAllowOptOut]: 'true' }),
    ns('team-yes', { [Keys.namespaceAllowOptOut]: 'yes' }),
  ]);
  const cache = new NamespaceWatchCache({ kubeConfig: kubeConfigAt(api.url), label: Keys.namespaceTenant });
  t.after(() => cache.close());
  cache.start();
  assert.equal(await cache.waitForSync(2_000), true);
  assert.deepEqual(await cache.resolve('team-a', signal()), { tenant: 'acme', source: 'label', allowOptOut: false });
  assert.deepEqual(await cache.resolve('team-b', signal()), { tenant: 'team-b', source: 'namespace', allowOptOut: false });
  assert.deepEqual(await cache.resolve('team-open', signal()), { tenant: 'team-open', source: 'namespace', allowOptOut: true });
  assert.equal((await cache.resolve('team-yes', signal())).allowOptOut, false, 'only the value "true" allows it');
  assert.equal(api.requests.filter((r) => r.startsWith('/api/v1/namespaces/')).length, 0, 'answered from the cache');
});

test('namespaces: watch events update the cache; ERROR (410 Gone) relists', async (t) => {
  const api = await fakeApi(t, [ns('team-a')]);
  const cache = new NamespaceWatchCache({ kubeConfig: kubeConfigAt(api.url), label: Keys.namespaceTenant });
  t.after(() => cache.close());
  cache.start();
  await until(() => api.watchers.length === 1);
  assert.match(api.requests.at(-1) ?? '', /watch=true.*resourceVersion=100/);
  api.send({ type: 'MODIFIED', object: ns('team-a', { [Keys.namespaceTenant]: 'acme' }, '101') });
  api.send({ type: 'ADDED', object: ns('team-c', { [Keys.namespaceTenant]: 'corp' }, '102') });
  // Events are applied in order as the watch stream is read: ask until the later one shows (a namespace
  // not seen yet is fetched directly, and the fake API does not know team-c).
  for (let i = 0; i < 200 && (await cache.resolve('team-c', signal())).tenant !== 'corp'; i++);
  assert.equal((await cache.resolve('team-a', signal())).tenant, 'acme');
  assert.equal((await cache.resolve('team-c', signal())).tenant, 'corp');
  api.send({ type: 'BOOKMARK', object: { kind: 'Namespace', metadata: { resourceVersion: '150' } } });
  api.send({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
  for (const w of api.watchers.splice(0)) w.end();
  await until(() => api.watchers.length === 1);
  assert.equal(api.requests.filter((r) => r === '/api/v1/namespaces').length, 2, 'relisted after 410');
});

test('namespaces: an unseen namespace is fetched directly; a missing one is its own tenant', async (t) => {
  const items = [ns('team-a')];
  const api = await fakeApi(t, items);
  const cache = new NamespaceWatchCache({ kubeConfig: kubeConfigAt(api.url), label: Keys.namespaceTenant });
  t.after(() => cache.close());
  items.push(ns('late', { [Keys.namespaceTenant]: 'late-tenant' }));
  assert.deepEqual(await cache.resolve('late', signal()), { tenant: 'late-tenant', source: 'label', allowOptOut: false });
  assert.deepEqual(await cache.resolve('gone', signal()), { tenant: 'gone', source: 'namespace' });
});

test('namespaces: an invalid label value falls back to the namespace name with a warning', async (t) => {
  const api = await fakeApi(t, [ns('team-a', { [Keys.namespaceTenant]: '-bad-' })]);
  const cache = new NamespaceWatchCache({ kubeConfig: kubeConfigAt(api.url), label: Keys.namespaceTenant });
  t.after(() => cache.close());
  const r = await cache.resolve('team-a', signal());
  assert.equal(r.tenant, 'team-a');
  assert.equal(r.source, 'fallback');
  assert.match(r.warning ?? '', /not a valid tenant name/);
});

test('namespaces: a slow API server is cut off by the deadline', async (t) => {
  const api = await fakeApi(t, [ns('team-a', { [Keys.namespaceTenant]: 'acme' })]);
  api.getDelayMs = 5_000;
  const cache = new NamespaceWatchCache({ kubeConfig: kubeConfigAt(api.url), label: Keys.namespaceTenant });
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
  const cache = new NamespaceWatchCache({ kubeConfig: kubeConfigAt('http://127.0.0.1:9'), label: 'l', backoffMs: 10, onError: (m) => errors.push(m) });
  t.after(() => cache.close());
  cache.start();
  await until(() => errors.length >= 2);
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
