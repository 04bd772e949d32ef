/**
 * The series budget (issue 19): an idle pod's `/metrics` exposes at most
 * {@link BUDGET} series at the default `--metrics-detail`, and still after
 * one query of each common kind. The sidecar runs as the injector starts it
 * (`sidecarArgs` of the injector's default config, kube-dns pointed at a real
 * unbound), with the bench's tenant policy and the example platform layer as
 * the controller renders it for a namespace, mounted at temporary paths.
 * `--metrics-detail full` then shows the detail the default leaves out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { parseInjectorConfig } from '../../injector/config.ts';
import { Env, Paths } from '../../injector/names.ts';
import { sidecarArgs } from '../../injector/sidecar-spec.ts';
import { queryUdp } from '../helpers/dns-client.ts';
import { BENCH_POLICY_DENIED, benchPolicy, HOT_ZONE } from '../helpers/peers.ts';
import { spawnServing, ROOT, type ServingSidecar } from '../helpers/sidecar.ts';
import { startUnbound } from '../helpers/unbound.ts';

/** Series an idle pod may expose by default (issue 19: 5,000 pods × 80 = 400,000 series). */
const BUDGET = 80;

const NAMESPACE = 'shop';

/** Series on `/metrics` (every sample line), and the metric names that have them. */
async function series(sc: ServingSidecar): Promise<{ count: number; names: Set<string>; text: string }> {
  const text = await (await fetch(`http://127.0.0.1:${sc.metrics!.port}/metrics`)).text();
  const samples = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  return { count: samples.length, names: new Set(samples.map((l) => l.split(/[{ ]/)[0]!)), text };
}

/** The injector's default sidecar args with the pod's files and environment at test paths, plus `extra`. */
function injectedArgs(dir: string, clusterDns: string, extra: readonly string[]): string[] {
  const platform = parse(readFileSync(join(ROOT, 'examples/platform-policy.yaml'), 'utf8')) as { spec: Record<string, unknown> };
  // As the control plane renders it for a namespace of a tenant that owns two.
  platform.spec.serviceDiscovery = { isolation: 'tenant', namespaces: [NAMESPACE, `${NAMESPACE}-jobs`], sharedNamespaces: ['default'] };
  const files: Record<string, string> = { [Paths.policyFile]: join(dir, 'policy.yaml'), [Paths.platformFile]: join(dir, 'platform.yaml'), [Paths.podLabelsFile]: join(dir, 'labels') };
  copyFileSync(benchPolicy(), files[Paths.policyFile]!);
  writeFileSync(files[Paths.platformFile]!, stringify(platform));
  writeFileSync(files[Paths.podLabelsFile]!, 'app="web"\npod-template-hash="6b8f9c7d5"\n');
  const env: Record<string, string> = { [Env.tenant]: 'team-a', [Env.pod]: 'web-0', [Env.namespace]: NAMESPACE };
  const args = sidecarArgs(parseInjectorConfig({ clusterDns })).map((a) => {
    const [flag, value] = [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)];
    if (flag === '--listen') return '--listen=127.0.0.1:0';
    if (files[value]) return `${flag}=${files[value]}`;
    return a.replace(/\$\(([A-Z_]+)\)/g, (_, name: string) => env[name]!);
  });
  return ['sidecar', ...args, ...extra];
}

