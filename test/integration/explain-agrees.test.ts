/**
 * Property test: `policy explain` and the running sidecar never disagree.
 * For every example policy (as the tenant's, the platform example in front
 * with service-discovery isolation added, for a frontend pod and for a pod
 * without labels, in namespace team-a), seeded random questions
 * (names drawn from the policies' own globs, their near misses, the cluster
 * zone's visible and isolated namespaces and the outside world; types A,
 * AAAA, ANY, TXT, MX, CNAME, SRV) are
 * asked of a sidecar over UDP and of `explain`. A local answer must match
 * record for record (rcode, answers, SOA, EDE); an upstream answer must come
 * from the group explain names. Each test upstream answers every question
 * with one TXT record naming its group, so the reply says who answered.
 * FUZZ_SEED replays a run; the seed is printed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { parse, stringify } from 'yaml';
import { compilePolicy } from '../../sidecar/policy/compile.ts';
import { loadPodLabels, loadPolicyFile } from '../../sidecar/policy/manager.ts';
import { explainQuestion, typeText } from '../../sidecar/route/explain.ts';
import { CLUSTER_DEFAULTS, clusterZones } from '../../sidecar/config/cluster.ts';
import { normalizeName } from '../../sidecar/dns/wire.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { extendedError, queryUdp, type DecodedReply } from '../helpers/dns-client.ts';
import { ROOT, startTestSidecar } from '../helpers/sidecar.ts';
import { fuzzSeed, prng } from '../helpers/fuzz.ts';

const SEED = fuzzSeed(Math.floor(Math.random() * 2 ** 31));
const QUESTIONS_PER_CASE = 120;
const TYPES = ['A', 'AAAA', 'ANY', 'TXT', 'MX', 'CNAME', 'SRV'] as const;
/** The pods' namespace. */
const NAMESPACE = 'team-a';
const EXAMPLES = ['kafka-privatelink.yaml', 'frontend-deny-com.yaml', 'allowlist.yaml', 'static-split.yaml', 'forward-zone.yaml', 'platform-policy.yaml'];

/** A test upstream answering every question with TXT "group=<name>". */
async function groupServer(name: string): Promise<TestDnsServer> {
  return startDnsServer({
    handler: (q) => ({
      id: q.id,
      type: 'response',
      flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE,
      questions: q.questions,
      answers: [{ name: q.questions![0]!.name, type: 'TXT', class: 'IN', ttl: 60, data: [`group=${name}`] }],
    }),
  });
}

/** Globs of every rule and zone of a policy file (parsed leniently: the files are valid). */
function globsOf(doc: { spec?: Record<string, { names?: string[]; zones?: string[] }[]> }): string[] {
  const spec = doc.spec ?? {};
  return [...(spec.rules ?? []), ...(spec.splitZones ?? []), ...(spec.forwardZones ?? [])].flatMap((r) => [...(r.names ?? []), ...(r.zones ?? [])]);
}

/** Question names: each glob with its wildcards filled, its base, near misses, the cluster zone, the outside. */
function nameFor(globs: readonly string[], rnd: () => number): string {
  const label = () => Math.floor(rnd() * 36 ** 4).toString(36);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const r = rnd();
  if (r < 0.6 && globs.length > 0) {
    const g = pick(globs);
    const filled = g.replace(/^\*\./, () => (rnd() < 0.3 ? `${label()}.${label()}.` : `${label()}.`)).replace(/\*/g, () => label());
    const variant = rnd();
    if (variant < 0.15) return filled.replace(/^[^.]*\./, ''); // the parent: a near miss of `*.zone`
    if (variant < 0.25) return `x${filled}`; // the first label changed
    if (variant < 0.35) return filled.toUpperCase(); // case does not matter
    return filled;
  }
  if (r < 0.75) return `${label()}.${pick(['default', 'team-a', 'team-a-jobs', 'team-b', 'kube-system'])}.${pick(['svc', 'svc', 'pod'])}.cluster.local`;
  if (r < 0.8) return `${Math.floor(rnd() * 255)}.10.in-addr.arpa`;
  return `${label()}.${pick(['example.org', 'example.com', 'github.com', 'amazonaws.com', 'test'])}`;
}

/** The records of a section as comparable text, sorted. */
function records(rrs: readonly { type: string; data: unknown; ttl?: number }[]): string[] {
  return rrs.filter((r) => r.type !== 'OPT').map((r) => `${r.type} ${JSON.stringify(r.data)} ${r.ttl}`).sort();
}

