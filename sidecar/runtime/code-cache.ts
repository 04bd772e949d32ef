/**
 * The image runs `tenant-dns sidecar` from one CommonJS file (dist/sidecar.cjs, deploy/scripts/bundle.sh),
 * compiled with V8's code cache (cache/sidecar.v8) taken from a warm start: bundle.sh starts the sidecar once,
 * lets it answer queries, and has it write the cache just before its start-up heap compaction. That cache
 * holds every function compiled until then, the ones compiled on their first call included: configuration,
 * the policy compiler, the listeners and the first queries' path. Node's compile cache
 * (NODE_COMPILE_CACHE) holds only what is compiled while a module loads, and V8 compiled the rest on the
 * first call at every start. Measured in test/bench/README.md, "Issue 19: the sidecar's own bundle".
 *
 * `runWithCodeCache` is the loader (the bundle's entry calls it for `sidecar`); the sidecar reads how it went
 * with `codeCacheStatus` (the "sidecar serving" log line) and, in bundle.sh's warm start only, writes the cache
 * with `saveCodeCache`. The two sides run in separate bundles (the entry's ES module and sidecar.cjs), so they
 * meet on a global registered under a Symbol.for key.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { closeSync, fstatSync, openSync, readFully, vmModule, writeFileSync } from './builtins.ts';

/** How the code cache went: `used` (V8 took it), `rejected` (made by another Node or for another source), `absent` (no file). */
export type CodeCacheStatus = 'used' | 'rejected' | 'absent';

/** The environment variable that asks the loader to write the cache there (bundle.sh's warm start, nothing else). */
export const CODE_CACHE_OUT_ENV = 'TENANT_DNS_CODE_CACHE_OUT';

/**
 * The parameters the bundle's code sees, as a CommonJS module does, plus the URL that stands for
 * `import.meta.url` in it (bundle.sh defines `import.meta.url` as this name).
 */
const IMPORT_META_URL = '__tenantDnsImportMetaUrl';
/**
 * The file the loader runs is a CommonJS body already wrapped in this function expression (bundle.sh
 * writes it with esbuild's --banner and --footer, the same text), so that V8 compiles the string read
 * from the file as it is: wrapped here, the 0.5 MB source was copied once more at every start (about 110
 * page faults, test/bench/README.md, "Issue 19: where it stands").
 */
export const WRAPPER_HEAD = `(function (exports, require, module, __filename, __dirname, ${IMPORT_META_URL}) {`;
export const WRAPPER_TAIL = '\n})';

/** `body` (CommonJS) as the loader runs it: what bundle.sh's --banner and --footer make of sidecar.cjs. */
export function wrapCommonJs(body: string): string {
  return WRAPPER_HEAD + body + WRAPPER_TAIL;
}

interface CodeCacheState {
  readonly status: CodeCacheStatus;
  /** Writes the code cache V8 would make now; set only when CODE_CACHE_OUT_ENV asked for it. */
  readonly save?: () => { file: string; bytes: number };
}

const KEY = Symbol.for('tenant-dns.code-cache');
type WithState = { [KEY]?: CodeCacheState };

/**
 * Runs the CommonJS file `file`, wrapped as {@link wrapCommonJs} wraps it, with V8's code cache from
 * `cacheFile` (a missing or unreadable file is `absent`: the code is compiled as usual). `vendor` maps a
 * bare `require` (undici, yaml: loaded off the sidecar's common path, so kept out of its file) to a file
 * next to it. Throws when the file is not wrapped, and what the code throws while it loads.
 */
export function runWithCodeCache(file: string, cacheFile: string, vendor: Readonly<Record<string, string>>): void {
  const { source, cachedData } = readSourceAndCache(file, cacheFile);
  if (!source.startsWith(WRAPPER_HEAD) || !source.trimEnd().endsWith(WRAPPER_TAIL.trim())) {
    throw new Error(`${file}: not a CommonJS body wrapped for the code-cache loader (deploy/scripts/bundle.sh writes it so: it starts with "${WRAPPER_HEAD}" and ends with "${WRAPPER_TAIL.trim()}")`);
  }
  const vm = vmModule();
  const script = new vm.Script(source, { filename: file, ...(cachedData ? { cachedData } : {}) });
  const status: CodeCacheStatus = cachedData === undefined ? 'absent' : script.cachedDataRejected === true ? 'rejected' : 'used';
  const out = process.env[CODE_CACHE_OUT_ENV];
  const state: CodeCacheState = out
    ? {
        status,
        save: () => {
          const data = script.createCachedData();
          writeFileSync(out, data);
          return { file: out, bytes: data.length };
        },
      }
    : { status };
  (globalThis as WithState)[KEY] = state;
  const nodeRequire = createRequire(file);
  const require = Object.assign((id: string): unknown => nodeRequire(Object.hasOwn(vendor, id) ? vendor[id]! : id), { resolve: nodeRequire.resolve, cache: nodeRequire.cache });
  const module = { exports: {} };
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  run.call(module.exports, module.exports, require, module, file, dirname(file), pathToFileURL(file).href);
}

/**
 * The text of `file` (UTF-8) and the bytes of `cacheFile` (undefined when it cannot be read), read through
 * one buffer: the source's bytes become a string, then the cache is read over them, so the second read finds
 * the pages the first one touched. Two buffers cost about 120 more page faults per start, and a page fault
 * costs about 11 µs on the bench's VM (test/bench/README.md, "Issue 19: where it stands").
 */
function readSourceAndCache(file: string, cacheFile: string): { source: string; cachedData: Buffer | undefined } {
  const sourceFd = openSync(file, 'r');
  let cacheFd: number | undefined;
  try {
    let cacheSize = 0;
    try {
      cacheFd = openSync(cacheFile, 'r');
      cacheSize = fstatSync(cacheFd).size;
    } catch {
      if (cacheFd !== undefined) closeSync(cacheFd);
      cacheFd = undefined;
    }
    const sourceSize = fstatSync(sourceFd).size;
    const buffer = Buffer.allocUnsafeSlow(Math.max(sourceSize, cacheSize, 1));
    const source = buffer.toString('utf8', 0, readFully(sourceFd, buffer, sourceSize));
    let cachedData: Buffer | undefined;
    if (cacheFd !== undefined) {
      try {
        cachedData = buffer.subarray(0, readFully(cacheFd, buffer, cacheSize));
      } catch {
        cachedData = undefined;
      }
    }
    return { source, cachedData };
  } finally {
    closeSync(sourceFd);
    if (cacheFd !== undefined) closeSync(cacheFd);
  }
}

/** How the code cache went, or undefined when the sidecar does not run from the bundle (from source, in tests). */
export function codeCacheStatus(): CodeCacheStatus | undefined {
  return (globalThis as WithState)[KEY]?.status;
}

/**
 * Writes the code cache when CODE_CACHE_OUT_ENV asked for it (bundle.sh's warm start), and says where and how
 * much; otherwise does nothing and returns undefined. Called just before the start-up heap compaction, which
 * flushes the start-up's code.
 */
export function saveCodeCache(): { file: string; bytes: number } | undefined {
  return (globalThis as WithState)[KEY]?.save?.();
}