/** One query of each common kind: A and AAAA misses then hits, PTR, SRV, TXT, HTTPS, NXDOMAIN, a tenant deny, a platform refusal, a split zone. */
async function commonQueries(port: number): Promise<void> {
  const q = async (name: string, type: string, rcode: string) => assert.equal((await queryUdp('127.0.0.1', port, { name, type }, 3000)).rcode, rcode, `${type} ${name}`);
  for (let i = 0; i < 2; i++) {
    await q(`www.${HOT_ZONE}`, 'A', 'NOERROR');
    await q(`www.${HOT_ZONE}`, 'AAAA', 'NOERROR');
  }
  await q('1.0.0.10.in-addr.arpa', 'PTR', 'NXDOMAIN');
  await q(`_http._tcp.api.${NAMESPACE}.svc.cluster.local`, 'SRV', 'NXDOMAIN');
  await q(`www.${HOT_ZONE}`, 'TXT', 'NOERROR');
  await q(`www.${HOT_ZONE}`, 'HTTPS', 'NOERROR');
  await q(`nope.${HOT_ZONE}`, 'A', 'NXDOMAIN');
  await q(BENCH_POLICY_DENIED.name, 'A', 'NXDOMAIN');
  await q('metadata.google.internal', 'A', 'REFUSED');
  await q('b-1.eu-west-1.kafka.managed.service', 'A', 'NOERROR');
}

test('series budget: an injected sidecar with a tenant and a platform policy exposes at most 80 series idle and after one query of each kind; --metrics-detail full adds the per-rule, per-upstream and per-qtype detail', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-series-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const unbound = await startUnbound([
    { name: HOT_ZONE, records: [`www.${HOT_ZONE}. 300 IN A 192.0.2.1`, `www.${HOT_ZONE}. 300 IN AAAA 2001:db8::1`, `www.${HOT_ZONE}. 300 IN TXT "v=1"`] },
    { name: 'cluster.local', records: [] },
    { name: 'in-addr.arpa', records: [] },
    { name: 'kafka.eu-west-1.vpce.amazonaws.com', records: ['vpce-0a1b2c3d4e5f6a7b8-abcdefgh.kafka.eu-west-1.vpce.amazonaws.com. 60 IN A 10.1.2.3'] },
  ]);
  t.after(() => unbound.stop());

  const sidecar = await spawnServing(injectedArgs(dir, unbound.address, []), { timeoutMs: 20_000 });
  t.after(() => sidecar.kill());
  const idle = await series(sidecar);
  assert.ok(idle.count <= BUDGET, `idle: ${idle.count} series, budget ${BUDGET}:\n${idle.text}`);
  await commonQueries(sidecar.port);
  const after = await series(sidecar);
  assert.ok(after.count <= BUDGET, `after the queries: ${after.count} series, budget ${BUDGET}:\n${after.text}`);
  t.diagnostic(`series: ${idle.count} idle, ${after.count} after one query of each kind`);
  // The default set still counts what the dashboards read.
  // Denials: the tenant's rule and the platform's refusal.
  assert.match(after.text, /^tenant_dns_policy_decisions_total\{action="deny",tenant="team-a"\} 2$/m);
  assert.match(after.text, /^tenant_dns_requests_total\{proto="udp",qtype="other",tenant="team-a"\} 4$/m);
  assert.match(after.text, /^process_resident_memory_bytes\{tenant="team-a"\} \d+/m);
  assert.doesNotMatch(after.text, /rule="|upstream="udp[^"]*",rcode=|qtype="PTR"|^nodejs_heap_space/m);

  const full = await spawnServing(injectedArgs(dir, unbound.address, ['--metrics-detail=full']), { timeoutMs: 20_000 });
  t.after(() => full.kill());
  await commonQueries(full.port);
  const detailed = await series(full);
  assert.ok(detailed.count > 2 * BUDGET, `full: ${detailed.count} series`);
  assert.match(detailed.text, new RegExp(`^tenant_dns_policy_decisions_total\\{action="deny",rule="${BENCH_POLICY_DENIED.rule}",tenant="team-a"\\} 1$`, 'm'));
  assert.match(detailed.text, /^tenant_dns_requests_total\{proto="udp",qtype="PTR",tenant="team-a"\} 1$/m);
  assert.match(detailed.text, new RegExp(`^tenant_dns_upstream_request_duration_seconds_count\\{upstream="udp://${unbound.address}",rcode="NOERROR",tenant="team-a"\\} [1-9]`, 'm'));
  assert.ok(detailed.names.has('nodejs_heap_space_size_used_bytes'));
});
