/**
 * Golden-file plumbing shared by the /mutate goldens (golden.test.ts,
 * golden/) and the /validate goldens (golden-validate.test.ts,
 * golden-validate/): each case is `NAME.input.yaml` plus output files named
 * after it; `UPDATE_GOLDEN=1` rewrites the outputs after an intended change.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

const UPDATE = process.env.UPDATE_GOLDEN === '1';

/** The platform config every golden starts from; a case's `config` is merged over it. */
export const GOLDEN_BASE_CONFIG = {
  clusterDns: '10.96.0.10:53',
  upstreams: ['https://doh.example.net/dns-query'],
};

/** The cases in `dir` (names of `*.input.yaml`, sorted) and every file there. */
export function goldenCases(dir: string): { cases: string[]; files: string[] } {
  const files = readdirSync(dir).sort();
  return { files, cases: files.filter((f) => f.endsWith('.input.yaml')).map((f) => f.slice(0, -'.input.yaml'.length)) };
}

/** A case's input, parsed. */
export function readInput<T>(dir: string, name: string): T {
  return parse(readFileSync(join(dir, `${name}.input.yaml`), 'utf8')) as T;
}

/** The files in `dir` that belong to no case (outputs are NAME + one of `suffixes`). */
export function orphans(dir: string, suffixes: readonly string[]): string[] {
  const { files, cases } = goldenCases(dir);
  const expected = new Set(cases.flatMap((c) => [`${c}.input.yaml`, ...suffixes.map((s) => `${c}${s}`)]));
  return files.filter((f) => !expected.has(f));
}

/** Compares `actual` with the golden file (writes it with UPDATE_GOLDEN=1; a missing one fails otherwise). */
export function checkGolden(dir: string, file: string, actual: string): void {
  const path = join(dir, file);
  if (UPDATE || !existsSync(path)) {
    if (!UPDATE) assert.fail(`${file} is missing; run with UPDATE_GOLDEN=1 to create it`);
    writeFileSync(path, actual);
    return;
  }
  assert.equal(actual, readFileSync(path, 'utf8'), `${file} differs; run with UPDATE_GOLDEN=1 if the change is intended`);
}
