import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { crdFiles, schemaFiles } from '../../../scripts/gen-schemas.ts';
import { validateFiles } from '../../../sidecar/policy/cli.ts';

const root = new URL('../../../', import.meta.url);

test('schemas: the committed JSON Schemas and CRDs equal what scripts/gen-schemas.ts makes (run npm run schemas)', () => {
  for (const [name, text] of Object.entries(schemaFiles())) {
    assert.equal(readFileSync(new URL(`schemas/${name}`, root), 'utf8'), text, `schemas/${name} is stale: run npm run schemas`);
  }
  const crds = crdFiles();
  assert.deepEqual(Object.keys(crds).sort(), ['deploy/crds/clusterdnspolicies.yaml', 'deploy/crds/dnspolicies.yaml']);
  for (const [path, text] of Object.entries(crds)) assert.equal(readFileSync(new URL(path, root), 'utf8'), text, `${path} is stale: run npm run schemas`);
});

test('examples: every example policy validates and points editors at the schema', () => {
  const dir = new URL('examples/', root);
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 6);
  for (const f of files) {
    const path = new URL(f, dir).pathname;
    assert.equal(readFileSync(path, 'utf8').split('\n')[0], '# yaml-language-server: $schema=../schemas/dnspolicy.schema.json', f);
    const r = validateFiles([path]);
    assert.equal(r.exitCode, 0, r.output);
  }
});
