/**
 * Generic YAML loading against a TypeBox schema: parse, apply defaults,
 * validate, run semantic checks, freeze. Every problem is reported as
 * `file:line: field.path: message`, with the line of the YAML node at the
 * failing path (or of its nearest existing parent).
 */
import { LineCounter, parseDocument, isNode, visit, type Document } from 'yaml';
import type { TSchema, Static } from '@sinclair/typebox';
import { Value, type ValueError } from '@sinclair/typebox/value';
import { ErrorCodes, SidecarError } from '../errors.ts';
import { readFileSync } from '../runtime/builtins.ts';

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
  /** 1-based line; 0 when unknown. */
  readonly line: number;
  /** Dotted field path (`spec.rules[0].name`), or `(document)` for the whole file. */
  readonly field: string;
  readonly message: string;
}

/** A SidecarError CONFIG_INVALID that also carries its problems, one per line of its message. */
export class ConfigInvalidError extends SidecarError {
  readonly problems: readonly LocatedProblem[];

  constructor(problems: readonly LocatedProblem[]) {
    super(ErrorCodes.CONFIG_INVALID, problems.map(formatProblem).join('\n'));
    this.problems = problems;
  }
}

/** `file:line: field: message`. */
export function formatProblem(p: LocatedProblem): string {
  return `${p.file}:${p.line}: ${p.field}: ${p.message}`;
}

/** Semantic checks run on a value that passed the schema (defaults applied). */
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

function lineOf(doc: Document, lc: LineCounter, path: readonly (string | number)[]): number {
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
  const schema = e.schema as { anyOf?: { const?: unknown }[]; const?: unknown; pattern?: string };
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
  visit(doc, {
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

/**
 * Parses YAML `text` (named `file` in messages), applies the schema's
 * defaults, validates, runs `check`, and returns the frozen value.
 *
 * @throws ConfigInvalidError (code CONFIG_INVALID) listing every problem.
 */
export function parseYaml<S extends TSchema>(text: string, file: string, schema: S, check?: Checker<Static<S>>): Static<S> {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigInvalidError(
      doc.errors.map((e) => ({ file, line: e.linePos?.[0].line ?? lc.linePos(e.pos[0]).line, field: '(document)', message: `YAML syntax: ${e.message.split('\n')[0]}` })),
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigInvalidError(aliasProblems(doc, lc, file, err));
  }
  if (value === undefined || value === null) {
    throw new ConfigInvalidError([{ file, line: 1, field: '(document)', message: 'the file is empty' }]);
  }
  value = Value.Default(schema, value);
  const problems: LocatedProblem[] = [];
  const seen = new Set<string>();
  for (const e of Value.Errors(schema, value)) {
    const path = pointerToPath(e.path, value);
    const field = fieldPath(path);
    // One problem per field: the first TypeBox reports is the most telling.
    if (seen.has(field)) continue;
    seen.add(field);
    problems.push({ file, line: lineOf(doc, lc, path), field, message: messageOf(e) });
  }
  if (problems.length === 0 && check) {
    for (const p of check(value as Static<S>)) {
      problems.push({ file, line: lineOf(doc, lc, p.path), field: fieldPath(p.path), message: p.message });
    }
  }
  if (problems.length > 0) throw new ConfigInvalidError(problems.sort((a, b) => a.line - b.line));
  return deepFreeze(value as Static<S>);
}

/**
 * Reads `path` and loads it with {@link parseYaml}.
 *
 * @throws SidecarError CONFIG_READ when the file cannot be read (the fs error as cause);
 *   CONFIG_INVALID when it does not validate.
 */
export function loadYamlFile<S extends TSchema>(path: string, schema: S, check?: Checker<Static<S>>): Static<S> {
  return parseYaml(readTextFile(path), path, schema, check);
}

/** Reads a UTF-8 file, turning fs errors into SidecarError CONFIG_READ. */
export function readTextFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    // The fs error (ENOENT, EACCES, EISDIR…) is the cause; describeError prints both.
    throw new SidecarError(ErrorCodes.CONFIG_READ, `reading ${path}`, { cause: err });
  }
}
