/**
 * Policy over the whole answer, as response policy zones do: every owner
 * name and CNAME/DNAME target of an answer is checked, platform layer first.
 * Each case first shows the bypass (the denied name reached through a chain
 * when the platform does not deny it) and then the deny.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { extendedError, queryUdp } from '../helpers/dns-client.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { startTestSidecar } from '../helpers/sidecar.ts';

const DOC = (spec: string) => `apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: {name: t}\nspec:\n${spec}\n`;
const PLATFORM_DENY = DOC('  rules:\n    - {name: no-exfil, action: deny, names: ["*.exfil.example"]}');
const NOTHING = DOC('  {}');

/** An upstream answering with chains into *.exfil.example. */
async function chainingUpstream(t: TestContext) {
  const server = await startDnsServer({
    handler: (q) => {
      const name = q.questions![0]!.name;
      const base = { id: q.id, type: 'response' as const, flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE, questions: q.questions };
      if (name === 'cdn.innocent.example') {
        return { ...base, answers: [
          { name, type: 'CNAME', class: 'IN', ttl: 300, data: 'hop.innocent.example' },
          { name: 'hop.innocent.example', type: 'CNAME', class: 'IN', ttl: 300, data: 'c2.exfil.example' },
          { name: 'c2.exfil.example', type: 'A', class: 'IN', ttl: 300, data: '198.51.100.66' },
        ] } as packet.Packet;
      }
      if (name === 'x.renamed.example') {
        return { ...base, answers: [
          { name: 'renamed.example', type: 'DNAME', class: 'IN', ttl: 300, data: 'exfil.example' },
          { name, type: 'CNAME', class: 'IN', ttl: 300, data: 'x.exfil.example' },
          { name: 'x.exfil.example', type: 'A', class: 'IN', ttl: 300, data: '198.51.100.67' },
        ] } as packet.Packet;
      }
      if (name === 'db.team-a.svc.cluster.local') {
        // An ExternalName Service pointing at a denied name.
        return { ...base, answers: [{ name, type: 'CNAME', class: 'IN', ttl: 5, data: 'db.exfil.example' }, { name: 'db.exfil.example', type: 'A', class: 'IN', ttl: 5, data: '198.51.100.68' }] } as packet.Packet;
      }
      if (name === 'vpce-1.vpce.amazonaws.com' || name === 'vpce-1.exfil.example') return { ...base, answers: [{ name, type: 'A', class: 'IN', ttl: 60, data: '198.51.100.69' }] } as packet.Packet;
      return { ...base, answers: [{ name, type: 'A', class: 'IN', ttl: 60, data: '198.51.100.1' }] } as packet.Packet;
    },
  });
  t.after(() => server.close());
  return server;
}

async function sidecarWith(t: TestContext, platformText: string, tenantText = NOTHING) {
  const upstream = await chainingUpstream(t);
  const dir = mkdtempSync(join(tmpdir(), 'chain-'));
  const platform = join(dir, 'platform.yaml');
  const tenant = join(dir, 'tenant.yaml');
  writeFileSync(platform, platformText);
  writeFileSync(tenant, tenantText);
  const lines: Record<string, unknown>[] = [];
  const sink = { write: (c: string) => (c.split('\n').filter(Boolean).forEach((l) => lines.push(JSON.parse(l))), true), once() {} };
  const sc = await startTestSidecar(
    { upstream: [upstream.url('udp')], clusterDns: `127.0.0.1:${upstream.udpPort}`, platformPolicy: platform, policy: tenant, logQueries: 'denied', metricsDetail: 'full' },
    { queryLogSink: sink },
  );
  t.after(() => sc.stop());
  return { sc, lines, platform, tenant };
}

const ask = (sc: { host: string; port: number }, name: string) => queryUdp(sc.host, sc.port, { name, type: 'A' });

test('policy over the answer: a CNAME chain, a DNAME and an ExternalName Service into a denied zone are denied, from the cache too', async (t) => {
  // The bypass, without the platform's rule: the chains resolve.
  const open = await sidecarWith(t, NOTHING);
  for (const name of ['cdn.innocent.example', 'x.renamed.example', 'db.team-a.svc.cluster.local']) {
    const r = await ask(open.sc, name);
    assert.equal(r.rcode, 'NOERROR', name);
    assert.ok(r.answers.some((a) => a.type === 'A'), `${name}: reached through the chain`);
  }
  // With it: every one is denied with the platform rule named.
  const { sc, lines } = await sidecarWith(t, PLATFORM_DENY);
  for (const name of ['cdn.innocent.example', 'x.renamed.example', 'db.team-a.svc.cluster.local']) {
    for (const round of ['upstream', 'cache']) {
      const r = await ask(sc, name);
      assert.equal(r.rcode, 'NXDOMAIN', `${name} (${round})`);
      assert.equal(r.answers.length, 0, `${name} (${round}): no record of the chain reaches the client`);
      assert.deepEqual(extendedError(r), { code: 15, text: 'blocked by tenant-dns policy rule platform:no-exfil' }, `${name} (${round})`);
    }
  }
  const logged = lines.filter((l) => l.rule === 'platform:no-exfil' && l.action === 'deny').map((l) => l.qname);
  assert.deepEqual([...new Set(logged)].sort(), ['cdn.innocent.example', 'db.team-a.svc.cluster.local', 'x.renamed.example']);
  const decisions = await sc.sidecar.telemetry.registry.getSingleMetricAsString('tenant_dns_policy_decisions_total');
  assert.match(decisions, /action="deny",rule="platform:no-exfil",tenant="default"\} 6/);
});

test('policy over the answer: a tenant split zone whose CNAME target the platform denies later is denied at query time', async (t) => {
  const split = DOC('  splitZones:\n    - {name: kafka, names: ["*.kafka.test"], cname: vpce-1.exfil.example, resolveVia: default}');
  const { sc, platform, tenant } = await sidecarWith(t, NOTHING, split);
  void tenant;
  const before = await ask(sc, 'b-1.kafka.test');
  assert.equal(before.rcode, 'NOERROR');
  assert.deepEqual(before.answers.map((a) => a.type), ['CNAME', 'A'], 'the target resolves while the platform allows it');
  writeFileSync(platform, PLATFORM_DENY);
  assert.equal((await sc.sidecar.reloadPolicy()).ok, true);
  const after = await ask(sc, 'b-1.kafka.test');
  assert.equal(after.rcode, 'NXDOMAIN');
  assert.equal(extendedError(after)?.text, 'blocked by tenant-dns policy rule platform:no-exfil');
});
