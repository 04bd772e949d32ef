/**
 * Real stub resolvers in a simulated pod (test/helpers/pod.ts): glibc
 * (`getent ahosts`), musl (test/pod/gai-probe.c built with musl-gcc) and dig,
 * as uid 1000, through the sidecar the injector configured and the
 * resolv.conf it rendered. The pod carries `tenant-dns.io/ndots: "7"`, as a
 * Kafka client would. Needs root and network namespaces; skipped with the
 * reason elsewhere.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { HostAnswers, type HostName } from '../helpers/pod-hosts.ts';
import { muslProbe, podSkipReason, startPod, suiteTeardowns, type Pod, type RunResult } from '../helpers/pod.ts';

const skip = podSkipReason();

const POLICY = `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata: { name: kafka-client, namespace: team-a }
spec:
  rules:
    - { name: no-tracking, action: deny, names: ["*.blocked.example"] }
    - { name: no-team-b, action: deny, names: ["*.team-b.svc.cluster.local"] }
`;

const SEARCH = ['team-a.svc.cluster.local', 'svc.cluster.local', 'cluster.local'];

/** The columns of the Kafka table. */
const COLUMNS = ['libc  ', 'sent to the sidecar', 'sidecar -> kube-dns', 'sidecar -> DoT'] as const;

/** The addresses `getent ahosts` printed (each once). */
function getentAddresses(r: RunResult): string[] {
  return [...new Set(r.stdout.split('\n').map((l) => l.split(/\s+/)[0]!).filter(Boolean))].sort();
}

/** The musl probe's result for one name. */
interface ProbeLine {
  readonly name: string;
  readonly ok: boolean;
  readonly addresses?: string[];
  readonly error?: string;
}

