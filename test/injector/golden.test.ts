/**
 * Golden files: each `golden/NAME.input.yaml` (namespace, tenant, config
 * overrides, pod) gives `NAME.patch.json` (decision, warnings, RFC 6902 patch)
 * and `NAME.patched.yaml` (the pod after the patch, applied with
 * fast-json-patch, a real JSON Patch implementation, and validated against the
 * Kubernetes Pod schema). Regenerate with `UPDATE_GOLDEN=1 node --test
 * test/injector/golden.test.ts`; a golden file without an input fails.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import jsonpatch from 'fast-json-patch';
import { parse, stringify } from 'yaml';
import { parseInjectorConfig } from '../../injector/config.ts';
import { mutatePod } from '../../injector/mutate.ts';
import type { PatchOperation } from '../../injector/patch.ts';
import { validatePod } from '../helpers/k8s-schema.ts';

const DIR = join(import.meta.dirname, 'golden');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

/** The platform config every golden starts from; a case's `config` is merged over it. */
export const GOLDEN_BASE_CONFIG = {
  clusterDns: '10.96.0.10:53',
  upstreams: ['https://doh.example.net/dns-query'],
};

interface GoldenInput {
  namespace: string;
  tenant: string;
  operation?: string;
  config?: Record<string, unknown>;
  pod: Record<string, unknown>;
}

const files = readdirSync(DIR).sort();
const cases = files.filter((f) => f.endsWith('.input.yaml')).map((f) => f.slice(0, -'.input.yaml'.length));

function checkGolden(file: string, actual: string): void {
  const path = join(DIR, file);
  if (UPDATE || !existsSync(path)) {
    if (!UPDATE) assert.fail(`${file} is missing; run with UPDATE_GOLDEN=1 to create it`);
    writeFileSync(path, actual);
    return;
  }
  assert.equal(actual, readFileSync(path, 'utf8'), `${file} differs; run with UPDATE_GOLDEN=1 if the change is intended`);
}

/** Runs one case: returns its patch and the pod fast-json-patch makes from it. */
export function runCase(input: GoldenInput) {
  const config = parseInjectorConfig({ ...GOLDEN_BASE_CONFIG, ...input.config });
  const result = mutatePod(input.pod, { namespace: input.namespace, tenant: input.tenant, operation: input.operation ?? 'CREATE', config });
  const applied = jsonpatch.applyPatch(structuredClone(input.pod), structuredClone(result.patch) as jsonpatch.Operation[], true, false).newDocument;
  return { config, result, applied };
}

test('golden: at least the cases the issue lists exist', () => {
  for (const name of [
    'bare-pod',
    'deployment-pod',
    'user-init-containers',
    'existing-native-sidecar',
    'host-network',
    'existing-dns-config',
    'ndots-annotation-valid',
    'ndots-annotation-invalid',
    'opt-out-label',
    'already-injected',
    'sysctls-lower',
    'sysctls-higher',
    'job',
    'every-probe-kind',
  ]) {
    assert.ok(cases.includes(name), `missing golden case ${name}`);
  }
});

test('golden: no golden file without an input', () => {
  const expected = new Set(cases.flatMap((c) => [`${c}.input.yaml`, `${c}.patch.json`, `${c}.patched.yaml`]));
  const unused = files.filter((f) => !expected.has(f));
  assert.deepEqual(unused, [], `unused golden files: ${unused.join(', ')}`);
});

for (const name of cases) {
  test(`golden: ${name}`, () => {
    const input = parse(readFileSync(join(DIR, `${name}.input.yaml`), 'utf8')) as GoldenInput;
    const { config, result, applied } = runCase(input);
    // The builder's own working copy and a real JSON Patch implementation agree.
    assert.deepEqual(applied, result.patched);
    validatePod(applied);
    checkGolden(
      `${name}.patch.json`,
      JSON.stringify({ decision: result.decision, warnings: result.warnings, patch: result.patch }, null, 2) + '\n',
    );
    checkGolden(`${name}.patched.yaml`, stringify(applied, { lineWidth: 0 }));
    // Injecting the output again changes nothing (reinvocationPolicy: IfNeeded is safe).
    const again = mutatePod(applied, { namespace: input.namespace, tenant: input.tenant, operation: 'CREATE', config });
    assert.deepEqual(again.patch, [] as PatchOperation[]);
    if (result.decision.inject) assert.equal(again.decision.inject ? 'inject' : again.decision.reason, 'already-injected');
  });
}
