/**
 * The CRDs of deploy/crds/ (generated from injector/crd-schema.ts: test/sidecar/config/schemas.test.ts checks
 * the committed files are current): structural
 * (checked by a checker of the API server's rules, which is shown to fail on
 * a non-structural schema), valid CustomResourceDefinitions (kubernetes-models),
 * and every example object (examples/*.yaml, the DNSPolicies, and
 * examples/control-plane/) valid against its CRD's openAPIV3Schema (ajv).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Ajv } from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { crdOpenApiSchema, CRD_KINDS, structuralSchema } from '../../injector/crd-schema.ts';
import { DNSPolicySchema, jsonSchemaDocument } from '../../sidecar/config/policy-schema.ts';
import { structuralViolations } from '../helpers/crd-structural.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';

const ROOT = join(import.meta.dirname, '..', '..');

/** The committed CRDs, parsed, by kind. */
function committedCrds(): Map<string, any> {
  const out = new Map<string, any>();
  for (const f of readdirSync(join(ROOT, 'deploy', 'crds')).filter((f) => f !== 'kustomization.yaml')) {
    const crd = parse(readFileSync(join(ROOT, 'deploy', 'crds', f), 'utf8'));
    out.set(crd.spec.names.kind, crd);
  }
  return out;
}

test('crd: both CRDs are valid CustomResourceDefinitions with status, printer columns, short names and a category', () => {
  const crds = committedCrds();
  assert.deepEqual([...crds.keys()].sort(), ['ClusterDNSPolicy', 'DNSPolicy']);
  for (const [kind, crd] of crds) {
    validateK8sObject(crd);
    const k = CRD_KINDS[kind as keyof typeof CRD_KINDS];
    assert.equal(crd.metadata.name, `${k.plural}.tenant-dns.io`);
    assert.equal(crd.spec.scope, k.scope);
    assert.deepEqual(crd.spec.names.shortNames, k.shortNames);
    assert.deepEqual(crd.spec.names.categories, ['tenant-dns']);
    assert.equal(crd.spec.versions.length, 1);
    const v = crd.spec.versions[0];
    assert.deepEqual([v.name, v.served, v.storage], ['v1alpha1', true, true]);
    assert.deepEqual(v.subresources, { status: {} });
    const columns = v.additionalPrinterColumns.map((c: any) => c.name);
    assert.deepEqual(columns, kind === 'ClusterDNSPolicy' ? ['Accepted', 'Reason', 'Namespaces', 'Age'] : ['Accepted', 'Reason', 'Age']);
    assert.equal(v.additionalPrinterColumns[0].jsonPath, '.status.conditions[?(@.type=="Accepted")].status');
  }
  // The kinds differ where the contract says: selector and serviceDiscovery (without namespaces) only on the platform's.
  const spec = (kind: string) => crds.get(kind).spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
  assert.ok(!('serviceDiscovery' in spec('DNSPolicy')) && !('selector' in spec('DNSPolicy')));
  assert.deepEqual(Object.keys(spec('ClusterDNSPolicy').serviceDiscovery.properties).sort(), ['isolation', 'sharedNamespaces']);
  assert.deepEqual(Object.keys(spec('ClusterDNSPolicy').selector.properties).sort(), ['namespaceSelector', 'tenants']);
});

test('crd: the openAPIV3Schema of both CRDs is structural', () => {
  for (const [kind, crd] of committedCrds()) {
    assert.deepEqual(structuralViolations(crd.spec.versions[0].schema.openAPIV3Schema), [], kind);
  }
});

