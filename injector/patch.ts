/**
 * JSON Patch (RFC 6902) building on raw JSON: no typed model in between, so
 * fields the injector does not know survive. A {@link PatchBuilder} keeps a
 * working copy of the document and applies each operation it emits to it, so
 * later operations see earlier ones, missing parents are added before their
 * children, and setting a value that is already there emits nothing (which
 * makes a second injection a no-op). Pure: no I/O.
 */
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import { jsonEqual, obj } from './json.ts';

/** One RFC 6902 operation (the subset the injector emits, plus test/remove for applying). */
export type PatchOperation =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'test'; path: string; value: unknown };

/** Escapes one JSON Pointer reference token (RFC 6901 §3: `~` → `~0`, `/` → `~1`). */
export function escapePointerToken(token: string | number): string {
  return String(token).replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Unescapes one JSON Pointer reference token. */
export function unescapePointerToken(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** Builds a JSON Pointer from path segments. */
export function pointer(segments: readonly (string | number)[]): string {
  return segments.map((s) => '/' + escapePointerToken(s)).join('');
}

function fail(message: string): never {
  throw new InjectorError(InjectorErrorCodes.PATCH_FAILED, message);
}

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) fail(`applying patch: pointer ${JSON.stringify(path)} does not start with /`);
  return path.slice(1).split('/').map(unescapePointerToken);
}

function arrayIndex(arr: unknown[], token: string, forAdd: boolean, path: string): number {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) fail(`applying patch at ${path}: ${JSON.stringify(token)} is not an array index`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) fail(`applying patch at ${path}: index ${i} out of range`);
  return i;
}

/**
 * Applies RFC 6902 operations to `doc` in place (add, replace, remove, test)
 * and returns the resulting document (a new root for a whole-document add or
 * replace). Throws an InjectorError on a bad pointer or a failed test.
 */
export function applyPatch(doc: unknown, ops: readonly PatchOperation[]): unknown {
  let root = doc;
  for (const op of ops) {
    const tokens = parsePointer(op.path);
    if (tokens.length === 0) {
      if (op.op === 'add' || op.op === 'replace') root = structuredClone(op.value);
      else if (op.op === 'test') {
        if (!jsonEqual(root, op.value)) fail(`applying patch: test at / failed`);
      } else fail('applying patch: cannot remove the whole document');
      continue;
    }
    let parent: unknown = root;
    for (const t of tokens.slice(0, -1)) {
      const o = obj(parent);
      if (Array.isArray(parent)) parent = parent[arrayIndex(parent, t, false, op.path)];
      else if (o && Object.hasOwn(o, t)) parent = o[t];
      else fail(`applying patch at ${op.path}: parent ${JSON.stringify(t)} does not exist`);
    }
    const last = tokens[tokens.length - 1];
    const object = obj(parent);
    if (Array.isArray(parent)) {
      const i = arrayIndex(parent, last, op.op === 'add', op.path);
      if (op.op === 'add') parent.splice(i, 0, structuredClone(op.value));
      else if (op.op === 'replace') parent[i] = structuredClone(op.value);
      else if (op.op === 'remove') parent.splice(i, 1);
      else if (!jsonEqual(parent[i], op.value)) fail(`applying patch: test at ${op.path} failed`);
    } else if (object) {
      const exists = Object.hasOwn(object, last);
      if (op.op === 'add') object[last] = structuredClone(op.value);
      else if (!exists) fail(`applying patch at ${op.path}: ${JSON.stringify(last)} does not exist`);
      else if (op.op === 'replace') object[last] = structuredClone(op.value);
      else if (op.op === 'remove') delete object[last];
      else if (!jsonEqual(object[last], op.value)) fail(`applying patch: test at ${op.path} failed`);
    } else {
      fail(`applying patch at ${op.path}: parent is not a container`);
    }
  }
  return root;
}

/**
 * A copy of `o`'s own enumerable properties: a loop over its keys, about twice
 * as fast as a spread for the large dictionaries JSON.parse makes (50,000
 * annotations: 34 vs 66 ms), with a `__proto__` key defined as data, never set.
 */
function shallowCopy(o: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const k of Object.keys(o)) {
    if (k === '__proto__') Object.defineProperty(copy, k, { value: o[k], enumerable: true, writable: true, configurable: true });
    else copy[k] = o[k];
  }
  return copy;
}

