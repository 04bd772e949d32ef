/**
 * Generic YAML loading against a TypeBox schema: parse, apply defaults,
 * validate, run semantic checks, freeze. Every problem is reported as
 * `file:line: field.path: message`, with the line of the YAML node at the
 * failing path (or of its nearest existing parent).
 *
 * Two paths: a valid file of plain YAML goes the quick one (quick-yaml.ts,
 * js-yaml); anything else, every invalid file included, the precise one with
 * the `yaml` library, which knows each node's line and gives every message.
 * `yaml` is loaded on the precise path's first use, not at start-up
 * (test/bench/README.md, "Start-up and idle memory").
 */
import { createRequire } from 'node:module';
import type { Document, LineCounter } from 'yaml';
import type { TSchema, Static } from '@sinclair/typebox';
import type { ValueError } from '@sinclair/typebox/value';
import { Value } from './typebox.ts';
import { ErrorCodes, SidecarError, type ErrorCode } from '../errors.ts';
import { readFileSync } from '../runtime/builtins.ts';
import { applyDefaults } from './defaults.ts';
import { blockYamlValue } from './block-yaml.ts';
import { quickYamlValue } from './quick-yaml.ts';

let yamlLibrary: typeof import('yaml') | undefined;

/**
 * The `yaml` library, loaded on the first call. Synchronously, so that
 * parseYaml stays synchronous: from source through a require of the
 * package; in the esbuild bundle the free `require` call is bundled, and
 * runs `yaml`'s bundled module code only now (esbuild's lazy `__commonJS`).
 */
function yaml(): typeof import('yaml') {
  return (yamlLibrary ??= typeof require === 'function' ? (require('yaml') as typeof import('yaml')) : (createRequire(import.meta.url)('yaml') as typeof import('yaml')));
}

/** One semantic problem found in a schema-valid value. */
export interface Problem {
  /** Path of the offending field from the document root, e.g. `['spec', 'rules', 0, 'name']`. */
  readonly path: readonly (string | number)[];
  /** What is wrong, in words a user can act on. */
  readonly message: string;
}

/** A located problem, as listed in a CONFIG_INVALID message. */
export interface LocatedProblem {
  readonly file: string;
  /** 1-based line; 0 when the problem has no line (the file cannot be read). */
  readonly line: number;
  /** Dotted field path (`spec.rules[0].name`), `(document)` for the whole document, `(file)` for the file itself. */
  readonly field: string;
  readonly message: string;
}

/**
 * A SidecarError that carries the located problems of a configuration file,
 * one per line of its message: CONFIG_INVALID for what the file says
 * ({@link ConfigReadError}, a subclass, is CONFIG_READ: the file cannot be read).
 */
export class ConfigInvalidError extends SidecarError {
  readonly problems: readonly LocatedProblem[];

  constructor(problems: readonly LocatedProblem[], code: ErrorCode = ErrorCodes.CONFIG_INVALID, options?: { cause?: unknown }) {
    super(code, problems.map(formatProblem).join('\n'), options);
    this.problems = problems;
  }
}

/** Why a file cannot be read, in words, from the fs error's code. */
function unreadable(err: unknown): string {
  switch ((err as NodeJS.ErrnoException | undefined)?.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'a directory, not a file';
    default:
      return (err as Error | undefined)?.message ?? String(err);
  }
}

/**
 * A configuration file that cannot be read (missing, unreadable, a
 * directory): SidecarError CONFIG_READ with the fs error as its cause and
 * one problem, `file: (file): cannot be read: …`, which has no line.
 */
export class ConfigReadError extends ConfigInvalidError {
  constructor(file: string, cause: unknown) {
    super([{ file, line: 0, field: '(file)', message: `cannot be read: ${unreadable(cause)}` }], ErrorCodes.CONFIG_READ, { cause });
  }
}

/** `file:line: field: message`, or `file: field: message` for a problem without a line. */
export function formatProblem(p: LocatedProblem): string {
  return p.line > 0 ? `${p.file}:${p.line}: ${p.field}: ${p.message}` : `${p.file}: ${p.field}: ${p.message}`;
}