test('policy explain and the running sidecar agree on every question (seeded property test)', async (t) => {
  t.diagnostic(`FUZZ_SEED=${SEED}`);
  const rnd = prng(SEED);
  const servers = { default: await groupServer('default'), cluster: await groupServer('cluster'), corp: await groupServer('corp') };
  t.after(() => Promise.all(Object.values(servers).map((s) => s.close())));
  // The examples' forward zone points at addresses of a corporate network: send it to the test server instead.
  const dir = mkdtempSync(join(tmpdir(), 'explain-agrees-'));
  const file = (name: string, edit?: (doc: { spec: Record<string, unknown> }) => void) => {
    const doc = parse(readFileSync(join(ROOT, 'examples', name), 'utf8'));
    for (const fz of doc.spec?.forwardZones ?? []) fz.upstreams = [servers.corp.url('udp')];
    edit?.(doc);
    const out = join(dir, name);
    writeFileSync(out, stringify(doc));
    return { path: out, globs: globsOf(doc) };
  };
  const platform = file('platform-policy.yaml', (doc) => {
    // As the control plane renders it for namespace team-a of a tenant that also owns team-a-jobs.
    doc.spec.serviceDiscovery = { isolation: 'tenant', namespaces: ['team-a', 'team-a-jobs'], sharedNamespaces: ['default'] };
  });
  const labels = { frontend: join(dir, 'frontend.labels'), none: undefined };
  writeFileSync(labels.frontend, 'app="frontend"\ntier="web"\n');
  const zones = clusterZones(CLUSTER_DEFAULTS.clusterDomain, CLUSTER_DEFAULTS.clusterReverseZones);

  let asked = 0;
  let isolated = 0;
  for (const example of EXAMPLES) {
    const tenant = file(example);
    for (const [who, podLabels] of Object.entries(labels)) {
      const sc = await startTestSidecar({
        upstream: [servers.default.url('udp')],
        clusterDns: `127.0.0.1:${servers.cluster.udpPort}`,
        policy: tenant.path,
        platformPolicy: platform.path,
        ...(podLabels ? { podLabels } : {}),
        namespace: NAMESPACE,
        cacheMaxEntries: 0,
      });
      try {
        const compiled = compilePolicy({
          tenant: loadPolicyFile(tenant.path),
          platform: loadPolicyFile(platform.path),
          ...(podLabels ? { podLabels: loadPodLabels(podLabels) } : {}),
          namespace: NAMESPACE,
        });
        const globs = [...tenant.globs, ...platform.globs];
        for (let i = 0; i < QUESTIONS_PER_CASE; i++) {
          const name = nameFor(globs, rnd);
          const type = TYPES[Math.floor(rnd() * TYPES.length)]!;
          const e = explainQuestion(compiled, zones, normalizeName(name), typeNumberOf(type));
          const reply = await queryUdp(sc.host, sc.port, { name, type });
          const where = `${example} (${who} pod): ${name} ${typeText(e.qtype)} routed ${e.route.kind}`;
          compare(reply, e, where);
          asked++;
          if (e.route.evaluation.decision.rule === 'tenant-isolation') isolated++;
        }
      } finally {
        await sc.stop();
      }
    }
  }
  t.diagnostic(`${asked} questions, no disagreement (${isolated} denied by tenant-isolation)`);
  assert.ok(isolated > 0, 'isolation was exercised');
});

/** The type number of a type name. */
function typeNumberOf(type: string): number {
  return { A: 1, AAAA: 28, ANY: 255, TXT: 16, MX: 15, CNAME: 5, SRV: 33 }[type]!;
}

function compare(reply: DecodedReply, e: ReturnType<typeof explainQuestion>, where: string): void {
  if (e.local !== undefined) {
    const expected = packet.decode(e.local.body);
    assert.equal(reply.rcode, (expected as unknown as { rcode: string }).rcode, `${where}: rcode`);
    assert.deepEqual(records(reply.answers), records((expected.answers ?? []) as never), `${where}: answers`);
    assert.deepEqual(records(reply.authorities), records((expected.authorities ?? []) as never), `${where}: authority`);
    assert.deepEqual(extendedError(reply), e.local.ede, `${where}: extended error`);
    return;
  }
  const txt = reply.answers.find((r) => r.type === 'TXT');
  const group = txt ? Buffer.from((txt.data as Buffer[])[0]!).toString().replace(/^group=/, '') : `(${reply.rcode}, no TXT)`;
  assert.equal(group, e.group, `${where}: answered by group`);
  if (e.route.kind === 'split') assert.equal(reply.answers[0]?.type, 'CNAME', `${where}: split CNAME first`);
}
