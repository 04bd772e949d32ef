/**
 * Golden files of /validate: each `golden-validate/NAME.input.yaml` gives
 * `NAME.verdict.json` (allowed, reason, and for a denial the detail the
 * message carries). An input names the operation, namespace, tenant, config
 * overrides, whether the namespace allows opting out, and the pod: given in
 * full (`pod`) or as a /mutate golden's output stored by the API server
 * (`stored: NAME`, the defaults of test/injector/fixtures.ts's
 * apiServerDefaults added), then `change`d by RFC 6902 operations into the
 * request's object (on UPDATE the pod before them is the oldObject).
 * Regenerate with `UPDATE_GOLDEN=1 node --test test/injector/golden-validate.test.ts`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import jsonpatch from 'fast-json-patch';
import { parse } from 'yaml';
import { parseInjectorConfig } from '../../injector/config.ts';
import { validatePodAdmission } from '../../injector/validate.ts';
import { validatePod } from '../helpers/k8s-schema.ts';
import { apiServerDefaults } from './fixtures.ts';
import { checkGolden, GOLDEN_BASE_CONFIG, goldenCases, orphans, readInput } from './golden-files.ts';

const DIR = join(import.meta.dirname, 'golden-validate');
const MUTATE_DIR = join(import.meta.dirname, 'golden');

interface ValidateInput {
  operation: 'CREATE' | 'UPDATE';
  namespace: string;
  tenant: string;
  allowOptOut?: boolean;
  config?: Record<string, unknown>;
  stored?: string;
  pod?: Record<string, unknown>;
  change?: jsonpatch.Operation[];
}

const { cases } = goldenCases(DIR);

test('golden-validate: the cases of the issue exist', () => {
  for (const name of [
    'create-injected',
    'create-not-injected',
    'create-foreign-sidecar',
    'create-tenant-label-forged',
    'create-tenant-label-missing',
    'create-opt-out-denied',
    'create-opt-out-allowed-namespace',
    'create-host-network',
    'update-sidecar-image',
    'update-dns-config',
    'update-tenant-label',
    'update-labels',
    'update-ephemeral-container',
    'update-not-injected-before',
  ]) {
    assert.ok(cases.includes(name), `missing golden case ${name}`);
  }
});

test('golden-validate: no golden file without an input', () => {
  const unused = orphans(DIR, ['.verdict.json']);
  assert.deepEqual(unused, [], `unused golden files: ${unused.join(', ')}`);
});

for (const name of cases) {
  test(`golden-validate: ${name}`, () => {
    const input = readInput<ValidateInput>(DIR, name);
    const base = input.stored ? apiServerDefaults(parse(readFileSync(join(MUTATE_DIR, `${input.stored}.patched.yaml`), 'utf8'))) : input.pod;
    assert.ok(base, 'an input has `stored` or `pod`');
    validatePod(base);
    const object = jsonpatch.applyPatch(structuredClone(base), input.change ?? [], true, false).newDocument;
    const verdict = validatePodAdmission(object, {
      namespace: input.namespace,
      tenant: input.tenant,
      operation: input.operation,
      oldObject: input.operation === 'UPDATE' ? base : undefined,
      allowOptOut: input.allowOptOut,
      config: parseInjectorConfig({ ...GOLDEN_BASE_CONFIG, ...input.config }),
    });
    checkGolden(DIR, `${name}.verdict.json`, JSON.stringify(verdict, null, 2) + '\n');
  });
}
