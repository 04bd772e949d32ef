/**
 * The gateway's data model without sockets: what objects claim, which claims
 * ownership publishes or rejects (and why), the SOA serial, and --dump-zone's
 * file.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decide } from '../../injector/gateway-ownership.ts';
import { readObjectFiles } from '../../gateway/objects-file.ts';
import { readSources, type SourceObjects } from '../../injector/gateway-sources.ts';
import { buildZones, SerialClock } from '../../gateway/zone.ts';

const OBJECTS = fileURLToPath(new URL('./testdata/objects.yaml', import.meta.url));
const SERVED = { zones: ['tenants.example', 'other.example'], reserved: new Set(['ns1.tenants.example']) };
const SHOP = new Map([['shop', ['shop.tenants.example', 'other.example']]]);

const ingress = (namespace: string, name: string, hosts: string[], ip = '192.0.2.1') => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'Ingress',
  metadata: { namespace, name },
  spec: { rules: hosts.map((host) => ({ host })) },
  status: { loadBalancer: { ingress: [{ ip }] } },
});
const objects = (o: Partial<SourceObjects>): SourceObjects => ({ namespaces: [], ingresses: [], services: [], httpRoutes: [], gateways: [], clusterPolicies: [], ...o });
const reasons = (d: ReturnType<typeof decide>) => d.rejected.map((r) => `${r.claim.ref.name} ${r.claim.host} ${r.reason}`).sort();

test('gateway ownership: the fixture publishes every shape of claim and rejects the foreign ones with their reasons', () => {
  const view = readSources(readObjectFiles([OBJECTS]), 'tenant-dns.io/tenant', SHOP);
  assert.deepEqual(view.domains.get('bank'), ['bank.tenants.example'], 'the ClusterDNSPolicy assigns the bank its domain');
  const d = decide(view, SERVED);
  const www = d.published.find((p) => p.name === 'www.shop.tenants.example')!;
  assert.deepEqual([www.tenant, www.a, www.aaaa, www.from], ['shop', ['192.0.2.10', '192.0.2.11'], ['2001:db8::10'], ['Ingress/shop-dev/web-canary', 'Ingress/shop-prod/web']]);
  assert.equal(d.published.find((p) => p.name === 'elb.shop.tenants.example')?.cname, 'k8s-shop-1234.elb.us-east-1.amazonaws.com');
  assert.deepEqual(d.published.find((p) => p.name === 'portal.bank.tenants.example')?.a, ['203.0.113.7']);
  assert.ok(!d.published.some((p) => p.name === 'ignored.shop.tenants.example'), 'a ClusterIP Service publishes nothing');
  assert.deepEqual(reasons(d), ['evil portal.bank.tenants.example owned-by-other', 'evil www.elsewhere.example outside-zones', 'evil www.tenants.example outside-domains']);
});

test('gateway ownership: the longest assigned domain decides; a domain of two tenants is nobody\'s; wildcards stay off other tenants\' domains', () => {
  const domains = new Map([
    ['a', ['tenants.example']],
    ['b', ['b.tenants.example']],
    ['c', ['shared.tenants.example']],
    ['d', ['shared.tenants.example']],
  ]);
  const d = decide(
    readSources(
      objects({
        ingresses: [
          ingress('a', 'x', ['www.tenants.example', 'www.b.tenants.example', '*.tenants.example', 'www.shared.tenants.example', 'bad..name.tenants.example']),
          ingress('b', 'y', ['www.b.tenants.example', '*.b.tenants.example']),
          ingress('c', 'z', ['www.shared.tenants.example']),
        ],
      }),
      'tenant-dns.io/tenant',
      domains,
    ),
    { zones: ['tenants.example'], reserved: new Set() },
  );
  assert.deepEqual(reasons(d), [
    'x *.tenants.example wildcard-covers-other',
    'x bad..name.tenants.example invalid-name',
    'x www.b.tenants.example owned-by-other',
    'x www.shared.tenants.example contested',
    'z www.shared.tenants.example contested',
  ]);
  assert.deepEqual(d.published.map((p) => `${p.name} ${p.tenant}`), ['*.b.tenants.example b', 'www.b.tenants.example b', 'www.tenants.example a']);
});

test('gateway ownership: addresses win over a host name at one name; of two host names the first in order; none at an apex', () => {
  const lb = (name: string, host: string, hostname: string) => ({ ...ingress('t', name, [host]), status: { loadBalancer: { ingress: [{ hostname }] } } });
  const d = decide(
    readSources(objects({ ingresses: [ingress('t', 'ip', ['a.t.example']), lb('h1', 'a.t.example', 'lb1.example.net'), lb('h2', 'b.t.example', 'lb2.example.net'), lb('h3', 'b.t.example', 'lb1.example.net'), lb('apex', 't.example', 'lb.example.net')] }), 'tenant-dns.io/tenant', new Map([['t', ['t.example']]])),
    { zones: ['t.example'], reserved: new Set() },
  );
  assert.deepEqual(reasons(d), ['apex t.example cname-at-apex', 'h1 a.t.example cname-conflict', 'h2 b.t.example cname-conflict']);
  assert.deepEqual(d.published.map((p) => [p.name, p.a.join(), p.cname ?? '']), [['a.t.example', '192.0.2.1', ''], ['b.t.example', '', 'lb1.example.net']]);
});

test('gateway zone: the SOA serial increases when the data changes and only then, even twice within a second', () => {
  let now = 1_800_000_000_000;
  const clock = new SerialClock(() => now);
  const settings = { zones: ['t.example'], ttl: 60, nameServers: [{ name: 'ns.example.net', addresses: [] }] };
  const build = (ips: string[]) => buildZones(ips.map((ip) => ({ name: 'www.t.example', tenant: 't', a: [ip], aaaa: [], from: [] })), settings, clock).zone('t.example')!.serial;
  const first = build(['192.0.2.1']);
  assert.equal(first, 1_800_000_000);
  assert.equal(build(['192.0.2.1']), first, 'same data, same serial');
  const second = build(['192.0.2.2']);
  assert.equal(second, first + 1, 'a change within the same second still increases it');
  now += 3_600_000;
  assert.equal(build(['192.0.2.3']), 1_800_003_600);
});

test('gateway --dump-zone: writes the zone file; a zone not served is an error naming it', () => {
  const cli = fileURLToPath(new URL('../../bin/tenant-dns.ts', import.meta.url));
  const base = ['gateway', '--zone', 'tenants.example', '--ns', 'ns1.tenants.example=192.0.2.53', '--tenant-domain', 'shop=shop.tenants.example', '--objects', OBJECTS];
  const run = spawnSync(process.execPath, [cli, ...base, '--dump-zone', 'Tenants.Example.'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const text = run.stdout;
  assert.match(text, /^\$ORIGIN tenants\.example\.$/m);
  assert.match(text, /^tenants\.example\.\t60\tIN\tSOA\tns1\.tenants\.example\. hostmaster\.tenants\.example\. \d+ 3600 600 1209600 60$/m);
  assert.match(text, /^ns1\.tenants\.example\.\t60\tIN\tA\t192\.0\.2\.53$/m);
  assert.match(text, /^elb\.shop\.tenants\.example\.\t60\tIN\tCNAME\tk8s-shop-1234\.elb\.us-east-1\.amazonaws\.com\.$/m);
  assert.match(text, /^portal\.bank\.tenants\.example\.\t60\tIN\tA\t203\.0\.113\.7$/m, 'the ClusterDNSPolicy in the file assigns the bank its domain');
  assert.doesNotMatch(text, /192\.0\.2\.66/, 'refused claims are not in the zone');
  assert.match(run.stderr, /^not published: Ingress\/shop-prod\/evil claims portal\.bank\.tenants\.example: owned-by-other: .*of tenant bank$/m);
  assert.throws(() => execFileSync(process.execPath, [cli, ...base, '--dump-zone', 'other.example'], { encoding: 'utf8', stdio: 'pipe' }), (err: { status: number; stderr: string }) => err.status === 2 && /--dump-zone other\.example: not one of the zones served/.test(err.stderr));
});
