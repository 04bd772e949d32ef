/**
 * Security test: tenant service-discovery isolation (issue 17 item 5). The
 * attack: a pod of tenant A resolves `db.team-b.svc.cluster.local`, a
 * Service of tenant B, through the cluster DNS (the fake kube-dns below),
 * directly, by the `svc.namespace` short form and the pod's search list, by
 * a pod A record, by an SRV name, or through a CNAME of its own namespace
 * (an ExternalName Service) into tenant B's. First the attack succeeds
 * without the defence (the platform policy without `serviceDiscovery`), then
 * it fails with it: NXDOMAIN with an SOA and EDE 15 naming `tenant-isolation`,
 * counted in `tenant_dns_policy_decisions_total` and written to the query log,
 * and no question about team-b reaches kube-dns; while the tenant's own
 * namespaces, the shared `default` (`kubernetes.default`), search-list
 * expansions into the own namespace and SRV names keep resolving.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { extendedError, queryUdp, type DecodedReply } from '../helpers/dns-client.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';
import { discoveryNamespace } from '../../sidecar/policy/isolation.ts';

/** The NXDOMAIN rcode, in a reply's flags. */
const NXDOMAIN = 3;
const DOC = (spec: string) => `apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: {name: p}\nspec:\n${spec}\n`;
/** The platform layer the control plane renders for tenant A's namespace team-a. */
const ISOLATING = DOC('  serviceDiscovery:\n    isolation: tenant\n    namespaces: [team-a, team-a-jobs]\n    sharedNamespaces: [default, kube-system]');
const OPEN = DOC('  {}');
/** Tenant A's own policy tries to allow tenant B's names: a tenant rule cannot undo the platform's isolation. */
const TENANT = DOC('  rules:\n    - {name: see-team-b, action: allow, names: ["*.team-b.svc.cluster.local", "*.team-b.pod.cluster.local"]}');

/** The Services and pods of the cluster, as kube-dns answers them. */
const A_RECORDS: Record<string, string> = {
  'db.team-a.svc.cluster.local': '10.96.0.10',
  'db.team-a-jobs.svc.cluster.local': '10.96.0.11',
  'db.team-b.svc.cluster.local': '10.96.0.20',
  '10-0-0-20.team-b.pod.cluster.local': '10.0.0.20',
  'kubernetes.default.svc.cluster.local': '10.96.0.1',
};

/** A fake kube-dns: the records above, SRV names, an ExternalName into team-b, NXDOMAIN with the zone's SOA otherwise. */
async function kubeDns(t: TestContext) {
  const asked: string[] = [];
  const server = await startDnsServer({
    handler: (q) => {
      const { name, type } = q.questions![0]!;
      const lower = name.toLowerCase();
      asked.push(lower);
      const base = { id: q.id, type: 'response' as const, flags: packet.AUTHORITATIVE_ANSWER | packet.RECURSION_DESIRED, questions: q.questions };
      const srv = /^_p\._tcp\.svc\.([a-z0-9-]+)\.svc\.cluster\.local$/.exec(lower);
      if (srv && type === 'SRV') {
        return { ...base, answers: [{ name, type: 'SRV', class: 'IN', ttl: 5, data: { priority: 0, weight: 100, port: 5432, target: `svc.${srv[1]}.svc.cluster.local` } }] } as packet.Packet;
      }
      if (lower === 'alias.team-a.svc.cluster.local') {
        return {
          ...base,
          answers: [
            { name, type: 'CNAME', class: 'IN', ttl: 5, data: 'db.team-b.svc.cluster.local' },
            { name: 'db.team-b.svc.cluster.local', type: 'A', class: 'IN', ttl: 5, data: A_RECORDS['db.team-b.svc.cluster.local']! },
          ],
        } as packet.Packet;
      }
      const address = A_RECORDS[lower];
      if (address !== undefined && type === 'A') return { ...base, answers: [{ name, type: 'A', class: 'IN', ttl: 5, data: address }] } as packet.Packet;
      const soa = { name: 'cluster.local', type: 'SOA', class: 'IN', ttl: 5, data: { mname: 'ns.dns.cluster.local', rname: 'hostmaster.cluster.local', serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: 5 } };
      return { ...base, flags: base.flags | NXDOMAIN, authorities: [soa] } as packet.Packet;
    },
  });
  t.after(() => server.close());
  return { server, asked };
}

