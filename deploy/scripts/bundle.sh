#!/bin/sh
# Bundles the tenant-dns CLI into one ES module with esbuild, the way
# Dockerfile.sidecar does (the test suite runs this same script):
#
#   deploy/scripts/bundle.sh OUTDIR [ENTRY]
#
# writes OUTDIR/dist/tenant-dns.mjs and OUTDIR/package.json (the CLI reads its
# version from ../package.json relative to itself). ENTRY defaults to
# bin/tenant-dns.ts. Run from the repository root after `npm ci`.
set -eu
out=${1:?usage: bundle.sh OUTDIR [ENTRY]}
entry=${2:-bin/tenant-dns.ts}
mkdir -p "$out/dist"
./node_modules/.bin/esbuild "$entry" \
  --bundle \
  --platform=node \
  --target=node24 \
  --format=esm \
  --legal-comments=none \
  --log-level=warning \
  "--banner:js=import { createRequire as __tdnsCreateRequire } from 'node:module'; const require = __tdnsCreateRequire(import.meta.url);" \
  --outfile="$out/dist/tenant-dns.mjs"
node -e "const p=require('./package.json');require('fs').writeFileSync(process.argv[1],JSON.stringify({name:p.name,version:p.version,type:'module'},null,2)+'\n')" "$out/package.json"
