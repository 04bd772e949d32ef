/**
 * Convention: the READMEs show the CLI as it runs from a checkout, `npx
 * tenant-dns …` (after `npm ci` the package's bin is in node_modules/.bin,
 * not on PATH). A shell line in a code block that starts a bare `tenant-dns`
 * command (first, after `$ `, a pipe, `&&` or `sudo … exec NAME`) is an error.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Every README.md of the repository, outside node_modules and dot folders. */
function readmes(): string[] {
  return readdirSync(ROOT, { recursive: true, encoding: 'utf8' })
    .filter((f) => /(^|\/)README\.md$/.test(f) && !/(^|\/)(node_modules|\.[^/]+)\//.test(f))
    .sort();
}

/** The lines of a Markdown text's fenced code blocks whose info string names a shell (sh, bash, console, shell; diagrams have none). */
export function shellLines(markdown: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let shell: boolean | undefined;
  markdown.split('\n').forEach((text, i) => {
    const fence = /^\s*```\s*(\S*)/.exec(text);
    if (fence) {
      shell = shell === undefined ? ['sh', 'bash', 'console', 'shell'].includes(fence[1]!) : undefined;
      return;
    }
    if (shell) out.push({ line: i + 1, text });
  });
  return out;
}

/** A bare `tenant-dns` where a shell expects a command: line start, after a prompt, a pipe, `&&`, `;` or `exec NAME`. */
const BARE = /(^\s*(\$\s+)?|[|;&]\s*|\bexec\s+\S+\s+)tenant-dns\s/;

test('meta readme commands: the shell-line check finds a bare tenant-dns and passes npx tenant-dns', () => {
  const lines = shellLines('```sh\ntenant-dns sidecar\nnpx tenant-dns sidecar\nkubectl get x | tenant-dns inject -f -\n```\n```\ntenant-dns sidecar ─▶ diagram\n```\n');
  assert.deepEqual(lines.filter((l) => BARE.test(l.text)).map((l) => l.line), [2, 4]);
});

test('meta readme commands: no README shows a bare `tenant-dns …` to run from a checkout', () => {
  const files = readmes();
  assert.ok(files.includes('README.md') && files.length > 5, files.join(' '));
  const bare = files.flatMap((f) => shellLines(readFileSync(join(ROOT, f), 'utf8')).filter((l) => BARE.test(l.text)).map((l) => `${f}:${l.line}: ${l.text}`));
  assert.deepEqual(bare, [], 'write these as `npx tenant-dns …`');
});