/** A sidecar for a pod of tenant A in namespace team-a, with `platformText` as the platform layer. */
async function podOfTenantA(t: TestContext, platformText: string) {
  const kube = await kubeDns(t);
  // The default upstream: answers names outside the cluster (example.com), NXDOMAIN for the rest.
  const outside = await startDnsServer({
    handler: (q) => {
      const { name, type } = q.questions![0]!;
      const base = { id: q.id, type: 'response' as const, flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE, questions: q.questions };
      if (name.toLowerCase() === 'example.com' && type === 'A') return { ...base, answers: [{ name, type: 'A', class: 'IN', ttl: 60, data: '192.0.2.80' }] } as packet.Packet;
      return { ...base, flags: base.flags | NXDOMAIN } as packet.Packet;
    },
  });
  t.after(() => outside.close());
  const dir = mkdtempSync(join(tmpdir(), 'isolation-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'platform.yaml'), platformText);
  writeFileSync(join(dir, 'tenant.yaml'), TENANT);
  const log: Record<string, unknown>[] = [];
  const sink = { write: (c: string) => (c.split('\n').filter(Boolean).forEach((l) => log.push(JSON.parse(l))), true), once() {} };
  const sc = await startTestSidecar(
    {
      upstream: [outside.url('udp')],
      clusterDns: `127.0.0.1:${kube.server.udpPort}`,
      platformPolicy: join(dir, 'platform.yaml'),
      policy: join(dir, 'tenant.yaml'),
      tenant: 'tenant-a',
      namespace: 'team-a',
      logQueries: 'denied',
      // The isolation rule's own series (rule="tenant-isolation") is at the full detail level.
      metricsDetail: 'full',
    },
    { queryLogSink: sink },
  );
  t.after(() => sc.stop());
  const ask = (name: string, type = 'A') => queryUdp(sc.host, sc.port, { name, type });
  /**
   * What a stub resolver of the pod gets for a short name (resolv.conf `search team-a.svc.cluster.local
   * svc.cluster.local cluster.local`, `ndots:5`): each expansion in turn until one does not answer
   * NXDOMAIN, then the name as given (glibc and musl alike for a name with fewer dots than ndots).
   */
  const resolve = async (short: string): Promise<{ asked: string[]; reply: DecodedReply }> => {
    const tried: string[] = [];
    let reply: DecodedReply | undefined;
    for (const name of [...['team-a.svc.cluster.local', 'svc.cluster.local', 'cluster.local'].map((s) => `${short}.${s}`), short]) {
      tried.push(name);
      reply = await ask(name);
      if (reply.rcode !== 'NXDOMAIN') break;
    }
    return { asked: tried, reply: reply! };
  };
  return { sc, kube, log, ask, resolve };
}

const address = (r: DecodedReply) => r.answers.filter((a) => a.type === 'A').map((a) => a.data as string);

test('isolation: without it a pod of tenant A discovers tenant B\'s Services (the attack succeeds)', async (t) => {
  const { ask, resolve } = await podOfTenantA(t, OPEN);
  assert.deepEqual(address(await ask('db.team-b.svc.cluster.local')), ['10.96.0.20'], "tenant B's database, by its full name");
  assert.deepEqual(address((await resolve('db.team-b')).reply), ['10.96.0.20'], 'by the svc.namespace short form');
  assert.deepEqual(address(await ask('10-0-0-20.team-b.pod.cluster.local')), ['10.0.0.20'], "by a pod's A record");
  assert.equal((await ask('_p._tcp.svc.team-b.svc.cluster.local', 'SRV')).answers[0]?.type, 'SRV', 'by an SRV name');
  assert.deepEqual(address(await ask('alias.team-a.svc.cluster.local')), ['10.96.0.20'], 'through an ExternalName of its own namespace');
});

test('isolation: with it the attack fails with NXDOMAIN + EDE 15 naming tenant-isolation; own, shared, search-list and SRV names resolve', async (t) => {
  const { sc, kube, log, ask, resolve } = await podOfTenantA(t, ISOLATING);
  let isolated = 0;
  const assertIsolated = (r: DecodedReply, what: string) => {
    isolated++;
    assert.equal(r.rcode, 'NXDOMAIN', what);
    assert.equal(r.answers.length, 0, `${what}: no record reaches the client`);
    assert.deepEqual(r.authorities.map((a) => `${a.type} ${a.name}`), ['SOA cluster.local'], `${what}: the SOA`);
    assert.deepEqual(extendedError(r), { code: 15, text: 'blocked by tenant-dns policy rule tenant-isolation' }, what);
  };

  // The attack, every way: denied, though tenant A's own policy allows these names.
  assertIsolated(await ask('db.team-b.svc.cluster.local'), 'full name');
  assertIsolated(await ask('DB.Team-B.svc.Cluster.Local'), 'another spelling');
  assertIsolated(await ask('10-0-0-20.team-b.pod.cluster.local'), "a pod's A record");
  assertIsolated(await ask('_p._tcp.svc.team-b.svc.cluster.local', 'SRV'), 'an SRV name');
  assertIsolated(await ask('team-b.svc.cluster.local'), 'the namespace itself');
  assertIsolated(await ask('alias.team-a.svc.cluster.local'), 'a CNAME of the own namespace into team-b');
  const short = await resolve('db.team-b');
  assert.deepEqual(short.asked, ['db.team-b.team-a.svc.cluster.local', 'db.team-b.svc.cluster.local', 'db.team-b.cluster.local', 'db.team-b'], 'the walk goes on past NXDOMAIN');
  assert.equal(short.reply.rcode, 'NXDOMAIN', 'the short form finds nothing');
  isolated++; // db.team-b.svc.cluster.local, on the walk

  // What must keep working.
  const own = await resolve('db');
  assert.deepEqual(own.asked, ['db.team-a.svc.cluster.local'], 'the first search expansion is the own namespace');
  assert.deepEqual(address(own.reply), ['10.96.0.10']);
  assert.deepEqual(address(await ask('db.team-a-jobs.svc.cluster.local')), ['10.96.0.11'], "another of the tenant's namespaces");
  assert.deepEqual(address(await ask('kubernetes.default.svc.cluster.local')), ['10.96.0.1'], 'a shared namespace');
  const api = await resolve('kubernetes.default');
  assert.deepEqual(api.asked, ['kubernetes.default.team-a.svc.cluster.local', 'kubernetes.default.svc.cluster.local']);
  assert.deepEqual(address(api.reply), ['10.96.0.1'], 'kubernetes.default by the search list');
  const srv = await ask('_p._tcp.svc.team-a.svc.cluster.local', 'SRV');
  assert.equal(srv.rcode, 'NOERROR');
  assert.deepEqual(srv.answers.map((a) => [a.type, (a.data as { target: string }).target]), [['SRV', 'svc.team-a.svc.cluster.local']], 'an SRV name of the own namespace');
  for (const name of ['svc.cluster.local', 'cluster.local']) {
    const r = await ask(name);
    assert.equal(extendedError(r), undefined, `${name}: not isolated, kube-dns answers`);
  }
  // A name outside the cluster with the search list: one expansion looks like namespace "com" and is isolated,
  // the walk goes on and the name resolves.
  const outside = await resolve('example.com');
  assert.deepEqual(outside.asked, ['example.com.team-a.svc.cluster.local', 'example.com.svc.cluster.local', 'example.com.cluster.local', 'example.com']);
  assert.deepEqual(address(outside.reply), ['192.0.2.80']);
  isolated++; // example.com.svc.cluster.local

  // Observed: the metric counts each deny, the query log names the rule, and kube-dns never heard of team-b.
  const decisions = await sc.sidecar.telemetry.registry.getSingleMetricAsString('tenant_dns_policy_decisions_total');
  assert.match(decisions, new RegExp(`tenant_dns_policy_decisions_total\\{action="deny",rule="tenant-isolation",tenant="tenant-a"\\} ${isolated}(\\n|$)`));
  const logged = log.filter((l) => l.rule === 'tenant-isolation' && l.action === 'deny').map((l) => l.qname);
  assert.equal(logged.length, isolated);
  assert.ok(logged.includes('db.team-b.svc.cluster.local') && logged.includes('alias.team-a.svc.cluster.local'));
  assert.deepEqual(kube.asked.filter((n) => discoveryNamespace(n, 'cluster.local') === 'team-b'), [], 'no question about team-b left the pod');
  assert.ok(kube.asked.includes('alias.team-a.svc.cluster.local'), 'the own name was asked; its answer was checked');
});
