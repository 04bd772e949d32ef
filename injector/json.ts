/**
 * Reading raw Kubernetes JSON without a typed model: fields the injector does
 * not know pass through untouched, and a field of an unexpected shape reads
 * as absent instead of throwing. The one place these helpers live; every
 * injector module takes them from here.
 */

/** A JSON object as it comes off the wire: string keys, values of any shape. */
export type JsonObject = Record<string, unknown>;

/** A JSON value as it comes off the wire. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** `v` when it is a JSON object (not null, not an array), else undefined. */
export function obj(v: unknown): JsonObject | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

/** `v` when it is an array, else an empty array. */
export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/**
 * Structural equality of two JSON values: objects compare by their keys in
 * any order, arrays element by element. `undefined` members count as absent.
 */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  }
  const x = obj(a);
  const y = obj(b);
  if (!x || !y) return false;
  const keys = (o: JsonObject) => Object.keys(o).filter((k) => o[k] !== undefined);
  const kx = keys(x);
  return kx.length === keys(y).length && kx.every((k) => Object.hasOwn(y, k) && jsonEqual(x[k], y[k]));
}
