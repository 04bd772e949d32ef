/**
 * How the image starts tenant-dns (ENTRYPOINT and the runtime stage's ENV),
 * read from Dockerfile.sidecar, so the tests and the benchmark run the
 * bundle exactly as a pod does.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');

/** The image's ENTRYPOINT (exec form): `node`, its flags, and the script. */
export interface ImageEntrypoint {
  /** The whole ENTRYPOINT array. */
  readonly argv: readonly string[];
  /** The flags given to node before the script (e.g. `--single-threaded-gc`). */
  readonly nodeFlags: readonly string[];
  /** The script node runs, as a path inside the image. */
  readonly script: string;
  /** The environment the runtime stage sets (its `ENV KEY=VALUE` lines). */
  readonly env: Readonly<Record<string, string>>;
}

/** Parses the ENTRYPOINT of Dockerfile.sidecar; throws when it is not `["node", ...flags, "<script>.mjs"]`. */
export function imageEntrypoint(): ImageEntrypoint {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile.sidecar'), 'utf8');
  const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile);
  if (!m) throw new Error('Dockerfile.sidecar: no ENTRYPOINT in exec form');
  const argv = JSON.parse(m[1]!) as string[];
  const at = argv.findIndex((a) => a.endsWith('.mjs'));
  if (argv[0] !== 'node' || at < 1 || at !== argv.length - 1 || !argv.slice(1, at).every((a) => a.startsWith('--'))) {
    throw new Error(`Dockerfile.sidecar: ENTRYPOINT ${m[1]} is not ["node", ...flags, "<script>.mjs"]`);
  }
  // ENV of the last stage only (the one that runs), in the KEY=VALUE form.
  const runtime = dockerfile.slice(dockerfile.search(/^FROM\s(?![\s\S]*^FROM\s)/m));
  const env: Record<string, string> = {};
  for (const line of runtime.matchAll(/^ENV\s+(.+)$/gm)) {
    for (const pair of line[1]!.trim().split(/\s+/)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new Error(`Dockerfile.sidecar: "ENV ${line[1]}" is not in the KEY=VALUE form`);
      env[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
  }
  return { argv, nodeFlags: argv.slice(1, at), script: argv[at]!, env };
}

/**
 * Builds the bundle the way the image's build stage does
 * (`deploy/scripts/bundle.sh OUTDIR`), its compile cache filled by this
 * process's node, which is the one that will run it.
 */
export function buildBundle(out: string): void {
  execFileSync('sh', [join(ROOT, 'deploy/scripts/bundle.sh'), out], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE: process.execPath }, timeout: 60_000 });
}

/**
 * The image's ENV for a container whose /app is `appDir` on this machine
 * (the OUTDIR bundle.sh wrote, which the image copies to /app): a value
 * under /app/ points into `appDir` instead, and is left out when `appDir`
 * lacks it (a bundle built before bundle.sh made a compile cache), so that
 * Node does not create it.
 */
export function imageEnvAt(image: ImageEntrypoint, appDir: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(image.env)) {
    if (v !== '/app' && !v.startsWith('/app/')) env[k] = v;
    else if (existsSync(join(appDir, v.slice('/app'.length)))) env[k] = join(appDir, v.slice('/app'.length));
  }
  return env;
}
