/**
 * Autopath in simulated pods (test/helpers/pod.ts): glibc (`getent ahosts`)
 * and musl (test/pod/gai-probe.c) look up the same shapes of names through a
 * sidecar with autopath and one with `--autopath=false`, under ndots 1, 5
 * and 7, and must get exactly the same result (addresses, canonical name,
 * exit status). Per lookup and libc the test counts the queries the client
 * sent (the sidecar's query log) and the ones that reached the "cluster DNS"
 * and the DoT upstream (the test hosts' log), prints the table, and asserts
 * the bounds the README states. Needs root; skipped with the reason elsewhere.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { BARRIER_ZONE, HostAnswers } from '../helpers/pod-hosts.ts';
import { muslProbe, podSkipReason, startPod, suiteTeardowns, type Pod, type RunResult } from '../helpers/pod.ts';

const skip = podSkipReason();

const POLICY = `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata: { name: autopath, namespace: team-a }
spec:
  rules:
    - { name: no-tracking, action: deny, names: ["*.blocked.example"] }
    - { name: no-team-c, action: deny, names: ["*.team-c.svc.cluster.local"] }
  splitZones:
    - { name: internal-db, names: ["*.db.internal.example"], addresses: ["10.20.0.10"], ttl: 30 }
    - { name: privatelink, names: ["*.privatelink.example"], cname: vpce-1.kafka.eu-west-1.managed.service, ttl: 60, resolveVia: default }
`;

type Libc = 'glibc' | 'musl';

/** A shape of name; `name` makes one per libc, so one libc's lookup never finds the other's in the cache. */
interface Lookup {
  readonly shape: string;
  readonly name: (libc: Libc) => string;
  /** Whether the name resolves for `libc` under `ndots` (both sidecars must agree, and agree with this). */
  readonly resolves: boolean | ((libc: Libc, ndots: number) => boolean);
}

const KAFKA: Lookup = { shape: 'Kafka broker (mixed case)', name: (l) => `LKC-${l.toUpperCase()}.Orders.kafka.eu-west-1.managed.service`, resolves: true };

const LOOKUPS: readonly Lookup[] = [
  { shape: 'Service `svc`', name: (l) => `web-${l}`, resolves: true },
  // musl never searches a name with ndots dots or more: under ndots 1, `svc.ns` is asked as it is only.
  { shape: 'Service `svc.ns`', name: (l) => `web-${l}.team-b`, resolves: (libc, ndots) => libc === 'glibc' || ndots > 1 },
  { shape: 'split zone, addresses', name: (l) => `${l}.db.internal.example`, resolves: true },
  { shape: 'split zone, CNAME', name: (l) => `${l}.privatelink.example`, resolves: true },
  KAFKA,
  { shape: 'external, no such name', name: (l) => `nope-${l}.example.org`, resolves: false },
  { shape: 'denied name', name: (l) => `${l}.blocked.example`, resolves: false },
  { shape: 'denied `svc.ns`', name: (l) => `web-${l}.team-c`, resolves: false },
];

/** What one lookup did: what the app printed, and what was sent and forwarded meanwhile. */
interface Seen {
  readonly result: string;
  readonly ok: boolean;
  readonly sent: number;
  readonly cluster: number;
  readonly dot: number;
  /** The cluster DNS's queries as `name type`. */
  readonly clusterQueries: readonly string[];
}

function isBarrier(name: string): boolean {
  return name.endsWith(`.${BARRIER_ZONE}`);
}

/**
 * Runs one lookup in `pod` and counts what the app sent and what the sidecar
 * forwarded until the barrier after it (the barrier of the lookup before, or
 * nothing at all for a fresh pod, marks the start).
 */
async function lookUp(pod: Pod, libc: Libc, name: string, musl: string): Promise<Seen> {
  const logFrom = pod.queryLog().length;
  const hostsFrom = pod.hostQueries().length;
  const r: RunResult = await pod.run(libc === 'glibc' ? ['getent', 'ahosts', name] : [musl, name]);
  await pod.barrier();
  const sent = pod.queryLog().slice(logFrom).filter((l) => !isBarrier(l.qname));
  const hosts = pod.hostQueries().slice(hostsFrom).filter((q) => !isBarrier(q.name));
  const cluster = hosts.filter((q) => q.server === 'cluster');
  assert.equal(hosts.filter((q) => q.server === 'public').length, 0, 'nothing goes to the public resolver');
  return {
    result: `exit ${r.code}\n${r.stdout}`,
    ok: r.code === 0,
    sent: sent.length,
    cluster: cluster.length,
    dot: hosts.filter((q) => q.server === 'dot').length,
    clusterQueries: cluster.map((q) => `${q.name} ${q.type}`),
  };
}

