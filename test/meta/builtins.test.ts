/**
 * Convention (sidecar/runtime/README.md): the sidecar takes node:fs,
 * node:crypto, node:http, node:tls, node:os and node:timers/promises from
 * sidecar/runtime/builtins.ts, whose getBuiltinModule calls skip the ESM
 * facades that load more at start-up or load the module only when used, and
 * reads the time through sidecar/runtime/clock.ts, never the global
 * `performance` or node:perf_hooks, which load eight modules at first use.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const SIDECAR = new URL('../../sidecar/', import.meta.url);
const SEAM = 'runtime/builtins.ts';

/** A value import (one that loads the module) of a built-in that goes through the seam; `import type` loads nothing. */
const FACADE_IMPORT = /^import\s+(?!type\s)[^;]*?from\s+'node:(fs|fs\/promises|crypto|http|https|tls|os|timers\/promises|perf_hooks)'/m;

test('meta runtime: sidecar files take node:fs, node:crypto, node:http, node:tls, node:os and node:timers/promises from the built-ins seam', () => {
  const files = readdirSync(SIDECAR, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && f !== SEAM);
  assert.ok(files.length > 40, `sidecar files found: ${files.length}`);
  const offenders = files.filter((f) => {
    const text = readFileSync(new URL(f, SIDECAR), 'utf8');
    return FACADE_IMPORT.test(text) || text.includes('process.getBuiltinModule(');
  });
  assert.deepEqual(offenders, [], `import these through sidecar/${SEAM}`);
  assert.match(readFileSync(new URL(SEAM, SIDECAR), 'utf8'), /process\.getBuiltinModule\('node:fs'\)/);
});

test('meta runtime: sidecar files read the time through runtime/clock.ts, not the global performance', () => {
  const files = readdirSync(SIDECAR, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && f !== 'runtime/clock.ts');
  const offenders = files.filter((f) => /\bperformance\s*\./.test(readFileSync(new URL(f, SIDECAR), 'utf8').replace(/^\s*(\*|\/\/).*$/gm, '')));
  assert.deepEqual(offenders, [], 'use monotonicMs() from sidecar/runtime/clock.ts');
});
