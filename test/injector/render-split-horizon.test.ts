/**
 * Split horizon (gateway/README.md, "Split horizon"): a tenant's published
 * names rendered into its own platform layer with internal addresses, and
 * the rendered layer loaded by a real sidecar.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseInjectorConfig } from '../../injector/config.ts';
import type { JsonObject } from '../../injector/json.ts';
import { renderAll, settingsFromConfig, type RenderInput, type RenderResult } from '../../injector/render.ts';
import { parsePolicy } from '../../sidecar/policy/manager.ts';
import { decodeReply, encodeQuery } from '../helpers/dns-client.ts';
import { sidecarBehind } from '../helpers/sidecar.ts';

const settings = settingsFromConfig(parseInjectorConfig({ clusterDns: '10.96.0.10:53' }));

const ns = (name: string, tenant: string): JsonObject => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels: { 'tenant-dns.io/inject': 'enabled', 'tenant-dns.io/tenant': tenant } },
});
const cdp = (name: string, spec: JsonObject): JsonObject => ({ apiVersion: 'tenant-dns.io/v1alpha1', kind: 'ClusterDNSPolicy', metadata: { name, uid: `uid-${name}`, generation: 1 }, spec });
const lb = (ip: string) => ({ loadBalancer: { ingress: [{ ip }] } });
function ingress(namespace: string, name: string, className: string | undefined, hosts: string[], status: JsonObject = lb('203.0.113.10')): JsonObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace },
    spec: { ...(className ? { ingressClassName: className } : {}), rules: hosts.map((host) => ({ host })) },
    status,
  };
}

const SPLIT = {
  enabled: true,
  ingressClasses: [{ name: 'nginx', addresses: ['10.96.0.80'] }],
  gateways: [{ namespace: 'infra', name: 'gw', addresses: ['10.96.0.90', 'fd00::90'] }],
};

/** acme (namespace shop) owns acme.example, beta (namespace web) owns beta.example; `acmeSplit` is acme's split horizon setting. */
function input(acmeSplit: JsonObject | undefined, extra: Partial<RenderInput> = {}): RenderInput {
  return {
    namespaces: [ns('shop', 'acme'), ns('web', 'beta'), ns('infra', 'infra')],
    clusterPolicies: [
      cdp('acme', { selector: { tenants: ['acme'] }, domains: ['acme.example'], ...(acmeSplit ? { splitHorizon: acmeSplit } : {}) }),
      cdp('beta', { selector: { tenants: ['beta'] }, domains: ['beta.example'] }),
    ],
    policies: [],
    published: {
      ingresses: [
        ingress('shop', 'www', 'nginx', ['www.acme.example', '*.apps.acme.example']),
        ingress('shop', 'steal', 'nginx', ['shop.beta.example']), // beta's domain: rejected
        ingress('shop', 'outside', 'nginx', ['www.elsewhere.example']), // nobody's domain: rejected
        ingress('shop', 'other-class', 'traefik', ['plain.acme.example']), // no internal address configured
        ingress('shop', 'pending', 'nginx', ['pending.acme.example'], {}), // no load-balancer address: the gateway publishes nothing
        ingress('web', 'beta-www', 'nginx', ['www.beta.example']),
      ],
      services: [
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'api', namespace: 'shop', annotations: { 'tenant-dns.io/hostname': 'api.acme.example' } },
          spec: { type: 'LoadBalancer', clusterIP: '10.96.0.5', clusterIPs: ['10.96.0.5'] },
          status: lb('203.0.113.11'),
        },
      ],
      gateways: [{ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'gw', namespace: 'infra' }, status: { addresses: [{ value: '203.0.113.12' }] } }],
      httpRoutes: [
        {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'HTTPRoute',
          metadata: { name: 'route', namespace: 'shop' },
          spec: { hostnames: ['route.acme.example'], parentRefs: [{ name: 'gw', namespace: 'infra' }] },
        },
      ],
    },
    ...extra,
  };
}

function platform(r: RenderResult, namespace: string) {
  const c = r.configMaps.find((m: any) => m.metadata.namespace === namespace && m.metadata.labels['tenant-dns.io/layer'] === 'platform') as any;
  assert.ok(c, `platform layer of ${namespace}`);
  return { doc: parsePolicy(c.data['policy.yaml'], `${namespace}/platform`), text: String(c.data['policy.yaml']), from: String(c.metadata.annotations['tenant-dns.io/rendered-from']) };
}
const zones = (r: RenderResult, namespace: string) => platform(r, namespace).doc.spec.splitZones.map((z) => ({ name: z.name, names: z.names, addresses: z.addresses }));

