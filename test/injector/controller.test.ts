/**
 * The controller end to end against the stand-in API server
 * (test/helpers/kube-api.ts: HTTPS, list/watch, 410 Gone, conflicts, the
 * status subresource, Leases): the CRDs of deploy/crds/ registered, objects
 * written through the API by a platform user and a tenant user with
 * client-node, the controller (with its leader election) rendering the
 * ConfigMaps and setting status. Waits are on the API server's request events,
 * never on time windows.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { CustomObjectsApi, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { parse, parseAllDocuments } from 'yaml';
import { parseInjectorConfig } from '../../injector/config.ts';
import { startControlPlane, type ControlPlane } from '../../injector/controller.ts';
import { loadKubeConfig } from '../../injector/kube.ts';
import { createControllerMetrics } from '../../injector/metrics.ts';
import { NamespaceWatchCache } from '../../injector/namespaces.ts';
import { startKubeApi, type KubeApi, type RequestRecord } from '../helpers/kube-api.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';
import { decodeReply, encodeQuery, extendedError } from '../helpers/dns-client.ts';
import { makeTestPki } from '../helpers/k8s-certs.ts';
import { sidecarBehind, spawnCli } from '../helpers/sidecar.ts';
import { configMapReview, postJson, startTestInjector } from './fixtures.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const GROUP = 'tenant-dns.io';
const VERSION = 'v1alpha1';
const CONTROLLER = 'system:serviceaccount:tenant-dns-system:tenant-dns-injector';
const PLATFORM_USER = 'platform-admin';
const TENANT_USER = 'alice';

/** The stand-in with the CRDs of deploy/crds/ registered and the namespaces given. */
async function startApi(t: TestContext, namespaces: Record<string, Record<string, string>>): Promise<KubeApi> {
  const api = await startKubeApi({ namespaces: ['tenant-dns-system'] });
  t.after(() => api.close());
  const dir = join(ROOT, 'deploy', 'crds');
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) api.put(doc.toJS());
  }
  for (const [name, labels] of Object.entries(namespaces)) api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });
  return api;
}

const injected = (tenant: string, extra: Record<string, string> = {}) => ({ 'tenant-dns.io/inject': 'enabled', 'tenant-dns.io/tenant': tenant, ...extra });

/** client-node APIs acting as `user`. */
function as(api: KubeApi, user: string) {
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigFor(user));
  return { custom: kc.makeApiClient(CustomObjectsApi), core: kc.makeApiClient(CoreV1Api) };
}

interface Plane {
  readonly plane: ControlPlane;
  readonly registry: Registry;
  readonly user: string;
  stop(): Promise<void>;
}

