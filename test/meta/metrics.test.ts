/**
 * Conventions as tests (DESIGN §6, §7): metric names and labels, each
 * folder's README listing exactly the metrics its metrics module declares,
 * and the dashboard and alerts querying only metrics that exist.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { ALERTS, CONTROL_PLANE_ROW, CONTROLLER_ALERTS, INJECTOR_ALERTS, panelQueries } from '../../dashboards/build.ts';
import { createControllerMetrics, createInjectorMetrics } from '../../injector/metrics.ts';
import { GatewayMetrics } from '../../gateway/metrics.ts';
import { AutopathMetrics } from '../../sidecar/autopath/metrics.ts';
import { CacheMetrics } from '../../sidecar/cache/metrics.ts';
import { ListenerMetrics } from '../../sidecar/listener/metrics.ts';
import { QueryMetrics } from '../../sidecar/metrics/metrics.ts';
import { SidecarMetrics } from '../../sidecar/metrics/telemetry.ts';
import { PolicyMetrics } from '../../sidecar/policy/metrics.ts';
import { UpstreamMetrics } from '../../sidecar/upstream/metrics.ts';
import { PipelineMetrics } from '../../sidecar/pipeline/metrics.ts';

const SIDECAR = new URL('../../sidecar/', import.meta.url);

/** Each folder's metrics module (`sidecar/<folder>/metrics.ts`), declaring its metrics in the registry given. */
const MODULES: Readonly<Record<string, (registry: Registry) => unknown>> = {
  metrics: (r) => new QueryMetrics(r, { version: '1.0.0', processMetrics: false }),
  listener: (r) => new ListenerMetrics(r),
  policy: (r) => new PolicyMetrics(r),
  cache: (r) => new CacheMetrics(r),
  upstream: (r) => new UpstreamMetrics(r),
  pipeline: (r) => new PipelineMetrics(r),
  autopath: (r) => new AutopathMetrics(r),
};

/** A registry with every metric holding at least one series. */
async function populated(): Promise<{ registry: Registry; text: string }> {
  const registry = new Registry();
  const m = new SidecarMetrics(registry, { tenant: 'team-a', version: '1.0.0', processMetrics: true });
  m.cache.bindStats(() => ({ entries: 1, bytes: 2, hits: 3, misses: 4, evictions: 5, expired: 6, staleServed: 7 }));
  m.upstream.bindGroups(() => new Map([['default', { members: () => [{ address: 'udp://192.0.2.1:53', healthy: true }] }]]));
  m.policy.bindLastReloadSuccess(() => Date.now());
  m.query.request('udp', 1);
  m.query.response('upstream', 0, 0.01);
  m.policy.decision('deny', 'no-ads');
  m.upstream.attempt('udp://192.0.2.1:53', 0, null, 0.01);
  m.upstream.attempt('udp://192.0.2.1:53', null, 'UPSTREAM_TIMEOUT', 1.5);
  m.upstream.connection('tcp://192.0.2.1:53', 1);
  m.upstream.droppedReply('udp://192.0.2.1:53');
  m.policy.reload('success');
  m.query.logDropped();
  m.pipeline.failed('UPSTREAM_GROUP_FAILED');
  m.autopath.answered('found', 3);
  return { registry, text: await registry.metrics() };
}