/**
 * Semantic checks run on a parsed value (defaults applied). They run even
 * when the schema found problems, so that one look at a file shows all of
 * them: a checker must not assume the value has the schema's shape where
 * the schema failed (it may skip those parts; if it throws, its problems are
 * left out).
 */
export type Checker<T> = (value: T) => Problem[];

/** Dotted form of a path: `spec.rules[0].name`. */
export function fieldPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out === '' ? '(document)' : out;
}

function pointerToPath(pointer: string, value: unknown): (string | number)[] {
  if (pointer === '' || pointer === '/') return [];
  const out: (string | number)[] = [];
  let cur: unknown = value;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const key: string | number = Array.isArray(cur) && /^\d+$/.test(seg) ? Number(seg) : seg;
    out.push(key);
    cur = cur !== null && typeof cur === 'object' ? (cur as Record<string | number, unknown>)[key] : undefined;
  }
  return out;
}

/** The 1-based line of the YAML node at `path` in `doc`, or of its nearest existing parent (1 when none has a position). */
export function lineOf(doc: Document, lc: LineCounter, path: readonly (string | number)[]): number {
  const { isNode } = yaml();
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
    // A key whose value is null has no value node: find the pair's key.
    if (n > 0) {
      const parent = n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true);
      const items = (parent as { items?: { key?: unknown }[] } | undefined)?.items;
      const pair = items?.find((it) => isNode(it?.key) && (it.key as { value?: unknown }).value === path[n - 1]);
      const key = pair?.key;
      if (isNode(key) && key.range) return lc.linePos(key.range[0]).line;
    }
  }
  return 1;
}

function messageOf(e: ValueError): string {
  if (e.value === undefined) return 'is required';
  const schema = e.schema as { anyOf?: { const?: unknown }[]; const?: unknown; pattern?: string; maxItems?: number };
  if (schema.maxItems !== undefined && Array.isArray(e.value) && e.value.length > schema.maxItems) {
    return `holds ${e.value.length} entries, more than the ${schema.maxItems} allowed`;
  }
  if (schema.anyOf && schema.anyOf.every((s) => s.const !== undefined)) {
    return `must be one of ${schema.anyOf.map((s) => JSON.stringify(s.const)).join(', ')}`;
  }
  if (schema.const !== undefined) return `must be ${JSON.stringify(schema.const)}`;
  if (e.message === 'Expected required property') return 'is required';
  if (e.message === 'Unexpected property') return 'is not a known field';
  if (schema.pattern !== undefined && e.message.startsWith('Expected string to match')) return `must match ${schema.pattern}`;
  return e.message.charAt(0).toLowerCase() + e.message.slice(1);
}

/**
 * Problems for aliases that resolve to nothing. The usual cause is an
 * unquoted glob: YAML reads `- *.example.com` as an alias named `.example.com`.
 */
function aliasProblems(doc: Document, lc: LineCounter, file: string, err: unknown): LocatedProblem[] {
  const out: LocatedProblem[] = [];
  yaml().visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) !== undefined) return;
      out.push({
        file,
        line: node.range ? lc.linePos(node.range[0]).line : 1,
        field: '(document)',
        message: `YAML reads *${node.source} as an alias: quote a glob that starts with "*" ("*${node.source}")`,
      });
    },
  });
  if (out.length === 0) out.push({ file, line: 1, field: '(document)', message: `YAML: ${(err as Error).message}` });
  return out;
}

/** Freezes a plain value and everything it holds; returns it. */
export function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

/** Whether a document of a YAML stream holds nothing (an empty stream part, or one after a trailing `---`). */
function emptyDocument(doc: Document): boolean {
  const c = doc.contents;
  return c === null || (yaml().isScalar(c) && c.value === null && c.source === '' && doc.errors.length === 0);
}

/**
 * Parses YAML `text` (named `file` in messages), applies the schema's
 * defaults, validates, runs `check`, and returns the frozen value. The text
 * holds one YAML document (empty ones around it, a trailing `---` say, do
 * not count). Tries {@link parseYamlQuick} first, then {@link parseYamlPrecise}.
 *
 * @throws ConfigInvalidError (code CONFIG_INVALID) listing every problem.
 */