test('crd: the structural checker fails on a non-structural schema (the policy JSON Schema for editors)', () => {
  const found = structuralViolations(jsonSchemaDocument(DNSPolicySchema));
  const has = (re: RegExp) => assert.ok(found.some((v) => re.test(v)), `${re} not in:\n${found.join('\n')}`);
  has(/^\(root\): \$schema is not allowed/);
  has(/^\(root\): \$id is not a field of JSONSchemaProps/);
  has(/^\(root\): additionalProperties cannot be false/);
  has(/^\(root\)\.properties\.kind: const is not a field/);
  has(/^\(root\)\.properties\.spec\.properties\.defaultAction: type must be set/);
  has(/^\(root\)\.properties\.spec\.properties\.defaultAction\.anyOf\[0\]: type must not be set inside a logical junctor/);
  has(/patternProperties is not allowed/);
  has(/^\(root\)\.properties\.metadata: additionalProperties must not be set/);
  has(/^\(root\)\.properties\.metadata\.properties\.namespace: only name and generateName/);
  // And the smaller rules, one by one.
  const bad = (schema: unknown) => structuralViolations({ type: 'object', properties: { x: schema } });
  assert.match(bad({ anyOf: [{ type: 'string' }] }).join('\n'), /type must be set/);
  assert.match(bad({ type: 'object', properties: { a: { type: 'string' } }, anyOf: [{ properties: { b: { minLength: 1 } } }] }).join('\n'), /properties\.b: not declared outside/);
  assert.match(bad({ type: 'array', items: { type: 'string' }, uniqueItems: true }).join('\n'), /uniqueItems cannot be true/);
  assert.match(bad({ type: 'string', enum: ['a', 1] }).join('\n'), /enum\[1\]: not of type string/);
  assert.match(bad({ type: 'integer', default: 'x' }).join('\n'), /default: not of type integer/);
  assert.match(bad({ type: 'array', items: { type: 'object', properties: { k: { type: 'string' } } }, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['k'] }).join('\n'), /list map key k must be required/);
  assert.match(bad({ type: 'object', $ref: '#/x' }).join('\n'), /\$ref is not allowed/);
  assert.deepEqual(bad({ 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] }).filter((v) => !/inside a logical junctor/.test(v)), []);
  assert.deepEqual(bad({ type: 'string', enum: ['a'], default: 'a' }), []);
});

test('crd: structuralSchema refuses a union with no structural form', () => {
  // A union of an object and a string: no enum can say it.
  const schema = { type: 'object', properties: { x: { anyOf: [{ type: 'string' }, { type: 'object' }] } } };
  assert.throws(() => structuralSchema(schema as never), /\.x: a union of non-literals has no structural form/);
});

/** Every example object that is a DNSPolicy or ClusterDNSPolicy, with its file. */
function exampleObjects(): { file: string; object: any }[] {
  const out: { file: string; object: any }[] = [];
  for (const dir of ['examples', 'examples/control-plane']) {
    for (const f of readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.yaml'))) {
      for (const doc of parseAllDocuments(readFileSync(join(ROOT, dir, f), 'utf8'))) {
        const object = doc.toJS();
        if (object?.kind === 'DNSPolicy' || object?.kind === 'ClusterDNSPolicy') out.push({ file: `${dir}/${f}`, object });
      }
    }
  }
  return out;
}

test('crd: every example policy object is valid against its CRD schema (ajv)', () => {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const validators = { DNSPolicy: ajv.compile(crdOpenApiSchema('DNSPolicy')), ClusterDNSPolicy: ajv.compile(crdOpenApiSchema('ClusterDNSPolicy')) };
  const examples = exampleObjects();
  assert.ok(examples.filter((e) => e.object.kind === 'ClusterDNSPolicy').length >= 2, 'ClusterDNSPolicy examples');
  assert.ok(examples.filter((e) => e.object.kind === 'DNSPolicy').length >= 5, 'DNSPolicy examples');
  for (const { file, object } of examples) {
    const validate = validators[object.kind as 'DNSPolicy' | 'ClusterDNSPolicy'];
    assert.ok(validate(object), `${file}: ${ajv.errorsText(validate.errors)}`);
  }
  // The schema is not vacuous: a wrong action, a bad selector operator and a missing names list are refused.
  const bad = structuredClone(examples.find((e) => e.object.kind === 'ClusterDNSPolicy' && e.object.spec.selector)!.object);
  bad.spec.rules[0].action = 'block';
  bad.spec.selector.namespaceSelector.matchExpressions[0].operator = 'Has';
  delete bad.spec.rules[0].names;
  assert.equal(validators.ClusterDNSPolicy(bad), false);
  const errors = ajv.errorsText(validators.ClusterDNSPolicy.errors);
  assert.match(errors, /spec\/rules\/0\/action must be equal to one of the allowed values/);
  assert.match(errors, /matchExpressions\/0\/operator must be equal to one of the allowed values/);
  assert.match(errors, /spec\/rules\/0 must have required property 'names'/);
});
