import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SIDECAR_FLAGS } from '../../sidecar/config/schema.ts';
import { parseInjectorConfig } from '../../injector/config.ts';
import { Env, VOLUME_NAMES } from '../../injector/names.ts';
import { sidecarArgs, sidecarContainer, sidecarFlag, sidecarVolumes } from '../../injector/sidecar-spec.ts';

const full = {
  clusterDns: '10.96.0.10:53',
  upstreams: ['https://doh.example.net/dns-query', 'tls://dot.example.net'],
  platformPolicyConfigMap: 'platform-policy',
  ...(sidecarFlag('bootstrap', false) ? { bootstrap: ['doh.example.net=192.0.2.1'] } : {}),
};

test('sidecar-spec: every flag the injector writes is one the sidecar accepts', () => {
  const known = new Set(SIDECAR_FLAGS.map((f) => f.flag));
  const args = sidecarArgs(parseInjectorConfig(full), { searches: ['team-a.svc.cluster.local'], ndots: 5 });
  assert.ok(args.length >= 11);
  const switches = new Set(SIDECAR_FLAGS.filter((f) => f.boolean).map((f) => f.flag));
  for (const a of args) {
    // A value flag as --flag=value; a switch (boolean field) alone.
    if (switches.has(a)) continue;
    assert.match(a, /^--[a-z-]+=/);
    assert.ok(known.has(a.slice(0, a.indexOf('='))), `${a} is not in SIDECAR_FLAGS`);
  }
});

test('sidecar-spec: args carry the platform config and the downward-API env', () => {
  const args = sidecarArgs(parseInjectorConfig(full));
  for (const want of [
    '--listen=127.0.0.1:53',
    '--tenant=$(TENANT_DNS_TENANT)',
    '--pod=$(POD_NAME)',
    '--namespace=$(POD_NAMESPACE)',
    '--cluster-dns=10.96.0.10:53',
    '--upstream=https://doh.example.net/dns-query',
    '--upstream=tls://dot.example.net',
    '--policy=/etc/tenant-dns/policy/policy.yaml',
    '--policy-optional',
    '--platform-policy=/etc/tenant-dns/platform/policy.yaml',
    '--pod-labels=/etc/tenant-dns/podinfo/labels',
  ]) assert.ok(args.includes(want), want);
  const plain = sidecarArgs(parseInjectorConfig({}));
  assert.ok(!plain.some((a) => a.startsWith('--cluster-dns') || a.startsWith('--bootstrap')));
  // The platform layer is always there: the controller renders it for every injected namespace.
  assert.ok(plain.includes('--platform-policy=/etc/tenant-dns/platform/policy.yaml'));
});

test('sidecar-spec: env names used in $(…) args are defined on the container', () => {
  const c = sidecarContainer(parseInjectorConfig(full), { tenant: 'acme' }) as { args: string[]; env: { name: string; value?: string }[] };
  const refs = c.args.flatMap((a) => [...a.matchAll(/\$\(([A-Z_]+)\)/g)].map((m) => m[1]));
  for (const r of refs) assert.ok(c.env.some((e) => e.name === r), r);
  assert.deepEqual(c.env.find((e) => e.name === Env.tenant), { name: 'TENANT_DNS_TENANT', value: 'acme' });
});

test('sidecar-spec: native sidecar, probes on the metrics port, restricted security context', () => {
  const c = sidecarContainer(parseInjectorConfig({}), { tenant: 't' }) as Record<string, any>;
  assert.equal(c.restartPolicy, 'Always');
  assert.equal(c.lifecycle, undefined);
  assert.deepEqual(c.startupProbe.httpGet, { path: '/readyz', port: 9153, scheme: 'HTTP' });
  assert.deepEqual(c.readinessProbe.httpGet.path, '/healthz', 'an upstream outage must not take the pod out of its Services');
  assert.deepEqual(c.livenessProbe.httpGet.path, '/healthz');
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.runAsNonRoot, true);
  assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
  assert.ok(c.ports[0].name.length <= 15);
  const legacy = sidecarContainer(parseInjectorConfig({ nativeSidecar: false }), { tenant: 't' }) as Record<string, any>;
  assert.equal(legacy.restartPolicy, undefined);
  assert.equal(legacy.lifecycle.postStart.exec.command[0], 'node');
});

test('sidecar-spec: every volume mount has a volume; the tenant policy is optional, the platform policy is not', () => {
  const config = parseInjectorConfig(full);
  const c = sidecarContainer(config, { tenant: 't' }) as { volumeMounts: { name: string; readOnly: boolean }[] };
  const vols = sidecarVolumes(config) as { name: string; configMap?: { name: string; optional: boolean } }[];
  for (const m of c.volumeMounts) {
    assert.ok(vols.some((v) => v.name === m.name), m.name);
    assert.equal(m.readOnly, true);
  }
  assert.deepEqual(vols.find((v) => v.name === VOLUME_NAMES.policy)?.configMap, { name: 'tenant-dns-policy', optional: true });
  assert.deepEqual(vols.find((v) => v.name === VOLUME_NAMES.platform)?.configMap, { name: 'platform-policy', optional: false });
  // Without the setting, the controller's default name, still mounted and not optional.
  const defaults = sidecarVolumes(parseInjectorConfig({})) as { name: string; configMap?: { name: string; optional: boolean } }[];
  assert.deepEqual(defaults.find((v) => v.name === VOLUME_NAMES.platform)?.configMap, { name: 'tenant-dns-platform', optional: false });
});

test('sidecar-spec: without upstreams the sidecar forwards to kube-dns, never to its own resolv.conf', () => {
  const args = sidecarArgs(parseInjectorConfig({ clusterDns: '10.96.0.10:53' }));
  assert.deepEqual(args.filter((a) => a.startsWith('--upstream=')), ['--upstream=udp://10.96.0.10:53']);
  const configured = sidecarArgs(parseInjectorConfig({ clusterDns: '10.96.0.10:53', upstreams: ['tls://192.0.2.1'] }));
  assert.deepEqual(configured.filter((a) => a.startsWith('--upstream=')), ['--upstream=tls://192.0.2.1']);
});

test('sidecar-spec: the pod\'s search list and ndots become --search (in order) and --ndots, for autopath', () => {
  const searches = ['team-a.svc.cluster.local', 'svc.cluster.local', 'cluster.local', 'corp.example'];
  const args = sidecarArgs(parseInjectorConfig({}), { searches, ndots: 7 });
  assert.deepEqual(args.filter((a) => a.startsWith('--search=') || a.startsWith('--ndots=')), [...searches.map((d) => `--search=${d}`), '--ndots=7']);
  assert.ok(!sidecarArgs(parseInjectorConfig({}), { searches }).some((a) => a.startsWith('--ndots')), 'an ndots that is no number is left to resolv.conf');
  assert.ok(!sidecarArgs(parseInjectorConfig({})).some((a) => a.startsWith('--search') || a.startsWith('--ndots')));
});

test('sidecar-spec: autopath off and cluster-spec-names-only on are written only when the config asks', () => {
  const defaults = sidecarArgs(parseInjectorConfig({}));
  assert.ok(!defaults.some((a) => a.startsWith('--autopath') || a.startsWith('--cluster-spec-names-only')));
  const set = sidecarArgs(parseInjectorConfig({ autopath: false, clusterSpecNamesOnly: true }));
  assert.ok(set.includes('--autopath=false'));
  assert.ok(set.includes('--cluster-spec-names-only'));
});
