/**
 * The bundle's loader (sidecar/runtime/code-cache.ts): a CommonJS file run with V8's code cache, its status,
 * the cache written on request, and bare requires mapped to vendor files. Each case runs in a child process,
 * as the bundle's entry does (the loader registers a global).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';

import { wrapCommonJs } from '../../../sidecar/runtime/code-cache.ts';

const LOADER = pathToFileURL(join(import.meta.dirname, '../../../sidecar/runtime/code-cache.ts')).href;

/**
 * A CommonJS app that reports what it saw as a CommonJS module, and a vendor file it requires by a bare name;
 * wrapped for the loader as bundle.sh wraps dist/sidecar.cjs (`wrap: false`: the body alone).
 */
function makeApp(dir: string, variant = '', wrap = true): string {
  mkdirSync(join(dir, 'vendor'), { recursive: true });
  writeFileSync(join(dir, 'vendor', 'lib.cjs'), 'module.exports = { answer: 42 };\n');
  const file = join(dir, 'app.cjs');
  const body = `"use strict";${variant}
const lib = require("lib");
const path = require("node:path");
function later(n) { return n * 2; }
globalThis.report = { answer: lib.answer, base: path.basename(__filename), dir: __dirname, url: __tenantDnsImportMetaUrl, same: this === module.exports, later: later(21), text: "déjà vu ✓" };
`;
  // esbuild ends the file with a newline after its footer.
  writeFileSync(file, wrap ? `${wrapCommonJs(body)}\n` : body);
  return file;
}

/** Runs the loader on `file` with the cache at `cache` in a child process; returns what the app and the loader said. */
function load(file: string, cache: string, env: NodeJS.ProcessEnv = {}): { report: Record<string, unknown>; status: string; saved: unknown } {
  const script = `
    const { runWithCodeCache, codeCacheStatus, saveCodeCache } = await import(${JSON.stringify(LOADER)});
    runWithCodeCache(${JSON.stringify(file)}, ${JSON.stringify(cache)}, { lib: './vendor/lib.cjs' });
    console.log(JSON.stringify({ report: globalThis.report, status: codeCacheStatus(), saved: saveCodeCache() ?? null }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return JSON.parse(out) as { report: Record<string, unknown>; status: string; saved: unknown };
}

test('code cache: the app runs as a CommonJS module, with its vendor require, import.meta.url, this and its text as written', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-code-cache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = makeApp(dir);
  const { report } = load(file, join(dir, 'none.v8'));
  // The file is read as UTF-8 (esbuild writes ASCII, but a literal written as is must survive).
  assert.deepEqual(report, { answer: 42, base: 'app.cjs', dir, url: pathToFileURL(file).href, same: true, later: 42, text: 'déjà vu ✓' });
});

test('code cache: absent, then written on request, then used; a cache of another source is rejected', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-code-cache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = makeApp(dir);
  const cache = join(dir, 'app.v8');
  const first = load(file, cache);
  assert.equal(first.status, 'absent');
  assert.equal(first.saved, null, 'nothing is written unless asked');
  assert.equal(existsSync(cache), false);

  const warm = load(file, cache, { TENANT_DNS_CODE_CACHE_OUT: cache });
  assert.equal(warm.status, 'absent');
  const bytes = readFileSync(cache).length;
  assert.deepEqual(warm.saved, { file: cache, bytes });

  const used = load(file, cache);
  assert.equal(used.status, 'used');
  assert.equal(used.report.answer, 42);

  makeApp(dir, ' /* another build */');
  const rejected = load(file, cache);
  assert.equal(rejected.status, 'rejected');
  assert.equal(rejected.report.later, 42, 'the code still runs, compiled as usual');
});

test('code cache: a file not wrapped for the loader is refused, naming the file and the wrapper', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-code-cache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = makeApp(dir, '', false);
  assert.throws(() => load(file, join(dir, 'none.v8')), (err: Error & { stderr?: string }) => {
    assert.match(String(err.stderr), new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not a CommonJS body wrapped for the code-cache loader \\(deploy/scripts/bundle.sh`));
    return true;
  });
});
