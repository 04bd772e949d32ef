/**
 * A hostile tenant with namespace-admin rights against both webhooks, over
 * real HTTPS and chained as the API server chains them: CREATE goes to
 * /mutate, the patch is applied, the API server's defaults and the
 * ServiceAccount plugin's token mount are added, /mutate runs again
 * (reinvocationPolicy: IfNeeded), then /validate; UPDATE goes to /validate
 * only (the mutating webhook matches CREATE). A pod is admitted only when
 * every call allows it. Each attack here was admitted before the injector
 * denied conflicts and before /validate existed (a 404 from /validate models
 * a deployment without the validating webhook).
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import jsonpatch from 'fast-json-patch';
import type { TenantResolver } from '../../injector/namespaces.ts';
import { validatePod } from '../helpers/k8s-schema.ts';
import { admissionRequest, apiServerDefaults, postJson, samplePod, startTestInjector } from './fixtures.ts';

/** Namespace team-a belongs to tenant acme; team-open (also acme) carries tenant-dns.io/allow-opt-out: "true". */
const tenants: TenantResolver = {
  resolve: async (namespace) => ({ tenant: 'acme', source: 'label', allowOptOut: namespace === 'team-open' }),
  close() {},
};

interface Chain {
  readonly ca: Buffer;
  readonly port: number;
}

async function start(t: TestContext): Promise<Chain> {
  const { pki, port } = await startTestInjector(t, { tenants });
  return { ca: pki.ca, port };
}

/** What the API server would do with the request: admitted (and stored as `pod`) or refused with a message. */
type Outcome = { readonly admitted: true; readonly pod: Record<string, any>; readonly reinvocationPatch: unknown[] } | { readonly admitted: false; readonly by: string; readonly code: number; readonly message: string };

async function call(chain: Chain, path: string, review: Record<string, any>): Promise<Record<string, any> | 'absent'> {
  const res = await postJson(chain.ca, chain.port, path, review);
  if (res.status === 404) return 'absent';
  assert.equal(res.status, 200, `${path}: ${res.body}`);
  const answer = JSON.parse(res.body);
  assert.equal(answer.response.uid, review.request.uid);
  return answer.response;
}

const patchOf = (response: Record<string, any>): jsonpatch.Operation[] => (response.patch ? JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) : []);

async function create(chain: Chain, pod: Record<string, any>, namespace = 'team-a'): Promise<Outcome> {
  const first = await call(chain, '/mutate', admissionRequest(pod, { namespace }));
  assert.notEqual(first, 'absent');
  if (first === 'absent' || !first.allowed) return { admitted: false, by: '/mutate', code: first === 'absent' ? 0 : first.status?.code, message: first === 'absent' ? '' : first.status?.message };
  const stored = apiServerDefaults(jsonpatch.applyPatch(structuredClone(pod), patchOf(first), true, false).newDocument);
  const again = await call(chain, '/mutate', admissionRequest(stored, { namespace }));
  if (again === 'absent' || !again.allowed) return { admitted: false, by: '/mutate (reinvoked)', code: again === 'absent' ? 0 : again.status?.code, message: again === 'absent' ? '' : again.status?.message };
  const reinvocationPatch = patchOf(again);
  const final = jsonpatch.applyPatch(structuredClone(stored), reinvocationPatch, true, false).newDocument;
  const verdict = await call(chain, '/validate', admissionRequest(final, { namespace }));
  if (verdict !== 'absent' && !verdict.allowed) return { admitted: false, by: '/validate', code: verdict.status?.code, message: verdict.status?.message };
  return { admitted: true, pod: final, reinvocationPatch };
}

async function update(chain: Chain, old: Record<string, any>, next: Record<string, any>, opts: { subResource?: string } = {}): Promise<Outcome> {
  const verdict = await call(chain, '/validate', admissionRequest(next, { operation: 'UPDATE', oldObject: old, ...opts }));
  if (verdict !== 'absent' && !verdict.allowed) return { admitted: false, by: '/validate', code: verdict.status?.code, message: verdict.status?.message };
  return { admitted: true, pod: next, reinvocationPatch: [] };
}

function denied(outcome: Outcome, ...patterns: RegExp[]): void {
  assert.equal(outcome.admitted, false, `admitted: ${outcome.admitted ? JSON.stringify(outcome.pod.spec).slice(0, 400) : ''}`);
  if (outcome.admitted) return;
  assert.equal(outcome.code, 403, `${outcome.by}: ${outcome.message}`);
  for (const p of patterns) assert.match(outcome.message, p, `${outcome.by} names the conflict`);
}

/** A pod injected through the whole chain, as stored. */
async function injected(chain: Chain): Promise<Record<string, any>> {
  const out = await create(chain, samplePod());
  assert.ok(out.admitted, out.admitted ? '' : out.message);
  return out.pod;
}

test('enforcement: a plain pod is injected and labelled with its tenant, a second pass changes nothing, /validate admits it', async (t) => {
  const chain = await start(t);
  const out = await create(chain, samplePod());
  assert.ok(out.admitted, out.admitted ? '' : `${out.by}: ${out.message}`);
  validatePod(out.pod);
  assert.equal(out.pod.spec.initContainers[0].name, 'tenant-dns');
  assert.equal(out.pod.metadata.labels['tenant-dns.io/tenant'], 'acme');
  assert.deepEqual(out.reinvocationPatch, [], 'the reinvoked webhook recognises its own injection under the API server defaults');
  // Re-creating the stored pod (kubectl get -o yaml | kubectl create) is admitted unchanged.
  const again = await create(chain, out.pod);
  assert.ok(again.admitted, again.admitted ? '' : again.message);
  assert.equal(again.pod.spec.initContainers.filter((c: any) => c.name === 'tenant-dns').length, 1);
});

