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