const COLUMNS = ['ndots', 'lookup                    ', 'libc ', 'sent off/on', 'kube-dns off/on', 'DoT off/on'] as const;

function row(cells: readonly string[]): string {
  return cells.map((c, i) => c.padEnd(COLUMNS[i]!.length)).join(' | ');
}

describe('pod: autopath gives glibc and musl the same answers with fewer queries', { skip }, () => {
  const pods = suiteTeardowns();
  let musl: string;
  before(async () => {
    musl = await muslProbe();
  });

  for (const ndots of [1, 5, 7]) {
    describe(`ndots ${ndots}`, () => {
      let on: Pod;
      let off: Pod;
      before(async () => {
        const pod = (name: string, sidecarArgs: string[]) =>
          startPod(pods, { name, annotations: { 'tenant-dns.io/ndots': String(ndots) }, policy: POLICY, sidecarArgs });
        // The autopath pod's sidecar cannot read a resolv.conf: it knows the search list and ndots from the
        // --search and --ndots flags the injector wrote, the same values as the pod's dnsConfig.
        [on, off] = await Promise.all([pod(`autopath-${ndots}`, ['--resolv-conf=/nonexistent/resolv.conf']), pod(`plain-${ndots}`, ['--autopath=false'])]);
        assert.ok(on.sidecar.stderr().includes(`"autopath":{"search":["team-a.svc.cluster.local","svc.cluster.local","cluster.local"],"ndots":${ndots},"from":"flags"}`), 'autopath from the flags');
        assert.ok(off.sidecar.stderr().includes('"autopath":null'), '--autopath=false switches it off');
      });

      test(`pod autopath ndots ${ndots}: every lookup gives the same result with and without autopath, never more queries, a repeat from the cache`, async (t) => {
        assert.match(on.resolvConf, new RegExp(`options ndots:${ndots}\\n$`));
        const rows: string[] = [];
        const seen = new Map<string, { off: Seen; on: Seen }>();
        for (const lookup of LOOKUPS) {
          for (const libc of ['glibc', 'musl'] as const) {
            const name = lookup.name(libc);
            const [a, b] = await Promise.all([lookUp(off, libc, name, musl), lookUp(on, libc, name, musl)]);
            seen.set(`${lookup.shape}/${libc}`, { off: a, on: b });
            rows.push(row([String(ndots), lookup.shape, libc, `${a.sent}/${b.sent}`, `${a.cluster}/${b.cluster}`, `${a.dot}/${b.dot}`]));
            assert.equal(b.result, a.result, `${libc} ${name}: the same result with autopath as without`);
            assert.equal(a.ok, typeof lookup.resolves === 'boolean' ? lookup.resolves : lookup.resolves(libc, ndots), `${libc} ${name}: ${a.result}`);
            assert.ok(b.sent <= a.sent, `${libc} ${name}: the client sends no more queries with autopath (${b.sent} > ${a.sent})`);
            // Where autopath answered, it never forwards more. (Elsewhere both pods race alike: an AAAA that
            // arrives after its A's NXDOMAIN is answered from the cache, one that arrives before is forwarded.)
            if (b.sent < a.sent) assert.ok(b.cluster <= a.cluster && b.dot <= a.dot, `${libc} ${name}: the sidecar forwards no more with autopath`);
            assert.equal(new Set(b.clusterQueries).size, b.clusterQueries.length, `${libc} ${name}: no question reaches kube-dns twice: ${b.clusterQueries.join(', ')}`);
            if (lookup === KAFKA) {
              // At once, well within the negative-cache period (5 s in the cluster zone): the walk is in the cache.
              const again = await lookUp(on, libc, name, musl);
              assert.equal(again.result, b.result);
              assert.deepEqual({ cluster: again.cluster, dot: again.dot }, { cluster: 0, dot: 0 }, `${libc}: a second lookup reaches no upstream`);
            }
          }
        }
        t.diagnostic(`queries per lookup, without/with autopath (ndots ${ndots}; search team-a.svc.cluster.local svc.cluster.local cluster.local):`);
        t.diagnostic(COLUMNS.join(' | '));
        for (const r of rows) t.diagnostic(r);

        for (const libc of ['glibc', 'musl'] as const) {
          const kafka = seen.get(`${KAFKA.shape}/${libc}`)!;
          // The case the client used survives: the canonical name glibc prints is its own spelling.
          if (libc === 'glibc') assert.match(kafka.on.result, new RegExp(KAFKA.name(libc).replace(/\./g, '\\.')));
          assert.match(kafka.on.result, new RegExp(libc === 'glibc' ? HostAnswers.brokerA.replace(/\./g, '\\.') : `"${HostAnswers.brokerA}"`));
          if (ndots === 7) {
            // The Kafka name has 5 dots: under ndots 7 the walk covers the 3 search domains.
            assert.equal(kafka.off.sent, 8, `${libc} without autopath: A and AAAA for each of 4 names`);
            assert.equal(kafka.on.sent, 2, `${libc} with autopath: one query per type`);
            assert.equal(kafka.on.dot, 2, `${libc}: the name itself reaches the DoT upstream once per type`);
            assert.deepEqual(
              [...kafka.on.clusterQueries].sort(),
              ['team-a.svc.cluster.local', 'svc.cluster.local', 'cluster.local'].map((d) => `${KAFKA.name(libc).toLowerCase()}.${d} A`).sort(),
              `${libc}: each search-list expansion reaches kube-dns once (A; its AAAA is answered from that NXDOMAIN)`,
            );
          }
          if (ndots === 5 || ndots === 7) {
            const svc = seen.get(`Service \`svc.ns\`/${libc}`)!;
            assert.equal(svc.on.sent, 2, `${libc}: svc.ns of another namespace takes one query per type with autopath`);
            // Every name NXDOMAIN: the client still walks, and its own queries after the answer are cache hits:
            // each expansion reached kube-dns once, the name itself the DoT upstream once.
            const nope = seen.get(`external, no such name/${libc}`)!;
            assert.deepEqual({ sent: nope.on.sent, cluster: nope.on.cluster, dot: nope.on.dot }, { sent: 8, cluster: 3, dot: 1 }, libc);
          }
        }
      });
    });
  }
});

