/**
 * The sidecar end to end over real sockets: two real unbound servers (one as
 * kube-dns, one as the default upstream) and the sidecar on loopback ports.
 * Every answer is read as a client reads it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import * as packet from 'dns-packet';
import { decodeReply, exchangeTcpRaw, exchangeUdpRaw, extendedError, queryTcp, queryUdp } from '../helpers/dns-client.ts';
import { startTestSidecar, type TestSidecar, waitFor } from '../helpers/sidecar.ts';
import { bigTxtRecords, startUnbound, type UnboundServer } from '../helpers/unbound.ts';

const run = promisify(execFile);

let upstream: UnboundServer;
let kubeDns: UnboundServer;
let dir: string;

/** The tenant policy used by most tests. */
function tenantPolicy(extraRules = ''): string {
  return `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata:
  name: team-a
spec:
  defaultAction: allow
  rules:
    - name: no-ads
      action: deny
      names: ["ads.test.example", "ads-*.test.example"]
    - name: refused-zone
      action: deny
      names: ["*.refused.test.example"]
      response: { type: refused }
    - name: nodata-zone
      action: deny
      names: ["*.nodata.test.example"]
      response: { type: nodata }
    - name: sinkhole
      action: deny
      names: ["sink.test.example"]
      response: { type: sinkhole, addresses: ["0.0.0.0", "::"] }
    - name: frontend-no-com
      action: deny
      log: true
      names: ["*.com"]
      podSelector:
        matchLabels: { app: frontend }
${extraRules}
  splitZones:
    - name: kafka
      names: ["*.eu-west-1.kafka.managed.service"]
      cname: vpce-0abc.kafka.eu-west-1.vpce.amazonaws.com
      ttl: 60
    - name: static-db
      names: ["db.internal.example"]
      addresses: ["10.1.2.3"]
      ttl: 120
  forwardZones:
    - name: corp
      zones: ["corp.example"]
      upstreams: ["udp://${kubeDns.address}"]
`;
}

before(async () => {
  upstream = await startUnbound([
    {
      name: 'test.example',
      records: [
        'www.test.example. 300 IN A 192.0.2.1',
        'ads.test.example. 300 IN A 192.0.2.66',
        'sink.test.example. 300 IN A 192.0.2.67',
        ...bigTxtRecords('big.test.example', 3000),
      ],
      negativeTtl: 60,
    },
    { name: 'example.com', records: ['www.example.com. 300 IN A 192.0.2.80'] },
    // The public answer for the Kafka brokers, which the split zone must override.
    { name: 'kafka.managed.service', records: ['b-1.eu-west-1.kafka.managed.service. 300 IN A 198.51.100.7'] },
    { name: 'vpce.amazonaws.com', records: ['vpce-0abc.kafka.eu-west-1.vpce.amazonaws.com. 60 IN A 10.0.5.5'] },
    // Wrong answers for names that must never reach the default upstream.
    { name: 'cluster.local', records: ['kubernetes.default.svc.cluster.local. 30 IN A 203.0.113.66', 'api.github.com.team-a.svc.cluster.local. 30 IN A 203.0.113.67'] },
    { name: 'corp.example', records: ['intranet.corp.example. 300 IN A 203.0.113.68'] },
  ]);
  kubeDns = await startUnbound([
    { name: 'cluster.local', records: ['kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1'], negativeTtl: 30 },
    { name: 'corp.example', records: ['intranet.corp.example. 300 IN A 10.20.0.8'] },
  ]);
  dir = mkdtempSync(join(tmpdir(), 'tenant-dns-it-'));
});

