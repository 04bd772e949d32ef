/**
 * Convention (sidecar/runtime/README.md): the sidecar takes node:fs,
 * node:crypto, node:http and node:tls from sidecar/runtime/builtins.ts, whose
 * getBuiltinModule calls skip the ESM facades that load more at start-up.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const SIDECAR = new URL('../../sidecar/', import.meta.url);
const SEAM = 'runtime/builtins.ts';

/** A value import (one that loads the module) of a built-in that goes through the seam; `import type` loads nothing. */
const FACADE_IMPORT = /^import\s+(?!type\s)[^;]*?from\s+'node:(fs|fs\/promises|crypto|http|https|tls)'/m;

test('meta runtime: sidecar files take node:fs, node:crypto, node:http and node:tls from the built-ins seam', () => {
  const files = readdirSync(SIDECAR, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && f !== SEAM);
  assert.ok(files.length > 40, `sidecar files found: ${files.length}`);
  const offenders = files.filter((f) => {
    const text = readFileSync(new URL(f, SIDECAR), 'utf8');
    return FACADE_IMPORT.test(text) || text.includes('process.getBuiltinModule(');
  });
  assert.deepEqual(offenders, [], `import these through sidecar/${SEAM}`);
  assert.match(readFileSync(new URL(SEAM, SIDECAR), 'utf8'), /process\.getBuiltinModule\('node:fs'\)/);
});
