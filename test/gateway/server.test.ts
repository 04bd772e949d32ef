/**
 * The running gateway as a resolver meets it: header bits of an authoritative
 * server, RFC 7766 pipelining on one TCP connection, new data answered after
 * an update with a larger serial, and its metrics.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseTenantDomains, zoneSettings } from '../../gateway/main.ts';
import { readObjectFiles } from '../../gateway/objects-file.ts';
import { startGateway, type Gateway } from '../../gateway/server.ts';
import type { SourceObjects } from '../../injector/gateway-sources.ts';
import { silentLogger } from '../../sidecar/log.ts';
import { exchangeUdpRaw } from '../helpers/dns-client.ts';
import { buildQuery, readReply } from '../helpers/dns-wire.ts';
import { frame, onFrames } from '../helpers/tcp-frames.ts';

const OBJECTS = fileURLToPath(new URL('./testdata/objects.yaml', import.meta.url));
const FLAGS = { zone: ['tenants.example'], ns: ['ns1.tenants.example=192.0.2.53'], ttl: 60, tenantDomain: ['shop=shop.tenants.example'] };

async function start(t: TestContext, objects: SourceObjects = readObjectFiles([OBJECTS])): Promise<Gateway> {
  const gw = await startGateway(objects, {
    listen: [{ host: '127.0.0.1', port: 0, family: 4 }],
    zone: zoneSettings(FLAGS),
    tenantDomains: parseTenantDomains(FLAGS.tenantDomain),
    tenantLabel: 'tenant-dns.io/tenant',
    metrics: '127.0.0.1:0',
    log: silentLogger,
    version: 'test',
    processMetrics: false,
  });
  t.after(() => gw.close());
  return gw;
}

const ask = async (gw: Gateway, name: string, type = 'A', extra: Parameters<typeof buildQuery>[0] extends infer S ? Partial<S> : never = {}) =>
  readReply(await exchangeUdpRaw('127.0.0.1', gw.addresses[0]!.port, buildQuery({ name, type, id: 7, ...extra })));

test('gateway server: AA set and RA clear on answers, REFUSED without AA outside its zones, RA clear on the listener\'s own errors too', async (t) => {
  const gw = await start(t);
  const www = await ask(gw, 'www.shop.tenants.example');
  assert.deepEqual([www.rcode, www.flags.AA, www.flags.RA, www.answer.map((r) => r.data).sort()], [0, true, false, ['192.0.2.10', '192.0.2.11']]);
  const nx = await ask(gw, 'nope.shop.tenants.example', 'A', { edns: {} });
  assert.deepEqual([nx.rcode, nx.flags.AA, nx.authority.map((r) => r.type), !!nx.opt], [3, true, ['SOA'], true]);
  const refused = await ask(gw, 'example.org', 'A', { edns: {} });
  assert.deepEqual([refused.rcode, refused.flags.AA, refused.flags.RA, refused.opt?.ede.map((e) => e.code)], [5, false, false, [20]]);
  const badvers = await ask(gw, 'www.shop.tenants.example', 'A', { edns: { version: 1 } });
  assert.deepEqual([badvers.rcode, badvers.flags.RA, !!badvers.opt], [16, false, true]);
});

test('gateway server: queries pipelined on one TCP connection are all answered (RFC 7766)', async (t) => {
  const gw = await start(t);
  const sock = net.connect({ host: '127.0.0.1', port: gw.addresses[0]!.port });
  t.after(() => sock.destroy());
  const names = Array.from({ length: 30 }, (_, i) => `h${i}.apps.shop.tenants.example`);
  const got = new Map<number, string>();
  const done = new Promise<void>((resolve) =>
    onFrames(sock, (msg) => {
      const v = readReply(msg);
      got.set(v.id, v.answer.find((r) => r.type === 'A')?.owner ?? '');
      if (got.size === names.length) resolve();
    }),
  );
  sock.write(Buffer.concat(names.map((name, i) => frame(buildQuery({ name, type: 'A', id: i + 1 })))));
  await done;
  assert.deepEqual([...got].sort((a, b) => a[0] - b[0]).map(([, owner]) => owner), names);
});

test('gateway server: an update answers the new address with a larger SOA serial; metrics count answers by zone, rcode and tenant, records and rejections', async (t) => {
  const objects = readObjectFiles([OBJECTS]);
  const gw = await start(t, objects);
  const serialOf = async () => Number((await ask(gw, 'tenants.example', 'SOA')).answer[0]!.data.split(' ')[2]);
  const before = await serialOf();
  const changed: SourceObjects = {
    ...objects,
    ingresses: objects.ingresses.map((i) => ((i.metadata as { name: string }).name === 'web-canary' ? { ...i, status: { loadBalancer: { ingress: [{ ip: '192.0.2.99' }] } } } : i)),
  };
  gw.update(changed);
  assert.deepEqual((await ask(gw, 'www.shop.tenants.example')).answer.map((r) => r.data).sort(), ['192.0.2.10', '192.0.2.99']);
  assert.ok((await serialOf()) > before, 'the serial increased');
  gw.update(changed);
  await ask(gw, 'missing.tenants.example');
  const text = await (await fetch(`http://127.0.0.1:${gw.metricsAddress!.port}/metrics`)).text();
  const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  assert.equal(value('tenant_dns_gateway_requests_total{zone="tenants.example",rcode="NOERROR",tenant="shop"}'), 1);
  assert.equal(value('tenant_dns_gateway_requests_total{zone="tenants.example",rcode="NOERROR",tenant=""}'), 2, 'the SOA questions: the apex is the gateway\'s');
  assert.equal(value('tenant_dns_gateway_requests_total{zone="tenants.example",rcode="NXDOMAIN",tenant=""}'), 1);
  assert.equal(value('tenant_dns_gateway_records{tenant="shop"}'), 52, 'www 3, *.apps 2, deep 2, five CNAMEs, big 40');
  // The evil Ingress's three claims, other.example outside this gateway's zones; counted once though updated twice.
  assert.equal(value('tenant_dns_gateway_rejected_total{tenant="shop",reason="outside-domains"}'), 1);
  assert.equal(value('tenant_dns_gateway_rejected_total{tenant="shop",reason="owned-by-other"}'), 1);
  assert.equal(value('tenant_dns_gateway_rejected_total{tenant="shop",reason="outside-zones"}'), 2);
});
