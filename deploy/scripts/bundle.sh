#!/bin/sh
# Bundles the tenant-dns CLI with esbuild, the way Dockerfile.sidecar does (the
# test suite runs this same script):
#
#   deploy/scripts/bundle.sh OUTDIR
#
# writes
# - OUTDIR/dist/tenant-dns.mjs, the entry point (bin/bundle-entry.ts), one module:
#   it runs `sidecar` from dist/sidecar.cjs and every other command from the
#   whole CLI, dist/cli.mjs;
# - the whole CLI as ES modules: dist/cli.mjs (bin/tenant-dns.ts) and the chunks
#   it imports on demand (OUTDIR/dist/*-HASH.mjs; undici, loaded only by a DoH
#   upstream, is one: code splitting keeps it out of start-up);
# - OUTDIR/dist/sidecar.cjs, the `sidecar` command alone (bin/sidecar-program.ts)
#   in one CommonJS file, and OUTDIR/dist/vendor/{undici,yaml,js-yaml}.cjs,
#   which it requires off its common path (a DoH upstream; a policy the
#   line-by-line YAML reader steps aside from), so their source is not in its file;
# - OUTDIR/package.json (the CLI reads its version from ../package.json
#   relative to itself).
# Run from the repository root after `npm ci`.
#
# --minify-whitespace drops comments and indentation, not names (stack
# traces keep function names): V8 holds each file's source in memory, as
# two bytes per character once a comment has a non-ASCII character, so it
# cut the idle RSS by 1.2 MiB.
#
# Then two caches of V8's compiled code, in OUTDIR/cache:
# - cache/sidecar.v8, for dist/sidecar.cjs: deploy/scripts/warm-code-cache.ts
#   starts the sidecar, has it answer queries, and the sidecar writes the cache
#   just before its start-up heap compaction, so it holds the functions compiled
#   on their first call too (sidecar/runtime/code-cache.ts; test/bench/README.md,
#   "Issue 19: the sidecar's own bundle");
# - Node's compile cache for the ES modules (`--help` loads every command's
#   registration): the image sets NODE_COMPILE_CACHE=/app/cache;
#   NODE_COMPILE_CACHE_PORTABLE=1 keys the entries by path relative to the
#   cache, so they stay valid after the copy from /out to /app.
# V8 rejects a cache made by another Node version (the code is then compiled as
# usual), and nothing writes to either at run time (read-only root filesystem).
# NODE (default: node) is the node that fills them.
set -eu
out=${1:?usage: bundle.sh OUTDIR}
esbuild=./node_modules/.bin/esbuild
rm -rf "$out/dist" && mkdir -p "$out/dist/vendor"
# The entry alone, without code splitting: a module it shared with the CLI would be a chunk of its own, and
# each module the sidecar's start loads costs (three small chunks: 211M -> 201M instructions to a first answer).
"$esbuild" tenant-dns=bin/bundle-entry.ts \
  --bundle \
  --platform=node \
  --target=node24 \
  --format=esm \
  --legal-comments=none \
  --minify-whitespace \
  --log-level=warning \
  --out-extension:.js=.mjs \
  --outdir="$out/dist"
"$esbuild" cli=bin/tenant-dns.ts \
  --bundle \
  --platform=node \
  --target=node24 \
  --format=esm \
  --splitting \
  --legal-comments=none \
  --minify-whitespace \
  --log-level=warning \
  "--banner:js=import { createRequire as __tdnsCreateRequire } from 'node:module'; const require = __tdnsCreateRequire(import.meta.url);" \
  --entry-names='[name]' \
  --out-extension:.js=.mjs \
  --outdir="$out/dist"
# One CommonJS file: V8's code cache is made for one script after it ran. import() of undici becomes a
# require (dynamic-import=false), which the loader maps to vendor/undici.cjs, as it maps yaml and js-yaml.
# --minify-syntax too (names kept, so stack traces keep them): idle USS of 10 sidecars 11.8, 11.7, 12.0,
# 11.5 -> 11.4, 11.4, 11.4, 11.5 MiB in alternating runs (test/bench/README.md, "the sidecar's own bundle").
# The banner and footer wrap the body in the function the loader calls (sidecar/runtime/code-cache.ts,
# WRAPPER_HEAD and WRAPPER_TAIL: the same text), so V8 compiles the file's text without another copy.
"$esbuild" bin/sidecar-program.ts \
  --bundle \
  --platform=node \
  --target=node24 \
  --format=cjs \
  --supported:dynamic-import=false \
  --external:undici \
  --external:yaml \
  --external:js-yaml \
  --define:import.meta.url=__tenantDnsImportMetaUrl \
  "--banner:js=(function (exports, require, module, __filename, __dirname, __tenantDnsImportMetaUrl) {" \
  "--footer:js=
})" \
  --legal-comments=none \
  --minify-whitespace \
  --minify-syntax \
  --log-level=warning \
  --outfile="$out/dist/sidecar.cjs"
for lib in undici yaml js-yaml; do
  "$esbuild" "$(node -p "require.resolve('$lib')")" --bundle --platform=node --target=node24 --format=cjs \
    --legal-comments=none --minify-whitespace --log-level=warning --outfile="$out/dist/vendor/$lib.cjs"
done
node -e "const p=require('./package.json');require('fs').writeFileSync(process.argv[1],JSON.stringify({name:p.name,version:p.version,type:'module'},null,2)+'\n')" "$out/package.json"
rm -rf "$out/cache" && mkdir -p "$out/cache"
"${NODE:-node}" deploy/scripts/warm-code-cache.ts "$out"
NODE_COMPILE_CACHE="$out/cache" NODE_COMPILE_CACHE_PORTABLE=1 "${NODE:-node}" "$out/dist/tenant-dns.mjs" --help >/dev/null
chmod -R a+rX "$out/cache"
