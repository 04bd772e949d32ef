/**
 * The bundle's entry point (dist/tenant-dns.mjs, the image's ENTRYPOINT; deploy/scripts/bundle.sh), one
 * module with nothing to import but Node's built-ins. `tenant-dns sidecar …` runs dist/sidecar.cjs
 * (sidecar-program.ts) with V8's code cache that bundle.sh took from a warm start (cache/sidecar.v8;
 * sidecar/runtime/code-cache.ts); every other command runs the whole CLI, dist/cli.mjs (tenant-dns.ts and the
 * chunks it imports), loaded only then. From source, bin/tenant-dns.ts runs the whole CLI for every command.
 */
import { fileURLToPath } from 'node:url';
import { runWithCodeCache } from '../sidecar/runtime/code-cache.ts';

if (process.argv[2] === 'sidecar') {
  const at = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
  runWithCodeCache(at('./sidecar.cjs'), at('../cache/sidecar.v8'), { undici: './vendor/undici.cjs', yaml: './vendor/yaml.cjs', 'js-yaml': './vendor/js-yaml.cjs' });
} else {
  // Built by bundle.sh beside this file; it sets process.exitCode itself.
  await import(new URL('./cli.mjs', import.meta.url).href);
}
