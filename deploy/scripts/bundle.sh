#!/bin/sh
# Bundles the tenant-dns CLI into ES modules with esbuild, the way
# Dockerfile.sidecar does (the test suite runs this same script):
#
#   deploy/scripts/bundle.sh OUTDIR
#
# writes OUTDIR/dist/tenant-dns.mjs (the entry point), the chunks it imports
# on demand (OUTDIR/dist/*-HASH.mjs: undici, loaded only by a DoH upstream, is
# one; code splitting keeps it out of start-up) and OUTDIR/package.json (the
# CLI reads its version from ../package.json relative to itself). Run from
# the repository root after `npm ci`.
#
# --minify-whitespace drops comments and indentation, not names (stack
# traces keep function names): V8 holds each chunk's source in memory, as
# two bytes per character once a comment has a non-ASCII character, so it
# cut the idle RSS by 1.2 MiB.
#
# Then it starts the bundle once to fill OUTDIR/cache with V8's compiled
# code for the modules loaded at start-up (Node's compile cache). The image
# sets NODE_COMPILE_CACHE=/app/cache; NODE_COMPILE_CACHE_PORTABLE=1 keys the
# entries by path relative to the cache, so they stay valid after the copy
# from /out to /app. Node ignores a cache made by another Node version, and
# never writes to it when it cannot (read-only root filesystem).
# NODE (default: node) is the node that fills it.
set -eu
out=${1:?usage: bundle.sh OUTDIR}
mkdir -p "$out/dist"
./node_modules/.bin/esbuild bin/tenant-dns.ts \
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
node -e "const p=require('./package.json');require('fs').writeFileSync(process.argv[1],JSON.stringify({name:p.name,version:p.version,type:'module'},null,2)+'\n')" "$out/package.json"
rm -rf "$out/cache" && mkdir -p "$out/cache"
NODE_COMPILE_CACHE="$out/cache" NODE_COMPILE_CACHE_PORTABLE=1 "${NODE:-node}" "$out/dist/tenant-dns.mjs" sidecar --help >/dev/null
chmod -R a+rX "$out/cache"
