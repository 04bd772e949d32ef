/**
 * The dashboard and alert files are generated (dashboards/build.ts) and
 * valid: the committed files equal the generator's output, the dashboard is
 * importable with tenant / namespace / pod variables, promtool accepts the
 * rules, and the PodMonitor sets the identity labels the queries key on from
 * the pod (test/integration/forged-tenant.test.ts runs it in Prometheus).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { ALERTS, CONTROL_PLANE_ROW, CONTROLLER_ALERTS, generatedFiles, INJECTOR_ALERTS, panelQueries, ROWS } from '../../dashboards/build.ts';
import { Keys, METRICS_PORT_NAME } from '../../injector/names.ts';
import { metaLabelName, readPodMonitor, relabelConfigsFromOperator } from '../helpers/podmonitor.ts';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

test('meta dashboards: the committed files equal what dashboards/build.ts makes (run node dashboards/build.ts)', () => {
  for (const [path, text] of Object.entries(generatedFiles())) assert.equal(read(path), text, `${path} is stale`);
});

test('meta dashboards: the dashboard is importable with a Prometheus input and tenant, namespace, pod variables', () => {
  const d = JSON.parse(read('dashboards/tenant-dns.json')) as {
    __inputs: { name: string; type: string; pluginId: string }[];
    templating: { list: { name: string; query: { query: string } }[] };
    panels: { id: number; type: string; title: string; datasource?: { uid: string }; targets?: { expr: string; datasource: { uid: string } }[] }[];
  };
  assert.deepEqual(d.__inputs.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']]);
  assert.deepEqual(d.templating.list.map((v) => v.name), ['tenant', 'namespace', 'pod']);
  for (const v of d.templating.list) assert.match(v.query.query, /^label_values\(/);
  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const rows = d.panels.filter((p) => p.type === 'row').map((p) => p.title);
  assert.deepEqual(rows, ['Overview', 'Traffic', 'Policy', 'Latency', 'Cache', 'Search walks (autopath)', 'Upstreams', 'Reloads and process', CONTROL_PLANE_ROW, 'Gateway']);
  // The control plane row reads the injector's series (its own namespace and pods, no tenant): the variables select sidecars.
  const controlPlane = new Set(panelQueries().filter((q) => q.row === CONTROL_PLANE_ROW).map((q) => q.panel));
  const gatewayPanels = new Set(ROWS.find((r) => r.title === 'Gateway')!.panels.map((p) => p.title));
  for (const p of d.panels.filter((p) => p.type !== 'row')) {
    assert.equal(p.datasource?.uid, '${DS_PROMETHEUS}', p.title);
    for (const t of p.targets ?? []) {
      assert.equal(t.datasource.uid, '${DS_PROMETHEUS}', p.title);
      if (controlPlane.has(p.title)) assert.match(t.expr, /tenant_dns_controller_/, `${p.title} reads the controller's series`);
      // The gateway serves every tenant from the platform's namespace: its row honours the tenant only (GATEWAY_SEL).
      else if (gatewayPanels.has(p.title)) assert.match(t.expr, /tenant_dns_gateway_[a-z_]+\{tenant=~"\$tenant"\}/, `${p.title} honours the tenant`);
      else assert.match(t.expr, /tenant=~"\$tenant", namespace=~"\$namespace", pod=~"\$pod"/, `${p.title} honours the variables`);
    }
  }
  assert.equal(panelQueries().length, d.panels.flatMap((p) => p.targets ?? []).length);
});

test('meta dashboards: the PrometheusRule carries the same rules as the plain rules file', () => {
  const plain = parse(read('dashboards/alerts.rules.yaml')) as { groups: unknown };
  const object = parse(read('dashboards/prometheusrule.yaml')) as { apiVersion: string; kind: string; spec: { groups: unknown } };
  assert.equal(object.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(object.kind, 'PrometheusRule');
  assert.deepEqual(object.spec.groups, plain.groups);
  assert.deepEqual(ALERTS.map((a) => a.alert), ['TenantDnsServfailRatioHigh', 'TenantDnsUpstreamGroupDown', 'TenantDnsPolicyReloadFailing', 'TenantDnsDenialSpike']);
  assert.deepEqual(INJECTOR_ALERTS.map((a) => a.alert), ['TenantDnsInjectorAdmissionErrors', 'TenantDnsInjectorAdmissionSlow', 'TenantDnsInjectorCertificateExpiring']);
  assert.deepEqual(CONTROLLER_ALERTS.map((a) => a.alert), ['TenantDnsControllerNoLeader', 'TenantDnsControllerNotRendering', 'TenantDnsControllerLayersHeld', 'TenantDnsControllerClusterPolicyRejected']);
  assert.deepEqual((plain.groups as { name: string }[]).map((g) => g.name), ['tenant-dns', 'tenant-dns-injector', 'tenant-dns-controller']);
});

test('meta dashboards: promtool check rules accepts dashboards/alerts.rules.yaml', () => {
  const out = execFileSync('promtool', ['check', 'rules', new URL('dashboards/alerts.rules.yaml', root).pathname], { encoding: 'utf8', timeout: 30_000 });
  assert.match(out, new RegExp(`SUCCESS: ${ALERTS.length + INJECTOR_ALERTS.length + CONTROLLER_ALERTS.length} rules found`));
});

test('meta dashboards: the README explains every panel and every alert', () => {
  const readme = read('dashboards/README.md');
  for (const title of new Set(panelQueries().map((q) => q.panel))) assert.ok(readme.includes(title), `dashboards/README.md does not explain panel "${title}"`);
  for (const a of [...ALERTS, ...INJECTOR_ALERTS, ...CONTROLLER_ALERTS]) assert.ok(readme.includes(a.alert), `dashboards/README.md does not explain ${a.alert}`);
});

test('meta dashboards: the PodMonitor scrapes the port the injector names, and deploy/monitoring renders', () => {
  const pm = readPodMonitor();
  assert.equal(pm.kind, 'PodMonitor');
  assert.deepEqual(pm.spec.podMetricsEndpoints.map((e) => [e.port, e.path]), [[METRICS_PORT_NAME, '/metrics']]);
  const rendered = execFileSync('kubectl', ['kustomize', new URL('deploy/monitoring', root).pathname], { encoding: 'utf8', timeout: 60_000 });
  assert.match(rendered, /kind: PodMonitor/);
  assert.match(rendered, /kind: PrometheusRule/);
});

test('meta dashboards: the injector PodMonitor scrapes the injector pods\' HTTPS port, verified against the CA in their Secret for the Service name', () => {
  const pm = readPodMonitor('injector-podmonitor.yaml');
  const deployment = parse(read('deploy/base/deployment.yaml')) as any;
  const service = parse(read('deploy/base/service.yaml')) as any;
  const namespace = (parse(read('deploy/base/kustomization.yaml')) as { namespace: string }).namespace;
  assert.equal((parse(read('deploy/monitoring/kustomization.yaml')) as { namespace: string }).namespace, namespace, 'the PodMonitor lives with the injector');
  assert.equal(pm.spec.namespaceSelector, undefined, 'its own namespace only');
  const pod = deployment.spec.template;
  for (const [k, v] of Object.entries(pm.spec.selector?.matchLabels ?? {})) assert.equal(pod.metadata.labels[k], v, `selector ${k}`);
  assert.ok(Object.keys(pm.spec.selector?.matchLabels ?? {}).length > 0);
  const [endpoint] = pm.spec.podMetricsEndpoints;
  const container = pod.spec.containers.find((c: any) => c.args?.[0] === 'injector');
  assert.ok(container.ports.some((p: any) => p.name === endpoint!.port), `the injector container has port ${endpoint!.port}`);
  assert.equal(endpoint!.scheme, 'https');
  assert.equal(endpoint!.path, '/metrics');
  assert.equal(endpoint!.honorLabels, false);
  const tlsVolume = pod.spec.volumes.find((v: any) => v.secret);
  assert.deepEqual(endpoint!.tlsConfig?.ca?.secret, { name: tlsVolume.secret.secretName, key: 'ca.crt' });
  assert.equal(endpoint!.tlsConfig?.serverName, `${service.metadata.name}.${namespace}.svc`);
  const setFrom = Object.fromEntries(relabelConfigsFromOperator(endpoint!.relabelings ?? []).map((r) => [r.target_label, r.source_labels]));
  assert.deepEqual(setFrom, { namespace: ['__meta_kubernetes_namespace'], pod: ['__meta_kubernetes_pod_name'] });
});

test('meta dashboards: the PodMonitor takes tenant, namespace and pod from the pod, and only pods with the tenant label', () => {
  const [endpoint] = readPodMonitor().spec.podMetricsEndpoints;
  assert.equal(endpoint!.honorLabels, false, 'a scraped tenant label must not override the target');
  const relabel = relabelConfigsFromOperator(endpoint!.relabelings ?? []);
  const tenantMeta = `__meta_kubernetes_pod_label_${metaLabelName(Keys.podTenant)}`;
  assert.deepEqual(relabel[0], { action: 'keep', source_labels: [tenantMeta], regex: '.+' });
  const setFrom = Object.fromEntries(relabel.filter((r) => r.action === 'replace').map((r) => [r.target_label, r.source_labels]));
  assert.deepEqual(setFrom, { tenant: [tenantMeta], namespace: ['__meta_kubernetes_namespace'], pod: ['__meta_kubernetes_pod_name'] });
});

/** The label lists of every `by (…)` of an alert's expression; an alert that does not aggregate fails. */
function groupings(a: { alert: string; expr: string }): string[][] {
  const out = [...a.expr.matchAll(/\bby \(([^)]*)\)/g)].map((m) => m[1]!.split(',').map((l) => l.trim()));
  assert.ok(out.length > 0, `${a.alert} aggregates`);
  return out;
}

test('meta dashboards: alerts group by the target labels namespace and tenant; no query reads a label a pod reported about itself', () => {
  for (const a of ALERTS) for (const g of groupings(a)) assert.ok(g.includes('namespace') && g.includes('tenant'), `${a.alert}: by (${g.join(', ')})`);
  // The injector's series carry no tenant: its alerts group by its namespace (and webhook or pod).
  for (const a of [...INJECTOR_ALERTS, ...CONTROLLER_ALERTS]) for (const g of groupings(a)) assert.ok(g.includes('namespace') && !g.includes('tenant'), `${a.alert}: by (${g.join(', ')})`);
  const d = JSON.parse(read('dashboards/tenant-dns.json')) as { templating: { list: { query: { query: string } }[] } };
  const all = [...ALERTS.map((a) => a.expr), ...INJECTOR_ALERTS.map((a) => a.expr), ...CONTROLLER_ALERTS.map((a) => a.expr), ...panelQueries().map((q) => q.expr), ...d.templating.list.map((v) => v.query.query)];
  for (const expr of all) assert.doesNotMatch(expr, /exported_/, expr);
});
