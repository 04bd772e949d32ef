import assert from 'node:assert/strict';
import { test } from 'node:test';
import { containerDifferences, quantityMillis, volumeDifferences } from '../../injector/compare.ts';
import { parseInjectorConfig } from '../../injector/config.ts';
import { SERVICE_ACCOUNT_TOKEN_PATH } from '../../injector/names.ts';
import { sidecarContainer, sidecarVolumes } from '../../injector/sidecar-spec.ts';
import { apiServerDefaults } from './fixtures.ts';

const config = parseInjectorConfig({ clusterDns: '10.96.0.10:53', resources: { requests: { cpu: '0.01', memory: '32Mi' }, limits: { cpu: '1', memory: '0.125Gi' } } });
const ours = () => sidecarContainer(config, { tenant: 'acme' }) as Record<string, any>;
const fields = (actual: unknown, expected: unknown = ours()) => containerDifferences(actual, expected).map((d) => d.field);

test('compare: quantities by value in milli units, rounded up as the API server stores them', () => {
  for (const [a, b] of [['0.5', '500m'], ['1', '1000m'], ['128Mi', '134217728'], ['0.125Gi', '128Mi'], ['1e3', '1k'], ['1E', '1000P'], ['+2', '2'], ['.5', '500m'], ['0.0001', '1m']] as const) {
    assert.equal(quantityMillis(a), quantityMillis(b), `${a} = ${b}`);
  }
  assert.notEqual(quantityMillis('500m'), quantityMillis('501m'));
  for (const q of ['abc', '-1', '1e999', '', 'Mi', '1.2.3']) assert.equal(quantityMillis(q), q, `${q} is left for the plain comparison`);
});

test('compare: the injected container as the API server stores it is the same container', () => {
  const stored = apiServerDefaults({ spec: { containers: [ours()], volumes: sidecarVolumes(config) } });
  const c = stored.spec.containers[0];
  // The stored form writes quantities canonically, and may carry the resize policy older API servers default.
  c.resources = { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '1', memory: '128Mi' } };
  c.resizePolicy = [{ resourceName: 'memory', restartPolicy: 'NotRequired' }, { resourceName: 'cpu', restartPolicy: 'NotRequired' }];
  assert.ok(c.volumeMounts.some((m: any) => m.mountPath === SERVICE_ACCOUNT_TOKEN_PATH), 'the token mount is there');
  assert.deepEqual(fields(c), []);
  // LimitRanger's default for a resource the injector leaves unset.
  c.resources.limits['ephemeral-storage'] = '1Gi';
  assert.deepEqual(fields(c), []);
  for (const [i, v] of sidecarVolumes(config).entries()) assert.deepEqual(volumeDifferences(stored.spec.volumes[i], v), []);
});

test('compare: anything else differs, and is named', () => {
  const cases: [string, (c: any) => void][] = [
    ['image', (c) => (c.image = 'registry.example/x:1')],
    ['command', (c) => (c.command = ['/bin/sh'])],
    ['args', (c) => c.args.push('--upstream=udp://8.8.8.8:53')],
    ['env', (c) => c.env.push({ name: 'EXTRA', value: '1' })],
    ['securityContext', (c) => (c.securityContext.runAsUser = 0)],
    ['resources', (c) => (c.resources.limits.memory = '64Mi')],
    ['resizePolicy', (c) => (c.resizePolicy = [{ resourceName: 'memory', restartPolicy: 'RestartContainer' }])],
    ['volumeMounts', (c) => c.volumeMounts.push({ name: 'kube-api-access-x', mountPath: SERVICE_ACCOUNT_TOKEN_PATH })],
    ['volumeMounts', (c) => c.volumeMounts.push({ name: 'data', mountPath: '/data', readOnly: true })],
    ['startupProbe', (c) => (c.startupProbe.successThreshold = 2)],
    ['stdin', (c) => (c.stdin = true)],
  ];
  for (const [field, change] of cases) {
    const c = ours();
    change(c);
    assert.deepEqual(fields(c), [field], field);
  }
  const d = containerDifferences({ ...ours(), image: 'registry.example/x:1' }, ours());
  assert.deepEqual(d, [{ field: 'image', actual: 'registry.example/x:1', expected: config.image }]);
  const v = sidecarVolumes(config)[0]!;
  assert.deepEqual(volumeDifferences({ name: v.name, emptyDir: {} }, v).map((x) => x.field), ['configMap']);
});

test('compare: an image without a pull policy gets the one the API server would give it', () => {
  const c = ours();
  delete c.imagePullPolicy;
  assert.deepEqual(fields(c), [], `${config.image} defaults to IfNotPresent`);
  assert.deepEqual(fields({ ...c, image: 'registry.example/x' }, { ...ours(), image: 'registry.example/x', imagePullPolicy: 'Always' }), [], 'no tag: Always');
});
