/**
 * applyDefaults (sidecar/config/defaults.ts) against TypeBox's Value.Default:
 * the same value for the project's schemas on every YAML document of the
 * repository, on documents of the wrong shape, and on random mutations of
 * them; schemas it does not handle itself go to Value.Default.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Type, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parseAllDocuments } from 'yaml';
import { applyDefaults } from '../../../sidecar/config/defaults.ts';
import { DNSPolicySchema } from '../../../sidecar/config/policy-schema.ts';
import { SidecarConfigSchema } from '../../../sidecar/config/schema.ts';
import { repositoryFiles } from '../../helpers/repo-files.ts';

const ROOT = join(import.meta.dirname, '../../..');
const SCHEMAS: [string, TSchema][] = [
  ['DNSPolicy', DNSPolicySchema],
  ['sidecar config', SidecarConfigSchema],
];

function agree(schema: TSchema, value: unknown, what: string): void {
  const mine = applyDefaults(schema, structuredClone(value));
  const theirs = Value.Default(schema, structuredClone(value));
  assert.ok(isDeepStrictEqual(mine, theirs), `${what}: ${JSON.stringify(mine)} but Value.Default gives ${JSON.stringify(theirs)}`);
}

function repositoryValues(): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const p of repositoryFiles(ROOT)) {
    if (!/\.ya?ml$/.test(p)) continue;
    const docs = parseAllDocuments(readFileSync(p, 'utf8'));
    if (Array.isArray(docs)) docs.forEach((d, i) => d.errors.length === 0 && out.set(`${p}#${i}`, d.toJS()));
  }
  return out;
}

test('config defaults: the same value as Value.Default for every YAML document of the repository', () => {
  const values = repositoryValues();
  assert.ok(values.size > 100);
  for (const [schemaName, schema] of SCHEMAS) for (const [name, value] of values) agree(schema, value, `${name} as ${schemaName}`);
});

test('config defaults: the same value as Value.Default for values of the wrong shape', () => {
  const odd = [undefined, null, 0, 'x', [], [1, 'a'], {}, { spec: null }, { spec: [] }, { spec: 'x' }, { spec: { rules: {} } }, { spec: { rules: [null, 'r', [], {}] } },
    { spec: { rules: [{ response: null }, { response: 'x' }, { response: { type: 7 } }, { podSelector: { matchLabels: null } }] } },
    { spec: { splitZones: [{}, { resolveVia: 3 }], defaultAction: { a: 1 }, serviceDiscovery: {}, ipFamilies: ['IPv4', 4, null] } },
    { cache: null, listener: [], upstream: { timing: 'x' }, listen: 'a' }, { metadata: { labels: { a: 1 } } }];
  for (const [schemaName, schema] of SCHEMAS) for (const value of odd) agree(schema, value, `${JSON.stringify(value)} as ${schemaName}`);
});

test('config defaults: the same value as Value.Default for random mutations of the repository documents', () => {
  // A fixed-seed generator: the same mutations on every run.
  let seed = 19;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const replacements = [undefined, null, 0, 'x', true, [], {}, [{}], { type: 'sinkhole' }];
  const mutate = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return rand(4) === 0 ? replacements[rand(replacements.length)] : v;
    if (rand(10) === 0) return replacements[rand(replacements.length)];
    if (Array.isArray(v)) return v.map(mutate);
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (rand(6) !== 0) out[k] = mutate(x);
    return out;
  };
  const values = [...repositoryValues().values()];
  let n = 0;
  for (let round = 0; round < 5; round++) for (const [schemaName, schema] of SCHEMAS) for (const v of values) agree(schema, mutate(v), `mutation ${n++} as ${schemaName}`);
});

test('config defaults: schemas it does not handle itself get Value.Default', () => {
  const schemas = [
    Type.Object({ u: Type.Union([Type.Object({ k: Type.Literal('a'), x: Type.Integer({ default: 2 }) }), Type.Object({ k: Type.Literal('b') })]) }),
    Type.Intersect([Type.Object({ a: Type.Integer({ default: 1 }) }), Type.Object({ b: Type.String({ default: 'b' }) })]),
    Type.Object({ t: Type.Tuple([Type.Integer({ default: 3 }), Type.String()]) }),
    Type.Object({ u: Type.Union([Type.Literal('a', { default: 'a' }), Type.Literal('b')]) }),
  ];
  for (const schema of schemas) {
    for (const v of [{}, { u: { k: 'a' } }, { u: { k: 'b' } }, { t: [] }, { u: undefined }]) {
      assert.deepEqual(applyDefaults(schema, structuredClone(v)), Value.Default(schema, structuredClone(v)));
    }
  }
});