/**
 * Emits RFC 6902 operations against a working copy of a document. Paths are
 * given as segment arrays and escaped here.
 */
export class PatchBuilder {
  /**
   * The working copy: the original with every emitted operation applied.
   * Copy on write: it shares the subtrees no operation has touched with the
   * original (which is never changed), so a pod with a large spec or many
   * annotations costs shallow copies of the objects on the patched paths, not
   * a deep copy of the whole pod (test/bench/README.md, "Injector under a
   * connection flood"). Read it, never change it.
   */
  readonly doc: Record<string, unknown>;
  readonly #ops: PatchOperation[] = [];
  /** The objects and arrays of `doc` that are the builder's own copies, safe to change. */
  readonly #owned = new WeakSet<object>();

  constructor(original: Record<string, unknown>) {
    this.doc = { ...original };
    this.#owned.add(this.doc);
  }

  /** Replaces every object and array on the way to the parent of `path` by a shallow copy of its own, once. */
  #own(path: string): void {
    let cur: Record<string, unknown> | unknown[] = this.doc;
    const tokens = parsePointer(path);
    for (const t of tokens.slice(0, -1)) {
      const key = Array.isArray(cur) ? Number(t) : t;
      const child = (cur as Record<string | number, unknown>)[key];
      if (child === null || typeof child !== 'object') return; // applyPatch names the bad path
      let own = child as Record<string, unknown> | unknown[];
      if (!this.#owned.has(own)) {
        own = Array.isArray(own) ? own.slice() : shallowCopy(own);
        (cur as Record<string | number, unknown>)[key] = own;
        this.#owned.add(own);
      }
      cur = own;
    }
  }

  /** The operations emitted so far, in order. */
  get operations(): readonly PatchOperation[] {
    return this.#ops;
  }

  #emit(op: PatchOperation): void {
    this.#own(op.path);
    applyPatch(this.doc, [op]);
    this.#ops.push(op);
  }

  /** The value at `path` in the working copy, or undefined. */
  get(path: readonly (string | number)[]): unknown {
    let cur: unknown = this.doc;
    for (const seg of path) {
      const o = obj(cur);
      if (Array.isArray(cur) && typeof seg === 'number') cur = cur[seg];
      else if (o && Object.hasOwn(o, String(seg))) cur = o[String(seg)];
      else return undefined;
    }
    return cur;
  }

  /** Adds empty objects for every missing object parent of `path` (not the last segment). */
  ensureParents(path: readonly (string | number)[]): void {
    for (let n = 1; n < path.length; n++) {
      const prefix = path.slice(0, n);
      const v = this.get(prefix);
      if (v === undefined || v === null) {
        this.#emit({ op: v === null ? 'replace' : 'add', path: pointer(prefix), value: {} });
      } else if (typeof v !== 'object') {
        fail(`patching ${pointer(prefix)}: expected an object, found ${typeof v}`);
      }
    }
  }

  /** Sets `path` to `value`, adding parents first; emits nothing when the value is already there. */
  set(path: readonly (string | number)[], value: unknown): void {
    const current = this.get(path);
    if (current !== undefined && jsonEqual(current, value)) return;
    this.ensureParents(path);
    this.#emit({ op: current === undefined ? 'add' : 'replace', path: pointer(path), value: structuredClone(value) });
  }

  /** Inserts `value` at `index` of the array at `path`, creating the array (and parents) when missing. */
  insert(path: readonly (string | number)[], index: number, value: unknown): void {
    const arr = this.get(path);
    if (arr === undefined || arr === null) {
      this.ensureParents(path);
      this.#emit({ op: arr === null ? 'replace' : 'add', path: pointer(path), value: [structuredClone(value)] });
      return;
    }
    if (!Array.isArray(arr)) fail(`patching ${pointer(path)}: expected an array`);
    this.#emit({ op: 'add', path: pointer([...path, index]), value: structuredClone(value) });
  }

  /** Appends `value` to the array at `path` (`/-`), creating the array (and parents) when missing. */
  append(path: readonly (string | number)[], value: unknown): void {
    const arr = this.get(path);
    if (arr === undefined || arr === null) {
      this.insert(path, 0, value);
      return;
    }
    if (!Array.isArray(arr)) fail(`patching ${pointer(path)}: expected an array`);
    this.#emit({ op: 'add', path: pointer(path) + '/-', value: structuredClone(value) });
  }
}