describe('pod: stub resolvers through the sidecar', { skip }, () => {
  let pod: Pod;
  let musl: string;
  const glibc = (name: string) => pod.run(['getent', 'ahosts', name]);
  const muslLookup = async (name: string): Promise<ProbeLine> => {
    const r = await pod.run([musl, name]);
    return JSON.parse(r.stdout.trim()) as ProbeLine;
  };

  const pods = suiteTeardowns();
  before(async () => {
    musl = await muslProbe();
    pod = await startPod(pods, { name: 'kafka-client', annotations: { 'tenant-dns.io/ndots': '7' }, policy: POLICY });
  });

  test('pod: the injector rendered resolv.conf: the sidecar, the cluster search list, ndots 7 from the annotation', () => {
    assert.equal(pod.resolvConf, `nameserver 127.0.0.1\nsearch ${SEARCH.join(' ')}\noptions ndots:7\n`);
  });

  test('pod: a Service resolves through the search list, for glibc and musl', async () => {
    const g = await glibc('web');
    assert.equal(g.code, 0, g.stderr);
    assert.deepEqual(getentAddresses(g), [HostAnswers.serviceA]);
    const m = await muslLookup('web');
    assert.deepEqual(m, { name: 'web', ok: true, addresses: [HostAnswers.serviceA] });
    await pod.barrier();
    const cluster = pod.hostQueries().filter((q) => q.server === 'cluster').map((q) => q.name);
    assert.ok(cluster.includes('web.team-a.svc.cluster.local'), 'the first search domain reached kube-dns');
    assert.ok(!pod.hostQueries().some((q) => q.server !== 'cluster' && q.name.startsWith('web.')), 'no cluster name went to a public upstream');
  });

  test('pod: a Kafka broker name with ndots 7: what each libc sends and the sidecar forwards', async (t) => {
    const rows: string[] = [];
    for (const [libc, broker] of [['glibc', 'b-1.orders.kafka.eu-west-1.managed.service'], ['musl', 'b-2.orders.kafka.eu-west-1.managed.service']] as const) {
      if (libc === 'glibc') {
        const g = await glibc(broker);
        assert.equal(g.code, 0, g.stderr);
        assert.deepEqual(getentAddresses(g), [HostAnswers.brokerAaaa, HostAnswers.brokerA].sort());
      } else {
        const m = await muslLookup(broker);
        assert.equal(m.ok, true, JSON.stringify(m));
        assert.deepEqual([...m.addresses!].sort(), [HostAnswers.brokerAaaa, HostAnswers.brokerA].sort());
      }
      await pod.barrier();
      // 5 dots < ndots 7: every search domain first, then the name itself; A and AAAA for each.
      const candidates = new Set([...SEARCH.map((s) => `${broker}.${s}`), broker]);
      const sent = pod.queryLog().filter((l) => candidates.has(l.qname));
      const forwarded = (server: HostName) => pod.hostQueries().filter((q) => q.server === server && candidates.has(q.name)).length;
      const counts = { sent: sent.length, cluster: forwarded('cluster'), dot: forwarded('dot'), public: forwarded('public') };
      rows.push([libc.padEnd(COLUMNS[0].length), ...[counts.sent, counts.cluster, counts.dot].map((n, i) => String(n).padStart(COLUMNS[i + 1]!.length))].join(' | '));
      // Autopath (on by default; test/pod/autopath.test.ts compares with it off, where this is 8, 6, 2):
      // the client asks A and AAAA for the first expansion and gets the name itself as a CNAME; each
      // expansion reaches kube-dns once (A: its AAAA is answered from that NXDOMAIN), the name the DoT upstream.
      assert.deepEqual(
        [...new Set(sent.map((l) => `${l.qname} ${l.qtype}`))].sort(),
        [`${broker}.${SEARCH[0]} A`, `${broker}.${SEARCH[0]} AAAA`],
        `${libc} asks A and AAAA for the first search expansion only`,
      );
      assert.deepEqual(counts, { sent: 2, cluster: 3, dot: 2, public: 0 }, libc);
    }
    t.diagnostic('queries for one Kafka broker name (ndots 7, 3 search domains):');
    t.diagnostic(COLUMNS.join(' | '));
    for (const r of rows) t.diagnostic(r);
  });

  test('pod: a denied name is "not found" for both libcs, and a deny never breaks musl\'s search walk', async () => {
    const g = await glibc(HostAnswers.trackerName);
    assert.equal(g.code, 2, `getent: exit 2 is "not found": ${g.stdout}${g.stderr}`);
    assert.deepEqual(await muslLookup(HostAnswers.trackerName), { name: HostAnswers.trackerName, ok: false, error: 'EAI_NONAME', message: 'Name does not resolve' });
    // web.team-b: its second expansion (web.team-b.svc.cluster.local) is denied. NXDOMAIN with EDE 15 lets
    // musl go on to the next candidates; REFUSED would have ended the walk with EAI_AGAIN.
    const m = await muslLookup('web.team-b');
    assert.equal(m.error, 'EAI_NONAME', JSON.stringify(m));
    await pod.barrier();
    const walk = pod.queryLog().filter((l) => l.qname === 'web.team-b' || l.qname.startsWith('web.team-b.'));
    const asked = [...new Set(walk.map((l) => l.qname))];
    assert.deepEqual(asked, ['web.team-b.team-a.svc.cluster.local', 'web.team-b.svc.cluster.local', 'web.team-b.cluster.local', 'web.team-b'], 'musl asked every candidate, in order');
    const denied = walk.filter((l) => l.qname === 'web.team-b.svc.cluster.local');
    assert.ok(denied.length > 0 && denied.every((l) => l.action === 'deny' && l.rule === 'no-team-b' && l.rcode === 'NXDOMAIN'), JSON.stringify(denied));
    assert.ok(!pod.hostQueries().some((q) => q.name === 'web.team-b.svc.cluster.local'), 'a denied name never leaves the pod');
    const tracker = pod.queryLog().filter((l) => l.qname === HostAnswers.trackerName);
    assert.ok(tracker.length >= 2 && tracker.every((l) => l.action === 'deny' && l.source === 'policy'), JSON.stringify(tracker));
  });

  test('pod: glibc sends A and AAAA in parallel on one socket (its default) and gets both answers, once each', async () => {
    const before = pod.queryLog().length;
    const g = await glibc(HostAnswers.dualName);
    assert.equal(g.code, 0, g.stderr);
    assert.deepEqual(getentAddresses(g), [HostAnswers.dualAaaa, HostAnswers.dualA].sort());
    await pod.barrier();
    // 2 dots under ndots 7: the walk starts at the first search domain, which autopath answers.
    const asked = pod.queryLog().slice(before).filter((l) => l.qname === `${HostAnswers.dualName}.${SEARCH[0]}`).map((l) => `${l.qtype} ${l.rcode}`);
    // A reply lost in the sidecar would show as a repeat after glibc's 5 s timeout (or as single-request fallback).
    assert.deepEqual(asked.sort(), ['A NOERROR', 'AAAA NOERROR']);
    assert.doesNotMatch(pod.resolvConf, /single-request/, 'glibc runs with its default: both questions in parallel on one socket');
  });

  test('pod: dig asks the sidecar over UDP and TCP and sees its EDE for a denied name', async () => {
    for (const transport of ['+notcp', '+tcp']) {
      const r = await pod.run(['dig', transport, '+tries=1', '+time=3', HostAnswers.trackerName, 'A']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /status: NXDOMAIN/);
      assert.match(r.stdout, /EDE: 15 \(Blocked\)/);
      assert.match(r.stdout, /SERVER: 127\.0\.0\.1#53/);
    }
  });
});
