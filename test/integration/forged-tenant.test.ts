/**
 * A pod cannot forge another tenant's telemetry. A real Prometheus scrapes,
 * with exactly the relabelings and honorLabels of
 * deploy/monitoring/podmonitor.yaml, a pod of team-a as Kubernetes service
 * discovery describes it (a file_sd target carrying the `__meta_kubernetes_*`
 * labels) whose metrics port lies: it serves team-b's tenant, namespace and
 * pod labels with an upstream group down and a failed reload. The series are
 * stored under the pod's own identity with the lie in `exported_*`; the alert
 * expressions and the dashboard panels of dashboards/ answer for team-a only,
 * and Prometheus's own rule evaluation raises no alert of team-b. A pod
 * without the tenant label is not scraped. The counterfactuals, the same
 * scrape with honor_labels true and without the relabelings, let the lie
 * through and fire team-b's critical alert: the relabeling is what stops it.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { ALERTS, panelQueries } from '../../dashboards/build.ts';
import { Keys } from '../../injector/names.ts';
import { kubernetesPodMetaLabels, podMonitorScrapeOptions } from '../helpers/podmonitor.ts';
import { grafanaToPromql, startPrometheus, type PrometheusOptions, type PrometheusServer } from '../helpers/prometheus.ts';

const RULES = fileURLToPath(new URL('../../dashboards/alerts.rules.yaml', import.meta.url));

/** The pod that lies: team-a's, in namespace shop. */
const LIAR = { tenant: 'team-a', namespace: 'shop', pod: 'web-0' };
/** Who it claims to be: team-b's pod api-0 in namespace payments. */
const VICTIM = { tenant: 'team-b', namespace: 'payments', pod: 'api-0' };

const claimed = `tenant="${VICTIM.tenant}",namespace="${VICTIM.namespace}",pod="${VICTIM.pod}"`;
/** What the lying pod serves on its port named tdns-metrics. */
const FORGED = `# TYPE tenant_dns_upstream_healthy gauge
tenant_dns_upstream_healthy{${claimed},group="default",upstream="udp://192.0.2.53:53"} 0
# TYPE tenant_dns_policy_last_reload_successful gauge
tenant_dns_policy_last_reload_successful{${claimed}} 0
# TYPE tenant_dns_build_info gauge
tenant_dns_build_info{${claimed},version="0.0.0",node="v24.0.0"} 1
`;

/** Serves `body` as a Prometheus text exposition on 127.0.0.1; closed after the test. */
async function serveMetrics(t: TestContext, body: string): Promise<string> {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/metrics' ? 200 : 404, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(req.url === '/metrics' ? body : '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    server.closeAllConnections(); // Prometheus keeps its scrape connections open.
    return new Promise((resolve) => server.close(resolve));
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * Starts Prometheus on two pods serving the lie on a port named tdns-metrics: an app container of team-a's
 * injected pod, and a pod without the tenant label (say, in a namespace without injection).
 */
async function scrapeLiars(t: TestContext, scrape: Pick<PrometheusOptions, 'relabelConfigs' | 'honorLabels'>): Promise<PrometheusServer> {
  const liar = await serveMetrics(t, FORGED);
  const unlabelled = await serveMetrics(t, FORGED);
  const prom = await startPrometheus(
    [
      { address: liar, labels: kubernetesPodMetaLabels({ namespace: LIAR.namespace, name: LIAR.pod, container: 'web', labels: { app: 'web', [Keys.podTenant]: LIAR.tenant } }) },
      { address: unlabelled, labels: kubernetesPodMetaLabels({ namespace: 'scratch', name: 'stray-0', container: 'stray', labels: { app: 'stray' } }) },
    ],
    { ruleFiles: [RULES], ...scrape },
  );
  t.after(() => prom.stop());
  await prom.waitForTargetsUp();
  await prom.waitForFreshScrape();
  return prom;
}

/** The tenants each alert expression of dashboards/ returns series for, by alert. */
async function alertTenants(prom: PrometheusServer): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const a of ALERTS) out[a.alert] = (await prom.query(a.expr)).series.map((s) => s.metric.tenant ?? '').sort();
  return out;
}

/** The value of a one-series panel query for one tenant selected in the dashboard. */
async function panelFor(prom: PrometheusServer, panel: string, tenant: string): Promise<number> {
  const q = panelQueries().find((p) => p.panel === panel);
  assert.ok(q, `panel "${panel}"`);
  const r = await prom.query(grafanaToPromql(q.expr, { tenant, namespace: '.*', pod: '.*' }));
  assert.equal(r.series.length, 1, JSON.stringify(r.series));
  return Number(r.series[0]!.value![1]);
}

