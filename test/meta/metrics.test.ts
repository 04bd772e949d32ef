/**
 * Conventions as tests (DESIGN §6, §7): metric names and labels, the metrics
 * README listing every metric, and the dashboard and alerts querying only
 * metrics that exist.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { ALERTS, panelQueries } from '../../dashboards/build.ts';
import { SidecarMetrics } from '../../sidecar/metrics/registry.ts';

const README = new URL('../../sidecar/metrics/README.md', import.meta.url);

/** A registry with every metric holding at least one series. */
async function populated(): Promise<{ registry: Registry; text: string }> {
  const registry = new Registry();
  const m = new SidecarMetrics(registry, { tenant: 'team-a', version: '1.0.0', processMetrics: true });
  m.bindSources({
    cacheStats: () => ({ entries: 1, bytes: 2, hits: 3, misses: 4, evictions: 5, expired: 6, staleServed: 7 }),
    groups: () => new Map([['default', { members: () => [{ address: 'udp://192.0.2.1:53', healthy: true }] }]]),
    lastReloadSuccess: () => Date.now(),
  });
  m.request('udp', 1);
  m.response('upstream', 0, 0.01);
  m.decision('deny', 'no-ads');
  m.upstreamAttempt('udp://192.0.2.1:53', 0, null, 0.01);
  m.upstreamAttempt('udp://192.0.2.1:53', null, 'UPSTREAM_TIMEOUT', 1.5);
  m.upstreamConnection('tcp://192.0.2.1:53', 1);
  m.policyReload('success');
  m.logDropped();
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

test('meta metrics: every metric is listed in sidecar/metrics/README.md with its type', async () => {
  const readme = readFileSync(README, 'utf8');
  const { ours } = await families();
  for (const f of ours) {
    const row = readme.split('\n').find((l) => l.startsWith('|') && l.includes(`\`${f.name}\``));
    assert.ok(row, `${f.name} is not in the README's metric table`);
    assert.ok(row.includes(f.type), `${f.name}: the README row does not say ${f.type}`);
    for (const l of f.labels) if (l !== 'tenant' && l !== 'le') assert.ok(row.includes(`\`${l}\``), `${f.name}: the README row does not list label ${l}`);
  }
  for (const m of readme.matchAll(/`(tenant_dns_[a-z0-9_]+)`/g)) {
    const name = m[1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(ours.some((f) => f.name === name || f.name === m[1]), `the README names ${m[1]}, which does not exist`);
  }
});

/** The metric names a PromQL expression refers to (identifiers of our and the process families). */
export function metricsIn(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return [...new Set([...withoutStrings.matchAll(/\b(tenant_dns_[a-z0-9_]+|process_[a-z0-9_]+|nodejs_[a-z0-9_]+)\b/g)].map((m) => m[1]!))];
}

test('meta metrics: every metric a dashboard panel or alert queries exists in the registry', async () => {
  const { registry } = await populated();
  const names = new Set(registry.getMetricsAsArray().map((m) => m.name));
  const histograms = new Set(registry.getMetricsAsArray().filter((m) => (m as unknown as { type: string }).type === 'histogram').map((m) => m.name));
  const exists = (name: string) => names.has(name) || [...histograms].some((h) => name === `${h}_bucket` || name === `${h}_sum` || name === `${h}_count`);
  const queries = [...panelQueries().map((q) => ({ where: `panel "${q.panel}"`, expr: q.expr })), ...ALERTS.map((a) => ({ where: `alert ${a.alert}`, expr: a.expr }))];
  assert.ok(queries.length > 30);
  for (const { where, expr } of queries) {
    const used = metricsIn(expr);
    assert.ok(used.length > 0, `${where} queries no known metric: ${expr}`);
    for (const name of used) assert.ok(exists(name), `${where} queries ${name}, which the registry does not have`);
  }
});