test('split horizon: the tenant\'s published names with an internal address become split zones of its platform layer', () => {
  const r = renderAll(input(SPLIT), settings);
  assert.deepEqual(zones(r, 'shop'), [
    { name: 'split-horizon-1', names: ['api.acme.example'], addresses: ['10.96.0.5'] }, // LoadBalancer Service: its clusterIPs
    { name: 'split-horizon-2', names: ['*.apps.acme.example', 'www.acme.example'], addresses: ['10.96.0.80'] }, // Ingress: its class's addresses
    { name: 'split-horizon-3', names: ['route.acme.example'], addresses: ['10.96.0.90', 'fd00::90'] }, // HTTPRoute: its Gateway's addresses
  ]);
  const { text, from } = platform(r, 'shop');
  for (const name of ['shop.beta.example', 'www.beta.example', 'www.elsewhere.example', 'plain.acme.example', 'pending.acme.example']) assert.doesNotMatch(text, new RegExp(name.replace(/\./g, '\\.')), name);
  assert.equal(from, 'ClusterDNSPolicy/acme@1,split-horizon');
  assert.deepEqual(zones(r, 'web'), [], 'beta did not enable split horizon: its names are not rendered, and never acme\'s');
  assert.deepEqual(r.splitHorizonSkipped, []);
  assert.deepEqual(r.statuses.map((s) => [s.name, s.accepted]), [['acme', true], ['beta', true]]);
});

test('split horizon: off by default, off when disabled, nothing without published objects', () => {
  for (const [why, r] of [
    ['no splitHorizon', renderAll(input(undefined), settings)],
    ['enabled: false', renderAll(input({ ...SPLIT, enabled: false }), settings)],
    ['no published objects', renderAll({ ...input(SPLIT), published: undefined }, settings)],
  ] as const) {
    assert.deepEqual(zones(r, 'shop'), [], why);
    assert.equal(platform(r, 'shop').from, 'ClusterDNSPolicy/acme@1', why);
  }
});

test('split horizon: a name the platform layer already answers keeps the platform\'s answer', () => {
  const r = renderAll(
    input(SPLIT, {
      clusterPolicies: [
        cdp('acme', { selector: { tenants: ['acme'] }, domains: ['acme.example'], splitHorizon: SPLIT, splitZones: [{ name: 'pinned', names: ['www.acme.example'], addresses: ['10.0.0.1'] }] }),
      ],
    }),
    settings,
  );
  const z = zones(r, 'shop');
  assert.deepEqual(z.find((x) => x.name === 'pinned')?.addresses, ['10.0.0.1']);
  assert.deepEqual(z.find((x) => x.addresses?.includes('10.96.0.80'))?.names, ['*.apps.acme.example']);
});

test('split horizon: a layer that would not validate with the names is rendered without them, and the namespace is listed', () => {
  // The platform already has the 256 split zones a policy may have.
  const full = Array.from({ length: 256 }, (_, i) => ({ name: `z${i}`, names: [`z${i}.corp.example`], addresses: ['10.0.0.1'] }));
  const r = renderAll(input(SPLIT, { clusterPolicies: [cdp('acme', { selector: { tenants: ['acme'] }, domains: ['acme.example'], splitHorizon: SPLIT, splitZones: full })] }), settings);
  assert.equal(zones(r, 'shop').length, 256);
  assert.equal(platform(r, 'shop').from, 'ClusterDNSPolicy/acme@1');
  assert.deepEqual(r.splitHorizonSkipped.map((s) => s.namespace), ['shop']);
  assert.match(r.splitHorizonSkipped[0]!.reason, /splitZones/);
  assert.equal(r.statuses.find((x) => x.name === 'acme')?.accepted, true);
});

test('split horizon: an address that is not an IP makes the ClusterDNSPolicy Invalid, naming the field', () => {
  const r = renderAll(input({ enabled: true, ingressClasses: [{ name: 'nginx', addresses: ['ingress.internal'] }] }), settings);
  const s = r.statuses.find((x) => x.name === 'acme')!;
  assert.equal(s.reason, 'Invalid');
  assert.deepEqual(s.problems.map((p) => p.field), ['spec.splitHorizon.ingressClasses[0].addresses[0]']);
});

test('split horizon: a real sidecar given the rendered platform layer answers the internal address; without split horizon the name goes upstream', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-split-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [label, split, expected, upstreamQueries] of [
    ['with', SPLIT, '10.96.0.80', 0],
    ['without', undefined, '192.0.2.1', 1],
  ] as const) {
    const file = join(dir, `${label}.yaml`);
    writeFileSync(file, platform(renderAll(input(split), settings), 'shop').text);
    const { udp, upstream } = await sidecarBehind(t, undefined, { platformPolicy: file, namespace: 'shop', tenant: 'acme' });
    for (const name of ['www.acme.example', 'x.apps.acme.example']) {
      const reply = decodeReply(await udp.query(encodeQuery({ name, type: 'A' })));
      assert.equal(reply.rcode, 'NOERROR', `${label}: ${name}`);
      assert.deepEqual(reply.answers.map((a) => a.data), [expected], `${label}: ${name}`);
    }
    assert.equal(upstream.counts.total, upstreamQueries * 2, `${label}: queries that reached the upstream`);
  }
});
