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
  --log-level=warning \
  "--banner:js=import { createRequire as __tdnsCreateRequire } from 'node:module'; const require = __tdnsCreateRequire(import.meta.url);" \
  --entry-names='[name]' \
  --out-extension:.js=.mjs \
  --outdir="$out/dist"
node -e "const p=require('./package.json');require('fs').writeFileSync(process.argv[1],JSON.stringify({name:p.name,version:p.version,type:'module'},null,2)+'\n')" "$out/package.json"