export function parseYaml<S extends TSchema>(text: string, file: string, schema: S, check?: Checker<Static<S>>): Static<S> {
  return parseYamlQuick(text, schema, check) ?? parseYamlPrecise(text, file, schema, check);
}

/**
 * The quick path of {@link parseYaml}: the frozen value when `text` is one
 * plain YAML document (quick-yaml.ts) that the schema and `check` accept
 * without a problem; undefined in every other case, a checker that throws
 * included.
 */
export function parseYamlQuick<S extends TSchema>(text: string, schema: S, check?: Checker<Static<S>>): Static<S> | undefined {
  const parsed = blockYamlValue(text) ?? quickYamlValue(text);
  if (parsed === undefined) return undefined;
  try {
    const value: unknown = applyDefaults(schema, parsed);
    if (!Value.Check(schema, value)) return undefined;
    if (check && check(value as Static<S>).length > 0) return undefined;
    return deepFreeze(value as Static<S>);
  } catch {
    return undefined;
  }
}

/**
 * The precise path of {@link parseYaml}, with the `yaml` library: the same
 * value, or every problem with its line.
 *
 * @throws ConfigInvalidError (code CONFIG_INVALID) listing every problem.
 */
export function parseYamlPrecise<S extends TSchema>(text: string, file: string, schema: S, check?: Checker<Static<S>>): Static<S> {
  const { LineCounter, parseAllDocuments } = yaml();
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const all = Array.isArray(docs) ? docs : [];
  const filled = all.filter((d) => !emptyDocument(d));
  if (filled.length > 1) {
    throw new ConfigInvalidError([
      {
        file,
        line: lc.linePos(filled[1]!.range[0]).line,
        field: '(document)',
        message: `the file holds ${filled.length} YAML documents; it must hold exactly one (the second starts here)`,
      },
    ]);
  }
  const doc = filled[0] ?? all[0];
  if (doc && doc.errors.length > 0) {
    throw new ConfigInvalidError(
      doc.errors.map((e) => ({ file, line: e.linePos?.[0].line ?? lc.linePos(e.pos[0]).line, field: '(document)', message: `YAML syntax: ${e.message.split('\n')[0]}` })),
    );
  }
  let value: unknown;
  try {
    value = doc?.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigInvalidError(aliasProblems(doc!, lc, file, err));
  }
  if (value === undefined || value === null) {
    throw new ConfigInvalidError([{ file, line: 1, field: '(document)', message: 'the file is empty' }]);
  }
  value = applyDefaults(schema, value);
  const problems: LocatedProblem[] = [];
  const seen = new Set<string>();
  for (const e of Value.Errors(schema, value)) {
    const path = pointerToPath(e.path, value);
    const field = fieldPath(path);
    // One problem per field: the first TypeBox reports is the most telling.
    if (seen.has(field)) continue;
    seen.add(field);
    problems.push({ file, line: lineOf(doc!, lc, path), field, message: messageOf(e) });
  }
  if (check) {
    let found: Problem[] = [];
    try {
      found = check(value as Static<S>);
    } catch {
      // The value is not of the schema's shape where the checker looked: the schema's problems say so.
    }
    for (const p of found) {
      const field = fieldPath(p.path);
      if (seen.has(field)) continue;
      problems.push({ file, line: lineOf(doc!, lc, p.path), field, message: p.message });
    }
  }
  if (problems.length > 0) throw new ConfigInvalidError(problems.sort((a, b) => a.line - b.line));
  return deepFreeze(value as Static<S>);
}

/**
 * Reads `path` and loads it with {@link parseYaml}.
 *
 * @throws ConfigReadError (CONFIG_READ) when the file cannot be read (the fs error as cause);
 *   ConfigInvalidError (CONFIG_INVALID) when it does not validate.
 */
export function loadYamlFile<S extends TSchema>(path: string, schema: S, check?: Checker<Static<S>>): Static<S> {
  return parseYaml(readTextFile(path), path, schema, check);
}

/** Reads a UTF-8 file, turning fs errors into a {@link ConfigReadError} (CONFIG_READ). */
export function readTextFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    // The fs error (ENOENT, EACCES, EISDIR…) is the cause; describeError prints both.
    throw new ConfigReadError(path, err);
  }
}
