/**
 * How the image starts tenant-dns (ENTRYPOINT and the runtime stage's ENV),
 * read from Dockerfile.sidecar, so the tests and the benchmark run the
 * bundle exactly as a pod does.
 */
import { readFileSync } from 'node:fs';
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
