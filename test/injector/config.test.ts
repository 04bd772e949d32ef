import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseInjectorConfig, parseInjectorConfigYaml } from '../../injector/config.ts';
import { sidecarFlag } from '../../injector/sidecar-spec.ts';

test('config: empty means every default, frozen', () => {
  const c = parseInjectorConfig({});
  assert.equal(c.listen, '127.0.0.1:53');
  assert.equal(c.clusterDomain, 'cluster.local');
  assert.equal(c.tenantPolicyConfigMap, 'tenant-dns-policy');
  assert.equal(c.failureMode, 'deny');
  assert.equal(c.nativeSidecar, true);
  assert.equal(c.metricsPort, 9153);
  assert.equal(c.ndots, 5);
  assert.equal(c.tenantLabel, 'tenant-dns.io/tenant');
  assert.deepEqual(c.resources, { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } });
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.resources.requests));
});

test('config: errors name the field path and the YAML line', () => {
  assert.throws(
    () => parseInjectorConfigYaml('image: x\nfailureMode: maybe\n', 'cfg.yaml'),
    (err: Error & { code?: string }) => err.code === 'CONFIG_INVALID' && /cfg\.yaml: \/failureMode \(line 2\)/.test(err.message),
  );
  assert.throws(() => parseInjectorConfigYaml('resources:\n  limits:\n    memory: 5\n'), /\/resources\/limits\/memory \(line 3\)/);
  assert.throws(() => parseInjectorConfigYaml('upstreams: [ftp://x]\n'), /\/upstreams\/0/);
  assert.throws(() => parseInjectorConfigYaml('unknownField: 1\n'), /CONFIG_INVALID|must not have additional|unknownField|additional/i);
  assert.throws(() => parseInjectorConfigYaml('ndots: 16\n'), /\/ndots/);
  assert.throws(() => parseInjectorConfigYaml('a: [\n'), { code: 'CONFIG_INVALID' });
});

test('config: bootstrap is accepted only when the sidecar has --bootstrap', () => {
  const load = () => parseInjectorConfig({ bootstrap: ['doh.example.net=192.0.2.1'] });
  if (sidecarFlag('bootstrap', false)) assert.deepEqual(load().bootstrap, ['doh.example.net=192.0.2.1']);
  else assert.throws(load, /the sidecar has no config field bootstrap/);
});

test('config: a metrics port other than the sidecar default needs the --metrics flag', () => {
  const load = () => parseInjectorConfig({ metricsPort: 9154 });
  if (sidecarFlag('metrics', false)) assert.equal(load().metricsPort, 9154);
  else assert.throws(load, /the sidecar has no config field metrics/);
});