test('attack: a pod bringing its own tenant-dns container and nameservers 8.8.8.8 is denied, naming both', async (t) => {
  const chain = await start(t);
  const pod = samplePod();
  pod.spec.initContainers = [{ name: 'tenant-dns', image: 'registry.example/anything:1', restartPolicy: 'Always' }];
  pod.spec.dnsPolicy = 'None';
  pod.spec.dnsConfig = { nameservers: ['8.8.8.8'] };
  denied(await create(chain, pod), /tenant-dns/, /image/, /8\.8\.8\.8/);
});

test('attack: a copy of the injected sidecar is denied when anything in it differs: image, command, env, security context', async (t) => {
  const chain = await start(t);
  const stored = await injected(chain);
  const variants: [string, (sidecar: any) => void, RegExp][] = [
    ['image', (c) => (c.image = 'registry.example/tenant-dns-lookalike:0.1.0'), /image/],
    ['command', (c) => (c.command = ['/bin/sh', '-c', 'exec dnsmasq -k']), /command/],
    ['env', (c) => c.env.find((e: any) => e.name === 'TENANT_DNS_TENANT').value = 'other', /env/],
    ['args', (c) => c.args.push('--upstream=udp://8.8.8.8:53'), /args/],
    ['securityContext', (c) => (c.securityContext.runAsUser = 0), /securityContext/],
  ];
  for (const [what, change, pattern] of variants) {
    const pod = structuredClone(stored);
    delete pod.metadata.labels['tenant-dns.io/tenant'];
    change(pod.spec.initContainers[0]);
    const out = await create(chain, pod);
    denied(out, /tenant-dns/, pattern);
    assert.ok(!out.admitted && out.by === '/mutate', `${what}: denied by the mutating webhook already`);
  }
  // The exact sidecar with the pod's own nameservers.
  const own = structuredClone(stored);
  own.spec.dnsConfig.nameservers = ['8.8.8.8'];
  denied(await create(chain, own), /nameservers/, /8\.8\.8\.8/);
});

test('attack: a pod using a volume name the injector needs is denied, not skipped with dnsPolicy Default', async (t) => {
  const chain = await start(t);
  for (const name of ['tenant-dns-policy', 'tenant-dns-podinfo']) {
    const pod = samplePod();
    pod.spec.dnsPolicy = 'Default';
    pod.spec.volumes = [{ name, emptyDir: {} }];
    denied(await create(chain, pod), new RegExp(`volume ${name}`));
  }
});

test('attack: the opt-out label is denied unless the platform allows it for the namespace', async (t) => {
  const chain = await start(t);
  const pod = samplePod();
  pod.metadata.labels['tenant-dns.io/inject'] = 'false';
  denied(await create(chain, pod), /tenant-dns\.io\/inject/, /allow-opt-out/);
  const open = await create(chain, { ...pod, metadata: { ...pod.metadata, namespace: 'team-open' } }, 'team-open');
  assert.ok(open.admitted, open.admitted ? '' : open.message);
  assert.equal(open.pod.spec.initContainers, undefined, 'opted out where the namespace allows it');
});

test('attack: a hostNetwork pod is denied (it would share the node 127.0.0.1 and skip the sidecar)', async (t) => {
  const chain = await start(t);
  const pod = samplePod();
  pod.spec.hostNetwork = true;
  pod.spec.dnsPolicy = 'Default';
  denied(await create(chain, pod), /hostNetwork/);
});

test('attack: a pod claiming another tenant with the tenant label is denied', async (t) => {
  const chain = await start(t);
  const pod = samplePod();
  pod.metadata.labels['tenant-dns.io/tenant'] = 'globex';
  denied(await create(chain, pod), /tenant-dns\.io\/tenant/, /globex/, /acme/);
});

test('attack: on UPDATE the sidecar image, the DNS settings and the tenant label cannot change; other updates and ephemeral containers pass', async (t) => {
  const chain = await start(t);
  const stored = await injected(chain);
  const swap = structuredClone(stored);
  swap.spec.initContainers[0].image = 'registry.example/evil-dns:1';
  denied(await update(chain, stored, swap), /tenant-dns/, /image/);
  const dns = structuredClone(stored);
  dns.spec.dnsConfig.nameservers = ['8.8.8.8'];
  denied(await update(chain, stored, dns), /dnsConfig/);
  const relabel = structuredClone(stored);
  relabel.metadata.labels['tenant-dns.io/tenant'] = 'globex';
  denied(await update(chain, stored, relabel), /tenant-dns\.io\/tenant/);
  const unlabel = structuredClone(stored);
  delete unlabel.metadata.labels['tenant-dns.io/tenant'];
  denied(await update(chain, stored, unlabel), /tenant-dns\.io\/tenant/);
  // Ordinary updates: a label, a finalizer removed, an app image rolled.
  const ordinary = structuredClone(stored);
  ordinary.metadata.labels.release = 'canary';
  ordinary.spec.containers[0].image = 'nginx:1.28';
  assert.ok((await update(chain, stored, ordinary)).admitted);
  // kubectl debug: an ephemeral container, through the subresource and as the pod then reads.
  const debug = structuredClone(stored);
  debug.spec.ephemeralContainers = [{ name: 'debugger-x1', image: 'busybox:1.36', targetContainerName: 'app', terminationMessagePolicy: 'File' }];
  assert.ok((await update(chain, stored, debug, { subResource: 'ephemeralcontainers' })).admitted);
  const later = structuredClone(debug);
  later.metadata.labels.release = 'canary';
  assert.ok((await update(chain, debug, later)).admitted);
});