/** Our metric families: name, type, and the label names seen on their samples. */
async function families() {
  const { registry, text } = await populated();
  const ours = registry.getMetricsAsArray().filter((metric) => metric.name.startsWith('tenant_dns_'));
  const labels = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const m = /^(tenant_dns_[a-z0-9_]+?)(_bucket|_sum|_count)?\{(.*)\} /.exec(line);
    if (!m) continue;
    const base = ours.some((f) => f.name === m[1] + (m[2] ?? '')) ? m[1]! + (m[2] ?? '') : m[1]!;
    const set = labels.get(base) ?? new Set<string>();
    for (const l of m[3]!.matchAll(/([a-z_]+)="/g)) set.add(l[1]!);
    labels.set(base, set);
  }
  return { registry, text, ours: ours.map((f) => ({ name: f.name, type: (f as unknown as { type: string }).type, labels: labels.get(f.name) ?? new Set<string>() })) };
}

const ALLOWED_LABELS = new Set(['tenant', 'proto', 'qtype', 'rcode', 'source', 'action', 'rule', 'upstream', 'code', 'group', 'reason', 'result', 'version', 'node', 'le']);

test('meta metrics: names are snake case under tenant_dns_, counters end in _total, units are in the name', async () => {
  const { ours } = await families();
  assert.ok(ours.length >= 20, `expected the full set of metrics, got ${ours.length}`);
  for (const f of ours) {
    assert.match(f.name, /^tenant_dns_[a-z][a-z0-9_]*[a-z0-9]$/, f.name);
    if (f.type === 'counter') assert.ok(f.name.endsWith('_total'), `counter ${f.name} must end in _total`);
    else assert.ok(!f.name.endsWith('_total'), `${f.type} ${f.name} must not end in _total`);
    if (f.type === 'histogram') assert.ok(f.name.endsWith('_seconds'), `histogram ${f.name} must carry its unit (_seconds)`);
    if (/duration|latency|time/.test(f.name)) assert.ok(/_seconds(_total)?$/.test(f.name), `${f.name}: times are in seconds, named so`);
    if (/bytes|size/.test(f.name)) assert.ok(/_bytes(_total)?$/.test(f.name), `${f.name}: sizes are in bytes, named so`);
  }
});

test('meta metrics: every series of ours carries tenant, and labels stay bounded (no names, no addresses of clients)', async () => {
  const { ours, text } = await families();
  for (const line of text.split('\n')) {
    if (!line.startsWith('tenant_dns_')) continue;
    assert.match(line, /[{,]tenant="team-a"[,}]/, `no tenant label: ${line}`);
  }
  for (const f of ours) {
    assert.ok(f.labels.size > 0, `${f.name} has no series in the populated registry`);
    for (const l of f.labels) assert.ok(ALLOWED_LABELS.has(l), `${f.name}: label ${l} is not in the bounded set`);
  }
  // Process metrics carry the tenant too (a registry default label).
  assert.match(text, /process_cpu_seconds_total\{tenant="team-a"\}/);
});

/**
 * The metrics a README lists in its "## Metrics" section: the rows of its
 * tables whose first cell names a `tenant_dns_` metric, by that name.
 */
export function readmeMetrics(readme: string): Map<string, string> {
  const lines = readme.split('\n');
  const start = lines.indexOf('## Metrics');
  const out = new Map<string, string>();
  if (start < 0) return out;
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('## ')) break;
    const m = /^\|\s*`(tenant_dns_[a-z0-9_]+)`\s*\|/.exec(line);
    if (m) out.set(m[1]!, line);
  }
  return out;
}

const sorted = (names: Iterable<string>) => [...names].sort();

test('meta metrics: every folder under sidecar/ with a metrics.ts is checked below', () => {
  const folders = readdirSync(SIDECAR, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(new URL(`${d.name}/metrics.ts`, SIDECAR)))
    .map((d) => d.name);
  assert.deepEqual(sorted(folders), sorted(Object.keys(MODULES)));
});

for (const [folder, declare] of Object.entries(MODULES)) {
  test(`meta metrics: sidecar/${folder}/README.md lists exactly the metrics sidecar/${folder}/metrics.ts declares, with type and labels`, () => {
    const registry = new Registry();
    declare(registry);
    const declared = registry.getMetricsAsArray() as unknown as { name: string; type: string; labelNames: readonly string[] }[];
    const listed = readmeMetrics(readFileSync(new URL(`${folder}/README.md`, SIDECAR), 'utf8'));
    const names = new Set(declared.map((d) => d.name));
    assert.ok(names.size > 0, `sidecar/${folder}/metrics.ts declares nothing`);
    assert.deepEqual(sorted([...names].filter((n) => !listed.has(n))), [], `declared in sidecar/${folder}/metrics.ts, missing from the README's Metrics section`);
    assert.deepEqual(sorted([...listed.keys()].filter((n) => !names.has(n))), [], `listed in sidecar/${folder}/README.md, not declared by its metrics.ts`);
    for (const d of declared) {
      const row = listed.get(d.name)!;
      assert.ok(row.includes(`| ${d.type} |`), `${d.name}: the README row does not say ${d.type}`);
      for (const l of d.labelNames) assert.ok(row.includes(`\`${l}\``), `${d.name}: the README row does not list label ${l}`);
    }
  });
}

