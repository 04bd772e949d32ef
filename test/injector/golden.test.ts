/**
 * Golden files of /mutate: each `golden/NAME.input.yaml` (namespace, tenant,
 * config overrides, whether the namespace allows opting out, pod) gives
 * `NAME.patch.json` (decision, warnings, RFC 6902 patch) and
 * `NAME.patched.yaml` (the pod after the patch, applied with fast-json-patch,
 * a real JSON Patch implementation, and validated against the Kubernetes Pod
 * schema; the input unchanged when skipped or denied). Regenerate with
 * `UPDATE_GOLDEN=1 node --test test/injector/golden.test.ts`; a golden file
 * without an input fails.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import jsonpatch from 'fast-json-patch';
import { stringify } from 'yaml';
import { parseInjectorConfig } from '../../injector/config.ts';
import { mutatePod } from '../../injector/mutate.ts';
import type { PatchOperation } from '../../injector/patch.ts';
import { validatePod } from '../helpers/k8s-schema.ts';
import { checkGolden, GOLDEN_BASE_CONFIG, goldenCases, orphans, readInput } from './golden-files.ts';
import { apiServerDefaults } from './fixtures.ts';

const DIR = join(import.meta.dirname, 'golden');

interface GoldenInput {
  namespace: string;
  tenant: string;
  operation?: string;
  allowOptOut?: boolean;
  config?: Record<string, unknown>;
  pod: Record<string, unknown>;
}

const { cases } = goldenCases(DIR);

/** Runs one case: returns its patch and the pod fast-json-patch makes from it. */
function runCase(input: GoldenInput) {
  const config = parseInjectorConfig({ ...GOLDEN_BASE_CONFIG, ...input.config });
  const result = mutatePod(input.pod, { namespace: input.namespace, tenant: input.tenant, operation: input.operation ?? 'CREATE', allowOptOut: input.allowOptOut, config });
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
    'opt-out-allowed',
    'host-network-allowed',
    'already-injected',
    'foreign-sidecar',
    'volume-name-conflict',
    'own-nameservers',
    'tenant-label-mismatch',
    'sysctls-lower',
    'sysctls-higher',
    'job',
    'every-probe-kind',
  ]) {
    assert.ok(cases.includes(name), `missing golden case ${name}`);
  }
});

test('golden: no golden file without an input', () => {
  const unused = orphans(DIR, ['.patch.json', '.patched.yaml']);
  assert.deepEqual(unused, [], `unused golden files: ${unused.join(', ')}`);
});

for (const name of cases) {
  test(`golden: ${name}`, () => {
    const input = readInput<GoldenInput>(DIR, name);
    const { config, result, applied } = runCase(input);
    // The builder's own working copy and a real JSON Patch implementation agree.
    assert.deepEqual(applied, result.patched);
    validatePod(applied);
    checkGolden(
      DIR,
      `${name}.patch.json`,
      JSON.stringify({ decision: result.decision, warnings: result.warnings, patch: result.patch }, null, 2) + '\n',
    );
    checkGolden(DIR, `${name}.patched.yaml`, stringify(applied, { lineWidth: 0 }));
    if (result.decision.outcome === 'deny') assert.equal(result.patch.length, 0, 'a denied pod gets no patch');
    if (result.decision.outcome !== 'inject') return;
    // Injecting the output again changes nothing (reinvocationPolicy: IfNeeded is safe), also as the API
    // server stores it: its defaults filled in, the ServiceAccount token mounted into the sidecar.
    for (const pod of [applied, apiServerDefaults(applied)]) {
      const again = mutatePod(pod, { namespace: input.namespace, tenant: input.tenant, operation: 'CREATE', allowOptOut: input.allowOptOut, config });
      assert.deepEqual(again.decision, { outcome: 'skip', reason: 'already-injected', detail: 'the pod already carries the tenant-dns injection' });
      assert.deepEqual(again.patch, [] as PatchOperation[]);
    }
  });
}