after(async () => {
  await upstream?.stop();
  await kubeDns?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts a sidecar with the tenant policy and the given pod labels; the clock is the test's. */
async function sidecarWith(t: { after: (fn: () => Promise<void>) => void }, opts: { labels?: string; policy?: string; clock?: () => number } = {}): Promise<TestSidecar> {
  const sub = mkdtempSync(join(dir, 'sc-'));
  const policy = join(sub, 'policy.yaml');
  writeFileSync(policy, opts.policy ?? tenantPolicy());
  const flags: Record<string, unknown> = {
    upstream: [`udp://${upstream.address}`],
    clusterDns: kubeDns.address,
    policy,
    tenant: 'team-a',
  };
  if (opts.labels !== undefined) {
    const labels = join(sub, 'labels');
    writeFileSync(labels, opts.labels);
    flags.podLabels = labels;
  }
  const sc = await startTestSidecar(flags, { clock: opts.clock });
  t.after(() => sc.stop());
  return sc;
}

describe('sidecar over real sockets', () => {
  test('allowed name: answered from the upstream over UDP and TCP', async (t) => {
    const sc = await sidecarWith(t);
    const u = await queryUdp(sc.host, sc.port, { name: 'www.test.example', type: 'A' });
    assert.equal(u.rcode, 'NOERROR');
    assert.deepEqual(u.answers!.map((a) => a.data), ['192.0.2.1']);
    const tcp = await queryTcp(sc.host, sc.port, { name: 'www.test.example', type: 'A' });
    assert.deepEqual(tcp.answers!.map((a) => a.data), ['192.0.2.1']);
  });

  test('dig, an independent client, resolves through the sidecar', async (t) => {
    const sc = await sidecarWith(t);
    const { stdout } = await run('dig', ['+short', '+time=2', '+tries=1', '-p', String(sc.port), '@127.0.0.1', 'www.test.example', 'A']);
    assert.equal(stdout.trim(), '192.0.2.1');
    const tcp = await run('dig', ['+tcp', '+time=2', '+tries=1', '-p', String(sc.port), '@127.0.0.1', 'ads.test.example', 'A']);
    assert.match(tcp.stdout, /status: NXDOMAIN/);
    assert.match(tcp.stdout, /EDE: 15 \(Blocked\)/);
  });

  test('deny: NXDOMAIN with an SOA and EDE 15 naming the rule', async (t) => {
    const sc = await sidecarWith(t);
    for (const name of ['ads.test.example', 'ads-tracker.test.example']) {
      const r = await queryUdp(sc.host, sc.port, { name, type: 'A' });
      assert.equal(r.rcode, 'NXDOMAIN', name);
      assert.equal(r.answers!.length, 0);
      assert.equal(r.authorities![0]!.type, 'SOA');
      const ede = extendedError(r);
      assert.equal(ede?.code, 15);
      assert.match(ede!.text, /no-ads/);
    }
    // `ads-*` stays within one label.
    const deeper = await queryUdp(sc.host, sc.port, { name: 'x.ads-tracker.test.example', type: 'A' });
    assert.equal(extendedError(deeper), undefined);
  });

  test('deny response kinds: refused, nodata, sinkhole', async (t) => {
    const sc = await sidecarWith(t);
    const refused = await queryUdp(sc.host, sc.port, { name: 'a.refused.test.example', type: 'A' });
    assert.equal(refused.rcode, 'REFUSED');
    const nodata = await queryUdp(sc.host, sc.port, { name: 'a.nodata.test.example', type: 'A' });
    assert.equal(nodata.rcode, 'NOERROR');
    assert.equal(nodata.answers!.length, 0);
    assert.equal(nodata.authorities![0]!.type, 'SOA');
    const sink4 = await queryUdp(sc.host, sc.port, { name: 'sink.test.example', type: 'A' });
    assert.deepEqual(sink4.answers!.map((a) => a.data), ['0.0.0.0']);
    const sink6 = await queryUdp(sc.host, sc.port, { name: 'sink.test.example', type: 'AAAA' });
    assert.deepEqual(sink6.answers!.map((a) => a.data), ['::']);
  });

  test('podSelector: the frontend may not resolve *.com, other pods may', async (t) => {
    const frontend = await sidecarWith(t, { labels: 'app="frontend"\ntier="web"\n' });
    const backend = await sidecarWith(t, { labels: 'app="backend"\n' });
    const denied = await queryUdp(frontend.host, frontend.port, { name: 'www.example.com', type: 'A' });
    assert.equal(denied.rcode, 'NXDOMAIN');
    assert.match(extendedError(denied)!.text, /frontend-no-com/);
    const allowed = await queryUdp(backend.host, backend.port, { name: 'www.example.com', type: 'A' });
    assert.deepEqual(allowed.answers!.map((a) => a.data), ['192.0.2.80']);
  });

  test('split zone: a Kafka broker name answers CNAME to the PrivateLink host plus its A record', async (t) => {
    const sc = await sidecarWith(t);
    const r = await queryUdp(sc.host, sc.port, { name: 'b-1.eu-west-1.kafka.managed.service', type: 'A' });
    assert.equal(r.rcode, 'NOERROR');
    assert.deepEqual(
      r.answers!.map((a) => [a.name, a.type, a.data]),
      [
        ['b-1.eu-west-1.kafka.managed.service', 'CNAME', 'vpce-0abc.kafka.eu-west-1.vpce.amazonaws.com'],
        ['vpce-0abc.kafka.eu-west-1.vpce.amazonaws.com', 'A', '10.0.5.5'],
      ],
    );
    // Any depth below the zone.
    const deep = await queryUdp(sc.host, sc.port, { name: 'x.y.b-2.eu-west-1.kafka.managed.service', type: 'A' });
    assert.equal(deep.answers![0]!.type, 'CNAME');
  });

  test('split zone with static addresses: A answered, AAAA is NODATA (never NXDOMAIN)', async (t) => {
    const sc = await sidecarWith(t);
    const a = await queryUdp(sc.host, sc.port, { name: 'db.internal.example', type: 'A' });
    assert.deepEqual(a.answers!.map((x) => [x.data, x.ttl]), [['10.1.2.3', 120]]);
    const aaaa = await queryUdp(sc.host, sc.port, { name: 'db.internal.example', type: 'AAAA' });
    assert.equal(aaaa.rcode, 'NOERROR');
    assert.equal(aaaa.answers!.length, 0);
  });

  test('forward zone: corp.example goes to its own upstream', async (t) => {
    const sc = await sidecarWith(t);
    const r = await queryUdp(sc.host, sc.port, { name: 'intranet.corp.example', type: 'A' });
    assert.deepEqual(r.answers!.map((a) => a.data), ['10.20.0.8']);
  });

  test('cluster zone: cluster.local and search-path expansions go to kube-dns, never upstream', async (t) => {
    const sc = await sidecarWith(t);
    const svc = await queryUdp(sc.host, sc.port, { name: 'kubernetes.default.svc.cluster.local', type: 'A' });
    assert.deepEqual(svc.answers!.map((a) => a.data), ['10.96.0.1']);
    const expansion = await queryUdp(sc.host, sc.port, { name: 'api.github.com.team-a.svc.cluster.local', type: 'A' });
    assert.equal(expansion.rcode, 'NXDOMAIN');
    assert.equal(expansion.authorities![0]!.name, 'cluster.local');
  });

  test('large answer: cut with TC over UDP at 512 without EDNS and at the EDNS size, whole over TCP', async (t) => {
    const sc = await sidecarWith(t);
    const plain = await queryUdp(sc.host, sc.port, { name: 'big.test.example', type: 'TXT', edns: false });
    assert.equal(plain.flag_tc, true);
    assert.ok(plain.raw.length <= 512);
    const edns = await queryUdp(sc.host, sc.port, { name: 'big.test.example', type: 'TXT', edns: { udpSize: 1232 } });
    assert.equal(edns.flag_tc, true);
    assert.ok(edns.raw.length <= 1232);
    const big = await queryUdp(sc.host, sc.port, { name: 'big.test.example', type: 'TXT', edns: { udpSize: 4096 } });
    assert.equal(big.flag_tc, false);
    assert.ok(big.raw.length > 1232);
    const tcp = await queryTcp(sc.host, sc.port, { name: 'big.test.example', type: 'TXT', edns: false });
    assert.equal(tcp.flag_tc, false);
    assert.ok(tcp.raw.length > 2500, `TCP answer is ${tcp.raw.length} bytes`);
    assert.equal(tcp.answers!.length, big.answers!.length);
  });

  test('cache: a second query is answered from the cache with a lower TTL', async (t) => {
    let now = 1_000_000;
    const sc = await sidecarWith(t, { clock: () => now });
    const first = await queryUdp(sc.host, sc.port, { name: 'www.test.example', type: 'A' });
    assert.equal(first.answers![0]!.ttl, 300);
    now += 10_000;
    const second = await queryUdp(sc.host, sc.port, { name: 'WWW.Test.Example', type: 'A' });
    assert.equal(second.answers![0]!.ttl, 290);
    assert.equal(second.questions![0]!.name, 'WWW.Test.Example');
    assert.equal(sc.sidecar.cache.store.stats().hits, 1);
  });

  test('cache: NXDOMAIN is cached by the SOA minimum', async (t) => {
    let now = 5_000_000;
    const sc = await sidecarWith(t, { clock: () => now });
    const first = await queryUdp(sc.host, sc.port, { name: 'nope.test.example', type: 'A' });
    assert.equal(first.rcode, 'NXDOMAIN');
    assert.equal(first.authorities![0]!.ttl, 60);
    now += 15_000;
    const second = await queryUdp(sc.host, sc.port, { name: 'nope.test.example', type: 'A' });
    assert.equal(second.rcode, 'NXDOMAIN');
    assert.equal(second.authorities![0]!.ttl, 45);
    now += 50_000;
    const expired = await queryUdp(sc.host, sc.port, { name: 'nope.test.example', type: 'A' });
    assert.equal(expired.authorities![0]!.ttl, 60);
  });

  test('reload: a valid policy change acts at once; an invalid file keeps the last good policy', async (t) => {
    const sub = mkdtempSync(join(dir, 'reload-'));
    // Kubernetes mounts a ConfigMap as a symlink into ..data, swapped atomically on update.
    const writeVersion = (name: string, text: string) => {
      mkdirSync(join(sub, name));
      writeFileSync(join(sub, name, 'policy.yaml'), text);
      symlinkSync(name, join(sub, '..data_tmp'));
      renameSync(join(sub, '..data_tmp'), join(sub, '..data'));
    };
    writeVersion('v1', tenantPolicy());
    symlinkSync('..data/policy.yaml', join(sub, 'policy.yaml'));
    const sc = await startTestSidecar({ upstream: [`udp://${upstream.address}`], clusterDns: kubeDns.address, policy: join(sub, 'policy.yaml') });
    t.after(() => sc.stop());
    const before = await queryUdp(sc.host, sc.port, { name: 'www.test.example', type: 'A' });
    assert.equal(before.rcode, 'NOERROR');

    writeVersion('v2', tenantPolicy(`    - name: no-www
      action: deny
      names: ["www.test.example"]`));
    await waitFor('the new policy to deny www', async () => (await queryUdp(sc.host, sc.port, { name: 'www.test.example', type: 'A' })).rcode === 'NXDOMAIN');

    writeVersion('v3', 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nspec:\n  rules: [{ name: broken, action: maybe }]\n');
    const result = await sc.sidecar.reloadPolicy();
    assert.equal(result.ok, false);
    assert.match(result.error!.message, /policy\.yaml:4/);
    const still = await queryUdp(sc.host, sc.port, { name: 'www.test.example', type: 'A' });
    assert.equal(still.rcode, 'NXDOMAIN', 'the last good policy keeps serving');
  });

  test('reload: /metrics keeps the series of the rules and forward-zone upstreams of the policy serving now only', async (t) => {
    const sub = mkdtempSync(join(dir, 'series-'));
    const file = join(sub, 'policy.yaml');
    // 300 rules with new names and a forward zone with a new upstream per version (the issue: 303 → 603 → 903 series).
    const version = (v: string, port: number) =>
      `apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: {name: t}\nspec:\n  rules:\n${Array.from({ length: 300 }, (_, i) => `    - {name: ${v}-${i}, action: deny, names: [${v}-${i}.test.example]}\n`).join('')}` +
      `  forwardZones:\n    - {name: corp-${v}, zones: [corp.example], upstreams: ["udp://127.0.0.1:${port}"]}\n`;
    writeFileSync(file, version('a', 10_001));
    // Rule and upstream series exist at the full detail level only.
    const sc = await startTestSidecar({ upstream: [`udp://${upstream.address}`], policy: file, metricsDetail: 'full' });
    t.after(() => sc.stop());
    const scrape = async () => (await (await fetch(`http://127.0.0.1:${sc.sidecar.telemetry.metricsAddress!.port}/metrics`)).text()).split('\n');
    const counts: number[] = [];
    for (const [v, port] of [['a', 10_001], ['b', 10_002], ['c', 10_003]] as const) {
      if (v !== 'a') {
        writeFileSync(file, version(v, port));
        assert.equal((await sc.sidecar.reloadPolicy()).ok, true);
      }
      assert.equal((await queryUdp(sc.host, sc.port, { name: `${v}-7.test.example`, type: 'A' })).rcode, 'NXDOMAIN');
      const lines = await scrape();
      counts.push(lines.filter((l) => l.startsWith('tenant_dns_policy_decisions_total{')).length);
      assert.ok(lines.some((l) => l.startsWith('tenant_dns_policy_decisions_total{') && l.includes(`rule="${v}-7"`) && l.endsWith(' 1')), `${v}-7 counted`);
      assert.ok(lines.some((l) => l.includes(`upstream="udp://127.0.0.1:${port}"`)), `the series of the zone's upstream ${port}`);
      for (const old of [10_001, 10_002, 10_003].filter((p) => p !== port)) {
        assert.ok(!lines.some((l) => l.includes(`upstream="udp://127.0.0.1:${old}"`) || l.includes(`upstream="tcp://127.0.0.1:${old}"`)), `no series of the removed upstream ${old}`);
      }
      assert.ok(!lines.some((l) => /rule="(a|b|c)-/.test(l) && !l.includes(`rule="${v}-`)), 'no series of the rules of earlier versions');
    }
    assert.deepEqual(counts, [301, 301, 301], 'decision series per version: 300 rules and the default');
  });

  test('malformed input: no reply to a short message, FORMERR, NOTIMP; a normal query works afterwards', async (t) => {
    const sc = await sidecarWith(t);
    await assert.rejects(exchangeUdpRaw(sc.host, sc.port, Buffer.from([1, 2, 3]), 300), /no UDP reply/);
    const noQuestion = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
    const formerr = decodeReply(await exchangeUdpRaw(sc.host, sc.port, noQuestion));
    assert.equal(formerr.rcode, 'FORMERR');
    assert.equal(formerr.id, 0x1234);
    const status = Buffer.from(packet.encode({ id: 7, type: 'query', questions: [{ name: 'www.test.example', type: 'A', class: 'IN' }] }));
    status.writeUInt16BE(2 << 11, 2); // opcode STATUS
    const notimp = decodeReply(await exchangeTcpRaw(sc.host, sc.port, status));
    assert.equal(notimp.rcode, 'NOTIMP');
    const response = Buffer.from(status);
    response.writeUInt16BE(0x8000, 2); // QR set: a response, dropped
    await assert.rejects(exchangeUdpRaw(sc.host, sc.port, response, 300), /no UDP reply/);
    const ok = await queryUdp(sc.host, sc.port, { name: 'www.test.example', type: 'A' });
    assert.equal(ok.rcode, 'NOERROR');
  });
});