describe('pod: an IPv4-only tenant (spec.ipFamilies: [IPv4]) never forwards AAAA', { skip }, () => {
  const pods = suiteTeardowns();
  let pod: Pod;
  let musl: string;
  before(async () => {
    musl = await muslProbe();
    pod = await startPod(pods, { name: 'ipv4-only', policy: `${POLICY}  ipFamilies: [IPv4]\n` });
  });

  test('pod ipFamilies: glibc and musl get the IPv4 addresses of dual-stack names, "not found" for missing ones; no AAAA leaves the pod', async () => {
    for (const libc of ['glibc', 'musl'] as const) {
      const kafka = await lookUp(pod, libc, KAFKA.name(libc), musl);
      assert.equal(kafka.ok, true, kafka.result);
      assert.ok(kafka.result.includes(HostAnswers.brokerA) && !kafka.result.includes(HostAnswers.brokerAaaa), kafka.result);
      const svc = await lookUp(pod, libc, `web-${libc}`, musl);
      assert.ok(svc.ok && svc.result.includes(HostAnswers.serviceA), svc.result);
      const missing = await lookUp(pod, libc, `nope-${libc}.example.org`, musl);
      assert.equal(missing.ok, false, missing.result);
      assert.match(missing.result, libc === 'glibc' ? /^exit 2\n$/ : /EAI_NONAME/);
    }
    assert.deepEqual(pod.hostQueries().filter((q) => q.type === 'AAAA' && !isBarrier(q.name)), []);
    const aaaa = pod.queryLog().filter((l) => l.qtype === 'AAAA');
    assert.ok(aaaa.length >= 6 && aaaa.every((l) => l.rcode === 'NOERROR' || l.rcode === 'NXDOMAIN'), JSON.stringify(aaaa.map((l) => l.rcode)));
  });
});

describe('pod: --cluster-spec-names-only answers impossible cluster names in the pod', { skip }, () => {
  const pods = suiteTeardowns();
  let pod: Pod;
  let musl: string;
  before(async () => {
    musl = await muslProbe();
    const opts = { annotations: { 'tenant-dns.io/ndots': '7' }, policy: POLICY, config: { clusterSpecNamesOnly: true } };
    pod = await startPod(pods, { name: 'spec-names', ...opts });
  });

  test('pod spec names: the Kafka walk (ndots 7) reaches kube-dns once, for the one expansion not below svc; Services still resolve', async () => {
    for (const libc of ['glibc', 'musl'] as const) {
      const kafka = await lookUp(pod, libc, KAFKA.name(libc), musl);
      assert.equal(kafka.ok, true, kafka.result);
      assert.deepEqual(kafka.clusterQueries, [`${KAFKA.name(libc).toLowerCase()}.cluster.local A`]);
      assert.deepEqual({ sent: kafka.sent, dot: kafka.dot }, { sent: 2, dot: 2 });
      const svc = await lookUp(pod, libc, `web-${libc}.team-b`, musl);
      assert.ok(svc.ok && svc.result.includes(HostAnswers.serviceA), svc.result);
    }
  });
});