/** Waits for Prometheus's own rule evaluation to raise (pending or firing) TenantDnsUpstreamGroupDown; every alert's labels then. */
async function raisedAlerts(prom: PrometheusServer): Promise<Record<string, string>[]> {
  const until = Date.now() + 20_000;
  for (;;) {
    const res = (await (await fetch(`${prom.url}/api/v1/alerts`)).json()) as { data: { alerts: { labels: Record<string, string> }[] } };
    const alerts = res.data.alerts.map((a) => a.labels);
    if (alerts.some((a) => a.alertname === 'TenantDnsUpstreamGroupDown')) return alerts;
    if (Date.now() > until) assert.fail(`no TenantDnsUpstreamGroupDown within 20 s: ${JSON.stringify(alerts)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const RAISED = ['TenantDnsPolicyReloadFailing', 'TenantDnsUpstreamGroupDown'];

test('forged tenant: with the PodMonitor relabelings the lie is stored as exported_tenant and raises only team-a alerts', { timeout: 60_000 }, async (t) => {
  const prom = await scrapeLiars(t, podMonitorScrapeOptions());

  // Only the pod with the injector's tenant label is a target.
  const targets = await prom.targets();
  assert.deepEqual(targets.active.map((l) => [l.tenant, l.namespace, l.pod]), [[LIAR.tenant, LIAR.namespace, LIAR.pod]]);
  assert.deepEqual(targets.dropped.map((l) => l.__meta_kubernetes_pod_name), ['stray-0']);

  // The series carries the pod's identity; what it claimed is kept beside it.
  const healthy = await prom.query('tenant_dns_upstream_healthy');
  assert.equal(healthy.series.length, 1, JSON.stringify(healthy.series));
  const m = healthy.series[0]!.metric;
  assert.deepEqual([m.tenant, m.namespace, m.pod], [LIAR.tenant, LIAR.namespace, LIAR.pod]);
  assert.deepEqual([m.exported_tenant, m.exported_namespace, m.exported_pod], [VICTIM.tenant, VICTIM.namespace, VICTIM.pod]);
  assert.equal((await prom.query(`tenant_dns_upstream_healthy{tenant="${VICTIM.tenant}"}`)).series.length, 0);
  // The query dashboards/README.md gives for spotting such pods.
  const readme = readFileSync(new URL('../../dashboards/README.md', import.meta.url), 'utf8');
  const spotting = /`(count by \(namespace, pod, tenant, exported_tenant\)[^`]*)`/.exec(readme)?.[1];
  assert.ok(spotting, 'dashboards/README.md gives the query');
  const claims = await prom.query(spotting);
  assert.deepEqual(claims.series.map((s) => [s.metric.namespace, s.metric.pod, s.metric.tenant, s.metric.exported_tenant, s.value![1]]), [
    [LIAR.namespace, LIAR.pod, LIAR.tenant, VICTIM.tenant, '3'],
  ]);

  // The alert expressions answer for team-a, never for team-b.
  const tenants = await alertTenants(prom);
  for (const a of RAISED) assert.deepEqual(tenants[a], [LIAR.tenant], a);
  for (const [alert, ts] of Object.entries(tenants)) assert.ok(!ts.includes(VICTIM.tenant), `${alert} for ${VICTIM.tenant}`);
  // As Prometheus evaluates the rules itself.
  const raised = await raisedAlerts(prom);
  assert.deepEqual(raised.filter((a) => a.alertname === 'TenantDnsUpstreamGroupDown').map((a) => [a.tenant, a.namespace, a.pod, a.severity]), [
    [LIAR.tenant, LIAR.namespace, LIAR.pod, 'critical'],
  ]);
  assert.deepEqual(raised.filter((a) => a.tenant === VICTIM.tenant), []);

  // team-b's dashboard shows nothing wrong; team-a's shows its own pod.
  assert.equal(await panelFor(prom, 'Upstreams down', VICTIM.tenant), 0);
  assert.equal(await panelFor(prom, 'Sidecars on a stale policy', VICTIM.tenant), 0);
  assert.equal(await panelFor(prom, 'Upstreams down', LIAR.tenant), 1);
  assert.equal(await panelFor(prom, 'Sidecars on a stale policy', LIAR.tenant), 1);
});

const COUNTERFACTUALS: { name: string; scrape: () => Pick<PrometheusOptions, 'relabelConfigs' | 'honorLabels'> }[] = [
  { name: 'honor_labels true', scrape: () => ({ ...podMonitorScrapeOptions(), honorLabels: true }) },
  { name: 'without the relabelings', scrape: () => ({ ...podMonitorScrapeOptions(), relabelConfigs: [] }) },
];

for (const c of COUNTERFACTUALS) {
  test(`forged tenant (counterfactual, ${c.name}): the lie is stored as team-b and fires team-b's alerts`, { timeout: 60_000 }, async (t) => {
    const prom = await scrapeLiars(t, c.scrape());
    const healthy = await prom.query(`tenant_dns_upstream_healthy{tenant="${VICTIM.tenant}"}`);
    assert.ok(healthy.series.length > 0, 'the forged series is stored as team-b');
    for (const s of healthy.series) {
      assert.deepEqual([s.metric.namespace, s.metric.pod], [VICTIM.namespace, VICTIM.pod]);
      assert.equal(s.metric.exported_tenant, undefined, 'no trace of the lie');
    }
    const tenants = await alertTenants(prom);
    for (const a of RAISED) assert.deepEqual(tenants[a], [VICTIM.tenant], a);
    const raised = await raisedAlerts(prom);
    assert.deepEqual(raised.filter((a) => a.alertname === 'TenantDnsUpstreamGroupDown').map((a) => [a.tenant, a.namespace, a.pod, a.severity]), [
      [VICTIM.tenant, VICTIM.namespace, VICTIM.pod, 'critical'],
    ]);
    assert.ok((await panelFor(prom, 'Upstreams down', VICTIM.tenant)) > 0, "team-b's dashboard shows an upstream down");
  });
}
