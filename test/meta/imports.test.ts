/**
 * Convention: the module structure of sidecar/, injector/, gateway/ and bin/.
 * The injector's and the gateway's modules import one another without a
 * cycle (type-only imports count: a cycle of types is still two modules that
 * cannot be read apart), the sidecar imports nothing from the injector, and
 * neither imports from the gateway (the sidecar image starts `tenant-dns
 * sidecar`; the commands are put together in bin/). Imports are
 * read with TypeScript's own pre-processor (static imports, `export … from`,
 * and `import('…')` with a literal path), relative paths to .ts files only.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dirname, join, posix, relative, sep } from 'node:path';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FOLDERS = ['sidecar', 'injector', 'gateway', 'bin'];

function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => posix.join(folder, f.split(sep).join('/')));
}

/** Every module (repository-relative path) → the repository .ts modules it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of FOLDERS.flatMap(sources)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(join(ROOT, file), 'utf8'), true, true);
    const targets = importedFiles
      .map((i) => i.fileName)
      .filter((spec) => spec.startsWith('./') || spec.startsWith('../'))
      .filter((spec) => spec.endsWith('.ts'))
      .map((spec) => relative(ROOT, join(ROOT, dirname(file), spec)).split(sep).join('/'))
      .filter((target) => existsSync(join(ROOT, target)));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** The cycles among `nodes` (each reported once, as a path that starts and ends at the same module). */
function cycles(graph: Map<string, string[]>, nodes: ReadonlySet<string>): string[][] {
  const found: string[][] = [];
  const seen = new Set<string>();
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (n: string) => {
    seen.add(n);
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (!nodes.has(m)) continue;
      if (!seen.has(m)) visit(m);
      else if (!done.has(m)) found.push([...stack.slice(stack.indexOf(m)), m]);
    }
    stack.pop();
    done.add(n);
  };
  for (const n of [...nodes].sort()) if (!seen.has(n)) visit(n);
  return found;
}

const graph = importGraph();

test('meta imports: the import graph is read (known edges of each folder are found)', () => {
  assert.ok(graph.get('injector/mutate.ts')?.includes('injector/patch.ts'), 'injector/mutate.ts → injector/patch.ts not found');
  assert.ok(graph.get('sidecar/server.ts')?.includes('sidecar/route/classify.ts'), 'sidecar/server.ts → sidecar/route/classify.ts not found');
  assert.ok((graph.get('bin/tenant-dns.ts') ?? []).length > 0, 'bin/tenant-dns.ts imports nothing');
});

test('meta imports: no import cycle within injector/', () => {
  const injector = new Set([...graph.keys()].filter((f) => f.startsWith('injector/')));
  const found = cycles(graph, injector).map((c) => c.join(' → '));
  assert.deepEqual(found, [], `import cycles in injector/:\n${found.join('\n')}`);
});

test('meta imports: sidecar/ imports nothing from injector/', () => {
  const found = [...graph].flatMap(([from, targets]) =>
    from.startsWith('sidecar/') ? targets.filter((t) => t.startsWith('injector/')).map((t) => `${from} → ${t}`) : [],
  );
  assert.deepEqual(found, [], `sidecar/ imports from injector/:\n${found.join('\n')}`);
});

test('meta imports: no import cycle within gateway/; sidecar/ and injector/ import nothing from it', () => {
  const gateway = new Set([...graph.keys()].filter((f) => f.startsWith('gateway/')));
  assert.ok(gateway.has('gateway/server.ts'), 'gateway/ is read');
  const found = cycles(graph, gateway).map((c) => c.join(' → '));
  assert.deepEqual(found, [], `import cycles in gateway/:\n${found.join('\n')}`);
  const into = [...graph].flatMap(([from, targets]) =>
    from.startsWith('sidecar/') || from.startsWith('injector/') ? targets.filter((t) => t.startsWith('gateway/')).map((t) => `${from} → ${t}`) : [],
  );
  assert.deepEqual(into, [], `imports of gateway/:\n${into.join('\n')}`);
});

test('meta imports: the bundled code takes TypeBox values only through sidecar/config/typebox.ts', () => {
  // A value import of TypeBox's `Type` or `Value` namespace anywhere in the bundle puts all of TypeBox (about
  // 125 KB more source) back into the sidecar's start-up chunks (test/bench/README.md, "Marginal memory").
  const offenders: string[] = [];
  for (const file of FOLDERS.flatMap(sources)) {
    if (file === 'sidecar/config/typebox.ts') continue;
    for (const m of readFileSync(join(ROOT, file), 'utf8').matchAll(/^import\s+(type\s+)?[^;]*?from\s+'(@sinclair\/typebox[^']*)'/gms)) {
      if (!m[1]) offenders.push(`${file}: ${m[2]}`);
    }
  }
  assert.deepEqual(offenders, []);
});