/** A controller replica acting as `user`, with short election timings (the Lease protocol is leader.test.ts's). */
async function startPlane(t: TestContext, api: KubeApi, user = CONTROLLER, identity = 'injector-0', informerBackoffMs = 20): Promise<Plane> {
  const kubeConfig = loadKubeConfig(api.kubeconfigFor(user))!;
  const config = parseInjectorConfig({ clusterDns: '10.96.0.10:53' });
  const cache = new NamespaceWatchCache({ kubeConfig, label: config.tenantLabel, backoffMs: 20 });
  cache.start();
  const registry = new Registry();
  const plane = startControlPlane({
    kubeConfig,
    config,
    namespaces: cache.namespaces,
    metrics: createControllerMetrics(registry),
    leaseNamespace: 'tenant-dns-system',
    identity,
    debounceMs: 20,
    resyncMs: 0,
    backoffMs: 10,
    informerBackoffMs,
    election: { leaseDurationSeconds: 5, renewIntervalMs: 500, renewDeadlineMs: 3_000, retryIntervalMs: 100 },
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await plane.stop();
    cache.close();
  };
  t.after(stop);
  return { plane, registry, user, stop };
}

/** Resolves when `check` holds, checking after every request the API server answers; rejects after `ms`. */
function until(api: KubeApi, what: string, check: () => boolean, ms = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      api.events.off('request', onRequest);
      if (err) reject(err);
      else resolve();
    };
    const onRequest = () => {
      try {
        if (check()) done();
      } catch (err) {
        done(err as Error);
      }
    };
    const last = () => api.requests.slice(-8).map((r) => `${r.user} ${r.method} ${r.url.split('?')[0]} ${r.code}`).join('; ');
    const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}; last requests: ${last()}`)), ms);
    api.events.on('request', onRequest);
    onRequest();
  });
}

const policyOf = (api: KubeApi, ns: string, name: string): any => {
  const cm = api.get('configmaps', name, ns);
  return cm ? parse(String((cm.data as Record<string, string>)['policy.yaml'])) : undefined;
};
const accepted = (o: any) => o?.status?.conditions?.find((c: any) => c.type === 'Accepted');
const writesBy = (api: KubeApi, user: string, since = 0): RequestRecord[] =>
  api.requests.slice(since).filter((r) => r.user === user && (r.method === 'POST' || r.method === 'PUT' || r.method === 'PATCH') && !r.url.includes('/leases'));

const BASELINE = {
  apiVersion: `${GROUP}/${VERSION}`,
  kind: 'ClusterDNSPolicy',
  metadata: { name: 'baseline' },
  spec: {
    rules: [{ name: 'known-bad', action: 'deny', names: ['*.malware.example'] }],
    serviceDiscovery: { isolation: 'tenant', sharedNamespaces: ['default', 'kube-system'] },
  },
};

const TEAM_POLICY = {
  apiVersion: `${GROUP}/${VERSION}`,
  kind: 'DNSPolicy',
  metadata: { name: 'web', namespace: 'team-a' },
  spec: { rules: [{ name: 'no-ads', action: 'deny', names: ['*.ads.example.com'] }] },
};

async function applyBaseline(api: KubeApi): Promise<void> {
  const platform = as(api, PLATFORM_USER);
  await platform.custom.createClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clusterdnspolicies', body: structuredClone(BASELINE) });
  const tenant = as(api, TENANT_USER);
  await tenant.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-a', plural: 'dnspolicies', body: structuredClone(TEAM_POLICY) });
}

const rendered = (api: KubeApi) => () => policyOf(api, 'team-a', 'tenant-dns-policy')?.spec?.rules?.length === 1 && policyOf(api, 'team-a', 'tenant-dns-platform')?.spec?.rules !== undefined;

test('controller: renders both layers of every injected namespace from objects written through the API, and sets Accepted', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme'), 'team-b': injected('acme'), 'team-c': injected('globex'), plain: {} });
  await applyBaseline(api);
  await startPlane(t, api);
  await until(api, 'the rendered ConfigMaps and statuses', () => rendered(api)() && accepted(api.get('dnspolicies', 'web', 'team-a'))?.status === 'True' && accepted(api.get('clusterdnspolicies', 'baseline'))?.status === 'True');

  for (const ns of ['team-a', 'team-b', 'team-c']) {
    for (const [name, layer] of [['tenant-dns-platform', 'platform'], ['tenant-dns-policy', 'tenant']]) {
      const cm = api.get('configmaps', name, ns)!;
      validateK8sObject(cm);
      const meta = cm.metadata as any;
      assert.equal(meta.labels['app.kubernetes.io/managed-by'], 'tenant-dns-controller', `${ns}/${name}`);
      assert.equal(meta.labels['tenant-dns.io/layer'], layer);
    }
  }
  assert.equal(api.get('configmaps', 'tenant-dns-platform', 'plain'), undefined, 'a namespace not injected gets nothing');
  const platform = policyOf(api, 'team-a', 'tenant-dns-platform');
  assert.equal(platform.kind, 'DNSPolicy');
  assert.deepEqual(platform.spec.rules.map((r: any) => r.name), ['known-bad']);
  assert.deepEqual(platform.spec.serviceDiscovery, { isolation: 'tenant', namespaces: ['team-a', 'team-b'], sharedNamespaces: ['default', 'kube-system'] });
  assert.deepEqual(policyOf(api, 'team-c', 'tenant-dns-platform').spec.serviceDiscovery.namespaces, ['team-c']);
  assert.deepEqual(policyOf(api, 'team-a', 'tenant-dns-policy').spec.rules.map((r: any) => r.name), ['no-ads']);
  assert.deepEqual(policyOf(api, 'team-b', 'tenant-dns-policy').spec.rules ?? [], [], 'no DNSPolicy: an empty tenant layer');
  assert.match(String((api.get('configmaps', 'tenant-dns-platform', 'team-a')!.metadata as any).annotations['tenant-dns.io/rendered-from']), /^ClusterDNSPolicy\/baseline@1$/);
  const cond = accepted(api.get('dnspolicies', 'web', 'team-a'));
  assert.equal(cond.observedGeneration, 1);
  assert.equal(cond.reason, 'Accepted');
  assert.equal((api.get('clusterdnspolicies', 'baseline') as any).status.namespaces, 3);
  // Every write was the controller's; the users only wrote their objects.
  const writers = new Set(api.requests.filter((r) => r.url.includes('/configmaps') && r.method !== 'GET').map((r) => r.user));
  assert.deepEqual([...writers], [CONTROLLER]);
});

test('controller: a changed DNSPolicy re-renders; an invalid one gets Accepted=False naming the field and the last good render stays', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme') });
  await applyBaseline(api);
  const { plane } = await startPlane(t, api);
  await until(api, 'the first render', rendered(api));
  const tenant = as(api, TENANT_USER);
  const current = await tenant.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-a', plural: 'dnspolicies', name: 'web' });
  current.spec.rules.push({ name: 'no-trackers', action: 'deny', names: ['*.tracker.example'] });
  await tenant.custom.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-a', plural: 'dnspolicies', name: 'web', body: current });
  await until(api, 're-render with the new rule', () => policyOf(api, 'team-a', 'tenant-dns-policy')?.spec.rules.length === 2 && accepted(api.get('dnspolicies', 'web', 'team-a'))?.observedGeneration === 2);
  const good = policyOf(api, 'team-a', 'tenant-dns-policy');

  const next = await tenant.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-a', plural: 'dnspolicies', name: 'web' });
  next.spec.rules[1].names = ['*.tracker.example', 'bad name with spaces'];
  await tenant.custom.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-a', plural: 'dnspolicies', name: 'web', body: next });
  await until(api, 'Accepted=False', () => accepted(api.get('dnspolicies', 'web', 'team-a'))?.status === 'False');
  const cond = accepted(api.get('dnspolicies', 'web', 'team-a'));
  assert.equal(cond.observedGeneration, 3);
  assert.match(cond.message, /spec\.rules\[1\]\.names\[1\]/, cond.message);
  await plane.controller.idle();
  assert.deepEqual(policyOf(api, 'team-a', 'tenant-dns-policy'), good, 'the last good policy keeps serving (only the header comment says it is the last accepted spec)');
  assert.match(String((api.get('configmaps', 'tenant-dns-policy', 'team-a')!.data as any)['policy.yaml']), /DNSPolicy\/web@last-accepted/);
  // kubectl describe shows why: a Warning Event on the object (none while it was accepted).
  const events = () => api.list('events', 'team-a').filter((e: any) => e.involvedObject?.kind === 'DNSPolicy' && e.involvedObject?.name === 'web') as any[];
  await until(api, 'the Warning event', () => events().length > 0);
  assert.deepEqual(events().map((e) => [e.type, e.reason, e.source.component]), [['Warning', 'Invalid', 'tenant-dns-controller']]);
  assert.match(events()[0].message, /spec\.rules\[1\]\.names\[1\]/);
  validateK8sObject(events()[0]);
});

test('controller: labelling a namespace for a tenant re-renders the isolation list of that tenant\'s namespaces', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme'), 'team-c': injected('globex'), 'team-d': {} });
  await applyBaseline(api);
  const { plane } = await startPlane(t, api);
  await until(api, 'the first render and statuses', () => rendered(api)() && accepted(api.get('clusterdnspolicies', 'baseline'))?.status === 'True' && accepted(api.get('dnspolicies', 'web', 'team-a'))?.status === 'True');
  await plane.controller.idle();
  assert.deepEqual(policyOf(api, 'team-a', 'tenant-dns-platform').spec.serviceDiscovery.namespaces, ['team-a']);
  // The platform labels team-d for acme; nothing else changes.
  const { core } = as(api, PLATFORM_USER);
  const ns = await core.readNamespace({ name: 'team-d' });
  ns.metadata!.labels = { ...ns.metadata!.labels, ...injected('acme') };
  await core.replaceNamespace({ name: 'team-d', body: ns });
  await until(api, 'team-d in acme\'s lists', () => ['team-a', 'team-d'].every((n) => policyOf(api, n, 'tenant-dns-platform')?.spec.serviceDiscovery.namespaces.includes('team-d')));
  assert.deepEqual(policyOf(api, 'team-a', 'tenant-dns-platform').spec.serviceDiscovery.namespaces, ['team-a', 'team-d']);
  assert.deepEqual(policyOf(api, 'team-d', 'tenant-dns-platform').spec.serviceDiscovery.namespaces, ['team-a', 'team-d']);
  assert.deepEqual(policyOf(api, 'team-c', 'tenant-dns-platform').spec.serviceDiscovery.namespaces, ['team-c'], 'another tenant\'s list is unchanged');
});

test('controller: of two replicas only the leader writes; when it stops, the other takes over', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme') });
  await applyBaseline(api);
  const a = await startPlane(t, api, 'controller-a', 'injector-a');
  await until(api, 'a renders', rendered(api));
  const b = await startPlane(t, api, 'controller-b', 'injector-b');
  await until(api, 'b has synced and tried the lease', () => api.requests.some((r) => r.user === 'controller-b' && r.url.includes('/leases/')));
  assert.equal(a.plane.elector.isLeader, true);
  assert.equal(b.plane.elector.isLeader, false);
  const lease = api.get('leases', 'tenant-dns-controller', 'tenant-dns-system') as any;
  assert.equal(lease.spec.holderIdentity, 'injector-a');
  // A change: the leader writes it, the other replica does not.
  const { custom } = as(api, PLATFORM_USER);
  const baseline = await custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clusterdnspolicies', name: 'baseline' });
  baseline.spec.rules.push({ name: 'no-onion', action: 'deny', names: ['*.onion'] });
  await custom.replaceClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clusterdnspolicies', name: 'baseline', body: baseline });
  await until(api, 'a renders the change', () => policyOf(api, 'team-a', 'tenant-dns-platform')?.spec.rules.length === 2);
  assert.equal(writesBy(api, 'controller-b').length, 0, 'b wrote nothing');
  assert.match(await b.registry.metrics(), /tenant_dns_controller_leader 0/);
  assert.match(await a.registry.metrics(), /tenant_dns_controller_leader 1/);

  await a.stop();
  assert.equal((api.get('leases', 'tenant-dns-controller', 'tenant-dns-system') as any).spec.holderIdentity, '', 'released on stop');
  await until(api, 'b leads', () => b.plane.elector.isLeader);
  const since = api.requests.length;
  baseline.metadata = (await custom.getClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clusterdnspolicies', name: 'baseline' })).metadata;
  baseline.spec.rules.pop();
  await custom.replaceClusterCustomObject({ group: GROUP, version: VERSION, plural: 'clusterdnspolicies', name: 'baseline', body: baseline });
  await until(api, 'b renders the next change', () => policyOf(api, 'team-a', 'tenant-dns-platform')?.spec.rules.length === 1);
  assert.ok(writesBy(api, 'controller-b', since).length > 0);
  assert.equal(writesBy(api, 'controller-a', since).length, 0);
});

test('controller: after a 410 Gone (history compacted while the watches were down) it relists and catches up', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme') });
  await applyBaseline(api);
  // Informers restart 300 ms after an error, 600 ms after a second one: the window the change below lands in.
  const { plane } = await startPlane(t, api, CONTROLLER, 'injector-0', 300);
  await until(api, 'the first render', rendered(api));
  const isList = (r: RequestRecord) => r.method === 'GET' && /\/dnspolicies(\?(?!.*watch=)|$)/.test(r.url);
  const isWatch = (r: RequestRecord) => r.method === 'GET' && /\/dnspolicies\?.*watch=true/.test(r.url);
  const lists = api.requests.filter(isList).length;
  // The DNSPolicy watch goes down and its first attempt to come back fails: the informer waits before the next.
  api.failNext(1, { path: /\/dnspolicies\?.*watch=true/ });
  api.dropWatches(true);
  await until(api, 'the failed re-watch', () => api.requests.some((r) => isWatch(r) && r.code === 500));
  const since = api.requests.length;
  // Meanwhile a change it does not see, and the history it would resume from is compacted.
  const tenant = as(api, TENANT_USER);
  const current = await tenant.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-a', plural: 'dnspolicies', name: 'web' });
  current.spec.rules[0].names.push('*.ads.example.net');
  await tenant.custom.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-a', plural: 'dnspolicies', name: 'web', body: current });
  api.compact();
  assert.equal(api.requests.slice(since).filter(isWatch).length, 0, 'the change happened while the watch was down');
  await until(api, 'the change rendered', () => policyOf(api, 'team-a', 'tenant-dns-policy')?.spec.rules[0].names.length === 2);
  // It came back from its old resourceVersion, was told 410 Gone, and listed again.
  assert.ok(api.requests.slice(since).some(isWatch), 'it watched again');
  assert.equal(api.requests.filter(isList).length, lists + 1, 'one relist of DNSPolicies');
  await plane.controller.idle();
});

test('controller: no write when nothing changed', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme'), 'team-b': injected('acme') });
  await applyBaseline(api);
  const { plane, registry } = await startPlane(t, api);
  await until(api, 'statuses set', () => accepted(api.get('dnspolicies', 'web', 'team-a'))?.status === 'True' && accepted(api.get('clusterdnspolicies', 'baseline'))?.status === 'True' && rendered(api)());
  await plane.controller.idle();
  const since = api.requests.length;
  for (let i = 0; i < 3; i++) {
    plane.controller.kick();
    await plane.controller.idle();
  }
  assert.deepEqual(writesBy(api, CONTROLLER, since).map((r) => `${r.method} ${r.url}`), [], 'renders with nothing new write nothing');
  const text = await registry.metrics();
  assert.match(text, /tenant_dns_controller_renders_total\{result="ok"\} ([4-9]|\d\d)/, 'it rendered each time');
  assert.match(text, /tenant_dns_controller_held_layers 0/);
});

test('controller: the rendered platform ConfigMap, given to a real sidecar, denies its names', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme') });
  await applyBaseline(api);
  await startPlane(t, api);
  await until(api, 'the first render', rendered(api));
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-rendered-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const platformFile = join(dir, 'platform.yaml');
  const tenantFile = join(dir, 'policy.yaml');
  writeFileSync(platformFile, String((api.get('configmaps', 'tenant-dns-platform', 'team-a')!.data as Record<string, string>)['policy.yaml']));
  writeFileSync(tenantFile, String((api.get('configmaps', 'tenant-dns-policy', 'team-a')!.data as Record<string, string>)['policy.yaml']));
  const { udp, upstream } = await sidecarBehind(t, undefined, { platformPolicy: platformFile, policy: tenantFile, namespace: 'team-a', tenant: 'acme' });
  const reply = decodeReply(await udp.query(encodeQuery({ name: 'c2.malware.example', type: 'A' })));
  assert.equal(reply.rcode, 'NXDOMAIN');
  assert.match(extendedError(reply)?.text ?? '', /known-bad/);
  const ads = decodeReply(await udp.query(encodeQuery({ name: 'x.ads.example.com', type: 'A' })));
  assert.equal(ads.rcode, 'NXDOMAIN', 'the tenant layer too');
  assert.equal(upstream.counts.total, 0, 'denied names never reach the upstream');
});

test('controller: a conflicting write is read again and retried; a lastTransitionTime stays while Accepted does', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme') });
  await applyBaseline(api);
  const { plane, registry } = await startPlane(t, api);
  await until(api, 'the first render', () => rendered(api)() && accepted(api.get('dnspolicies', 'web', 'team-a'))?.status === 'True');
  await plane.controller.idle();
  const since = accepted(api.get('dnspolicies', 'web', 'team-a')).lastTransitionTime;
  // The next ConfigMap replace and status replace are answered 409, as when another writer got there first.
  api.failNext(1, { method: 'PUT', path: '/configmaps/tenant-dns-policy', code: 409 });
  api.failNext(1, { method: 'PUT', path: '/dnspolicies/web/status', code: 409 });
  const tenant = as(api, TENANT_USER);
  const current = await tenant.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-a', plural: 'dnspolicies', name: 'web' });
  current.spec.rules[0].names.push('*.ads.example.org');
  await tenant.custom.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-a', plural: 'dnspolicies', name: 'web', body: current });
  await until(api, 'the change written despite the conflicts', () => policyOf(api, 'team-a', 'tenant-dns-policy')?.spec.rules[0].names.length === 2 && accepted(api.get('dnspolicies', 'web', 'team-a'))?.observedGeneration === 2);
  const conflicts = api.requests.filter((r) => r.code === 409).map((r) => `${r.method} ${r.url.split('?')[0]}`);
  assert.deepEqual(conflicts.sort(), ['PUT /api/v1/namespaces/team-a/configmaps/tenant-dns-policy', `PUT /apis/${GROUP}/${VERSION}/namespaces/team-a/dnspolicies/web/status`]);
  const text = await registry.metrics();
  assert.match(text, /tenant_dns_controller_conflicts_total\{kind="configmap"\} 1/);
  assert.match(text, /tenant_dns_controller_conflicts_total\{kind="status"\} 1/);
  assert.equal(accepted(api.get('dnspolicies', 'web', 'team-a')).lastTransitionTime, since, 'Accepted stayed True: its transition time stays');
});

test('controller: the validating webhook, called by the API server, refuses a tenant\'s edit of a rendered ConfigMap and admits the controller\'s writes', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme') });
  const { pki, port } = await startTestInjector(t);
  // The API server's side of the webhook entry configmaps.validate.tenant-dns.io: the two names only.
  api.setAdmission(async (req) => {
    if (req.resource !== 'configmaps' || !['tenant-dns-platform', 'tenant-dns-policy'].includes(req.name)) return undefined;
    const stored = (object?: Record<string, any>) => (object ? { ...object, metadata: { ...object.metadata, name: req.name, namespace: req.namespace } } : null);
    const review = configMapReview(req.operation, req.user, stored(req.object), stored(req.oldObject), { dryRun: req.dryRun });
    const res = await postJson(pki.ca, port, '/validate', review);
    const answer = JSON.parse(res.body).response;
    return { allowed: answer.allowed, message: answer.status?.message, code: answer.status?.code };
  });
  await applyBaseline(api);
  await startPlane(t, api);
  await until(api, 'the first render, admitted', rendered(api));
  const { core } = as(api, TENANT_USER);
  const cm = await core.readNamespacedConfigMap({ name: 'tenant-dns-platform', namespace: 'team-a' });
  cm.data = { 'policy.yaml': 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: {name: platform}\nspec: {}\n' };
  await assert.rejects(core.replaceNamespacedConfigMap({ name: 'tenant-dns-platform', namespace: 'team-a', body: cm }), (err: any) => {
    assert.equal(err.code, 403);
    assert.match(String(err.body), /ConfigMap team-a\/tenant-dns-platform is rendered by the tenant-dns controller/);
    return true;
  });
  await assert.rejects(core.deleteNamespacedConfigMap({ name: 'tenant-dns-policy', namespace: 'team-a' }), (err: any) => err.code === 403);
  assert.deepEqual(policyOf(api, 'team-a', 'tenant-dns-platform').spec.rules.map((r: any) => r.name), ['known-bad'], 'the platform layer is unchanged');
});

test('controller: `tenant-dns injector --kubeconfig` runs it; on SIGTERM it releases the Lease', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme') });
  await applyBaseline(api);
  const pki = makeTestPki(['tenant-dns-injector.tenant-dns-system.svc']);
  t.after(() => pki.cleanup());
  const child = spawnCli(['injector', '--listen', '127.0.0.1:0', '--tls-cert', pki.certFile, '--tls-key', pki.keyFile, '--kubeconfig', api.kubeconfigFor(CONTROLLER)], {
    env: { ...process.env, POD_NAME: 'injector-cli', POD_NAMESPACE: 'tenant-dns-system' },
  });
  t.after(() => child.kill());
  await until(api, 'the rendered ConfigMaps', rendered(api), 20_000);
  const holder = () => (api.get('leases', 'tenant-dns-controller', 'tenant-dns-system') as any)?.spec?.holderIdentity;
  assert.match(holder(), /^injector-cli_[0-9a-f]{8}$/);
  child.child.kill('SIGTERM');
  assert.equal(await child.exited, 0, child.stderr());
  assert.equal(holder(), '', 'released on shutdown');
  assert.ok(child.stderr().includes('"msg":"controller started"'), child.stderr());
});

test('controller: a new invalid object holds the layer it would change (the ConfigMap there keeps serving; held_layers and rejected_objects count it); a ConfigMap of that name made by hand is taken over', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme'), 'team-b': injected('acme') });
  // What a namespace had before the controller: a hand-made tenant ConfigMap, without the controller's labels.
  api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'tenant-dns-policy', namespace: 'team-a' }, data: { 'policy.yaml': 'old: hand-made\n' } });
  await applyBaseline(api);
  const { plane, registry } = await startPlane(t, api);
  await until(api, 'the first render', () => rendered(api)() && api.get('configmaps', 'tenant-dns-policy', 'team-b') !== undefined);
  await plane.controller.idle();
  // Taken over: the controller's labels and content replace the hand-made ConfigMap.
  const taken = api.get('configmaps', 'tenant-dns-policy', 'team-a')!;
  assert.equal((taken.metadata as any).labels['app.kubernetes.io/managed-by'], 'tenant-dns-controller');
  assert.deepEqual(policyOf(api, 'team-a', 'tenant-dns-policy').spec.rules.map((r: any) => r.name), ['no-ads']);
  // A new DNSPolicy in team-b that was never accepted: team-b's tenant layer is held, its ConfigMap left as it is.
  const before = api.get('configmaps', 'tenant-dns-policy', 'team-b')!;
  const tenant = as(api, TENANT_USER);
  await tenant.custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: 'team-b',
    plural: 'dnspolicies',
    body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'DNSPolicy', metadata: { name: 'broken', namespace: 'team-b' }, spec: { rules: [{ name: 'x', action: 'deny', names: ['not a name'] }] } },
  });
  await until(api, 'Accepted=False', () => accepted(api.get('dnspolicies', 'broken', 'team-b'))?.status === 'False');
  await plane.controller.idle();
  assert.deepEqual(api.get('configmaps', 'tenant-dns-policy', 'team-b'), before, 'the held layer is not written: the ConfigMap there keeps serving');
  assert.match(accepted(api.get('dnspolicies', 'broken', 'team-b')).message, /spec\.rules\[0\]\.names\[0\]/);
  const heldText = await registry.metrics();
  assert.match(heldText, /tenant_dns_controller_held_layers 1/);
  assert.match(heldText, /tenant_dns_controller_rejected_objects\{kind="DNSPolicy"\} 1/);
  assert.match(heldText, /tenant_dns_controller_rejected_objects\{kind="ClusterDNSPolicy"\} 0/);
  // Fixed: the layer is rendered and nothing is held.
  const broken = await tenant.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-b', plural: 'dnspolicies', name: 'broken' });
  broken.spec.rules[0].names = ['fixed.example'];
  await tenant.custom.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: 'team-b', plural: 'dnspolicies', name: 'broken', body: broken });
  await until(api, 'the fixed layer rendered', () => policyOf(api, 'team-b', 'tenant-dns-policy')?.spec.rules?.[0]?.names[0] === 'fixed.example');
  await plane.controller.idle();
  const fixedText = await registry.metrics();
  assert.match(fixedText, /tenant_dns_controller_held_layers 0/);
  assert.match(fixedText, /tenant_dns_controller_rejected_objects\{kind="DNSPolicy"\} 0/);
});

test('controller: split horizon renders a tenant\'s Ingress names from the API into its platform layer and follows changes (no Gateway API served)', async (t) => {
  const api = await startApi(t, { 'team-a': injected('acme'), 'team-b': injected('globex') });
  api.put({
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'ClusterDNSPolicy',
    metadata: { name: 'acme-domains' },
    spec: { selector: { tenants: ['acme'] }, domains: ['acme.example'], splitHorizon: { enabled: true, ingressClasses: [{ name: 'nginx', addresses: ['10.96.0.80'] }] } },
  });
  const ingress = (hosts: string[]) => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: 'www', namespace: 'team-a' },
    spec: { ingressClassName: 'nginx', rules: hosts.map((host) => ({ host })) },
    status: { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } },
  });
  api.put(ingress(['www.acme.example']));
  await startPlane(t, api);
  const split = (ns: string) => policyOf(api, ns, 'tenant-dns-platform')?.spec?.splitZones;
  await until(api, 'the Ingress name rendered', () => split('team-a')?.length === 1 && policyOf(api, 'team-b', 'tenant-dns-platform') !== undefined);
  assert.deepEqual(split('team-a'), [{ name: 'split-horizon-1', names: ['www.acme.example'], addresses: ['10.96.0.80'] }]);
  assert.deepEqual(split('team-b') ?? [], [], 'another tenant gets none of acme\'s names');
  api.put(ingress(['www.acme.example', 'shop.acme.example']));
  await until(api, 'the added host rendered', () => split('team-a')?.[0]?.names?.length === 2);
  assert.deepEqual(split('team-a')[0].names, ['shop.acme.example', 'www.acme.example']);
});
