/**
 * The files of the repository, for tests that check every file of a kind
 * (every YAML document, every README block).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every file under `dir`, depth first, leaving out node_modules and dot entries (.git, .ci's own state). */
export function* repositoryFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* repositoryFiles(p);
    else yield p;
  }
}