test('meta metrics: every tenant_dns_ metric a sidecar README names exists', async () => {
  const { registry } = await populated();
  const ours = registry.getMetricsAsArray().map((m) => m.name);
  for (const folder of readdirSync(SIDECAR)) {
    const path = new URL(`${folder}/README.md`, SIDECAR);
    if (!existsSync(path)) continue;
    // Whole names only: `tenant_dns_cache_*` names a family of names, not a metric.
    for (const m of readFileSync(path, 'utf8').matchAll(/\b(tenant_dns_[a-z0-9_]*[a-z0-9])\b/g)) {
      const name = m[1]!.replace(/_(bucket|sum|count)$/, '');
      assert.ok(ours.includes(name) || ours.includes(m[1]!), `sidecar/${folder}/README.md names ${m[1]}, which does not exist`);
    }
  }
});

/** The metric names a PromQL expression refers to (identifiers of our and the process families). */
export function metricsIn(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...new Set([...withoutStrings.matchAll(/\b(tenant_dns_[a-z0-9_]+|process_[a-z0-9_]+|nodejs_[a-z0-9_]+)\b/g)].map((m) => m[1]!))];
}

/** The gateway's registry (gateway/metrics.ts), one series of each labelled metric. */
function gatewayRegistry(): Registry {
  const registry = new Registry();
  const m = new GatewayMetrics(registry, { version: '1.0.0', processMetrics: false });
  m.request('tenants.example', 0, 'team-a');
  m.rejection('team-a', 'outside-domains');
  m.setRecords(new Map([['team-a', 2]]));
  return registry;
}

test('meta metrics: the gateway\'s metrics are named by the conventions, and gateway/README.md lists exactly them', async () => {
  const registry = gatewayRegistry();
  const ours = registry.getMetricsAsArray().map((m) => m.name).filter((n) => n.startsWith('tenant_dns_'));
  assert.deepEqual(ours.sort(), ['tenant_dns_gateway_build_info', 'tenant_dns_gateway_records', 'tenant_dns_gateway_rejected_total', 'tenant_dns_gateway_requests_total']);
  for (const m of registry.getMetricsAsArray() as unknown as { name: string; type: string }[]) if (m.type === 'counter') assert.match(m.name, /_total$/);
  const readme = readFileSync(new URL('../../gateway/README.md', import.meta.url), 'utf8');
  const listed = [...new Set([...readme.matchAll(/`(tenant_dns_[a-z0-9_]+)`/g)].map((x) => x[1]!))].sort();
  assert.deepEqual(listed, ours.sort());
});

test('meta metrics: every metric a dashboard panel or alert queries exists in the registry', async () => {
  const { registry } = await populated();
  const names = new Set([...registry.getMetricsAsArray(), ...gatewayRegistry().getMetricsAsArray()].map((m) => m.name));
  const histograms = new Set(registry.getMetricsAsArray().filter((m) => (m as unknown as { type: string }).type === 'histogram').map((m) => m.name));
  const exists = (name: string) => names.has(name) || [...histograms].some((h) => name === `${h}_bucket` || name === `${h}_sum` || name === `${h}_count`);
  // The control plane row reads the injector's registry (next test).
  const sidecarPanels = panelQueries().filter((q) => q.row !== CONTROL_PLANE_ROW);
  const queries = [...sidecarPanels.map((q) => ({ where: `panel "${q.panel}"`, expr: q.expr })), ...ALERTS.map((a) => ({ where: `alert ${a.alert}`, expr: a.expr }))];
  assert.ok(queries.length > 30);
  for (const { where, expr } of queries) {
    const used = metricsIn(expr);
    assert.ok(used.length > 0, `${where} queries no known metric: ${expr}`);
    for (const name of used) assert.ok(exists(name), `${where} queries ${name}, which the registry does not have`);
  }
});

test('meta metrics: every metric an injector or controller alert, or a control plane panel, queries exists in the injector\'s registry', () => {
  const registry = new Registry();
  createInjectorMetrics(registry);
  createControllerMetrics(registry);
  const metrics = registry.getMetricsAsArray() as unknown as { name: string; type: string }[];
  const exists = (name: string) => metrics.some((m) => m.name === name || (m.type === 'histogram' && [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`].includes(name)));
  const queries = [
    ...[...INJECTOR_ALERTS, ...CONTROLLER_ALERTS].map((a) => ({ where: `alert ${a.alert}`, expr: a.expr })),
    ...panelQueries().filter((q) => q.row === CONTROL_PLANE_ROW).map((q) => ({ where: `panel "${q.panel}"`, expr: q.expr })),
  ];
  for (const { where, expr } of queries) {
    const used = metricsIn(expr);
    assert.ok(used.length > 0, `${where} queries no known metric`);
    for (const name of used) assert.ok(exists(name), `${where} queries ${name}, which the injector's registry does not have`);
  }
});
