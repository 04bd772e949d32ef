/**
 * `tenant-dns gateway --kubeconfig` against the stand-in API server
 * (test/helpers/kube-api.ts): the gateway's informers see an Ingress applied
 * and answer its name, follow a status change to the new address, publish an
 * HTTPRoute through its parent Gateway's addresses with the domain a
 * ClusterDNSPolicy assigns, and report a rejected claim as a Warning Event on
 * the Ingress that made it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { REJECTED_EVENT_REASON } from '../../gateway/kube-source.ts';
import type { JsonObject } from '../../injector/json.ts';
import { queryUdp } from '../helpers/dns-client.ts';
import { until } from '../helpers/events.ts';
import { startKubeApi, type KubeApi } from '../helpers/kube-api.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A Gateway API CRD as the stand-in needs it: served, any fields kept (the gateway reads spec and status). */
function gatewayApiCrd(kind: string, plural: string): JsonObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.gateway.networking.k8s.io` },
    spec: {
      group: 'gateway.networking.k8s.io',
      scope: 'Namespaced',
      names: { plural, singular: kind.toLowerCase(), kind },
      versions: [{ name: 'v1', served: true, storage: true, subresources: { status: {} }, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
    },
  };
}

const ingress = (name: string, host: string, ip: string): JsonObject => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { name, namespace: 'shop-prod' },
  spec: { rules: [{ host }] },
  status: { loadBalancer: { ingress: [{ ip }] } },
});

/** Starts `tenant-dns gateway --kubeconfig` and resolves with the UDP port it serves once it logs that it serves. */
async function startGatewayProcess(t: TestContext, api: KubeApi): Promise<number> {
  const child = spawn(process.execPath, [
    `${ROOT}bin/tenant-dns.ts`, 'gateway', '--kubeconfig', api.kubeconfigPath,
    '--zone', 'tenants.example', '--ns', 'ns1.dns-provider.example', '--tenant-domain', 'shop=shop.tenants.example',
    '--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.after(() => child.kill('SIGTERM'));
  let stderr = '';
  return new Promise<number>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      const line = stderr.split('\n').find((l) => l.includes('"msg":"gateway serving"'));
      if (line) resolve(Number(String((JSON.parse(line) as { listen: string[] }).listen[0]).split(':')[1]));
    });
    child.once('exit', (code) => reject(new Error(`the gateway exited (${code}) before serving: ${stderr}`)));
  });
}

test('gateway --kubeconfig: answers what the API holds, follows changes, and reports a rejected claim as an Event', { timeout: 60_000 }, async (t) => {
  const api = await startKubeApi();
  t.after(() => api.close());
  api.put(parse(readFileSync(`${ROOT}deploy/crds/clusterdnspolicies.yaml`, 'utf8')) as JsonObject);
  api.put(gatewayApiCrd('Gateway', 'gateways'));
  api.put(gatewayApiCrd('HTTPRoute', 'httproutes'));
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop-prod', labels: { 'tenant-dns.io/tenant': 'shop' } } });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bank' } });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'infra' } });
  api.put({ apiVersion: 'tenant-dns.io/v1alpha1', kind: 'ClusterDNSPolicy', metadata: { name: 'bank-domains' }, spec: { selector: { tenants: ['bank'] }, domains: ['bank.tenants.example'] } });
  const port = await startGatewayProcess(t, api);
  const ask = (name: string) => queryUdp('127.0.0.1', port, { name, type: 'A' }, 2000);
  const addresses = async (name: string) => ((await ask(name)).answers ?? []).map((a) => a.data).join();

  // An Ingress applied is answered.
  assert.equal((await ask('www.shop.tenants.example')).rcode, 'NXDOMAIN');
  api.put(ingress('web', 'www.shop.tenants.example', '192.0.2.10'));
  await until(async () => (await addresses('www.shop.tenants.example')) === '192.0.2.10', 'the Ingress is answered', 10_000);
  // Its load balancer's new address replaces the old one.
  api.put(ingress('web', 'www.shop.tenants.example', '192.0.2.20'));
  await until(async () => (await addresses('www.shop.tenants.example')) === '192.0.2.20', 'the new address is answered', 10_000);
  // An HTTPRoute of the bank on a Gateway of another namespace, under the domain its ClusterDNSPolicy assigns.
  api.put({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'shared', namespace: 'infra' }, spec: { gatewayClassName: 'x', listeners: [] }, status: { addresses: [{ type: 'IPAddress', value: '203.0.113.7' }] } });
  api.put({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name: 'portal', namespace: 'bank' }, spec: { parentRefs: [{ name: 'shared', namespace: 'infra' }], hostnames: ['portal.bank.tenants.example'] } });
  await until(async () => (await addresses('portal.bank.tenants.example')) === '203.0.113.7', 'the HTTPRoute is answered', 10_000);
  // The shop claims the bank's name: not published, and an Event on its Ingress says why.
  const evil = api.put(ingress('evil', 'portal.bank.tenants.example', '192.0.2.66'));
  await until(() => api.list('events', 'shop-prod').some((e) => (e.involvedObject as JsonObject).name === 'evil'), 'an Event on the rejected Ingress', 10_000);
  const event = api.list('events', 'shop-prod').find((e) => (e.involvedObject as JsonObject).name === 'evil')!;
  assert.deepEqual(
    [event.type, event.reason, (event.involvedObject as JsonObject).kind, (event.involvedObject as JsonObject).uid],
    ['Warning', REJECTED_EVENT_REASON, 'Ingress', (evil.metadata as JsonObject).uid],
  );
  assert.match(String(event.message), /^portal\.bank\.tenants\.example not published \(owned-by-other\): .*tenant bank$/);
  assert.equal(await addresses('portal.bank.tenants.example'), '203.0.113.7', 'the bank\'s answer is unchanged');
});

test('gateway --kubeconfig: a cluster without the Gateway API and ClusterDNSPolicy CRDs still serves its Ingresses', { timeout: 60_000 }, async (t) => {
  const api = await startKubeApi();
  t.after(() => api.close());
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop-prod', labels: { 'tenant-dns.io/tenant': 'shop' } } });
  api.put(ingress('web', 'www.shop.tenants.example', '192.0.2.10'));
  const port = await startGatewayProcess(t, api);
  const reply = await queryUdp('127.0.0.1', port, { name: 'www.shop.tenants.example', type: 'A' }, 2000);
  assert.deepEqual(reply.answers?.map((a) => a.data), ['192.0.2.10']);
});
