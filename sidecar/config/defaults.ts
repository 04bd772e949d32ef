/**
 * A TypeBox schema's defaults applied to a value in one pass: what
 * `Value.Default` does, whose object visitor visits every property twice
 * (once to see whether it yields a value, once to assign it), so that a
 * value nested n objects deep is visited 2^n times. On the bench's policy
 * that made `Value.Default` cost as much as parsing the YAML
 * (test/bench/README.md, "Start-up and idle memory"). Schemas of other kinds
 * than those below (references, intersections, tuples, unions holding
 * objects or arrays) go to `Value.Default` whole.
 * test/sidecar/config/defaults.test.ts checks both give the same value.
 */
import type { TSchema } from '@sinclair/typebox';
import { Kind, Value } from './typebox.ts';

/** Kinds without anything inside: their default is their only one. A union qualifies when every member is one of them without a default. */
const SCALAR = new Set(['String', 'Number', 'Integer', 'Boolean', 'Literal', 'Null', 'Any', 'Unknown', 'BigInt']);

type Schema = TSchema & { readonly [Kind]: string; readonly default?: unknown };

const supportedCache = new WeakMap<object, boolean>();

function isKind(s: unknown): s is Schema {
  return s !== null && typeof s === 'object' && Kind in s && typeof (s as Record<symbol, unknown>)[Kind] === 'string';
}

/** Whether every schema in `s` is of a kind {@link visit} applies exactly as `Value.Default` does. */
function supported(s: Schema): boolean {
  const known = supportedCache.get(s);
  if (known !== undefined) return known;
  // `$id`s only matter to references, and no kind with one (Ref, This, Import) is supported.
  let ok = true;
  const kind = s[Kind];
  if (kind === 'Object') {
    const o = s as unknown as { properties: Record<string, Schema>; additionalProperties?: unknown };
    ok = Object.values(o.properties).every(supported) && (!isKind(o.additionalProperties) || supported(o.additionalProperties));
  } else if (kind === 'Array') ok = supported((s as unknown as { items: Schema }).items);
  else if (kind === 'Record') {
    const r = s as unknown as { patternProperties: Record<string, Schema>; additionalProperties?: unknown };
    ok = Object.values(r.patternProperties).every(supported) && (!isKind(r.additionalProperties) || supported(r.additionalProperties));
  } else if (kind === 'Union') ok = (s as unknown as { anyOf: Schema[] }).anyOf.every((m) => isKind(m) && SCALAR.has(m[Kind]) && !('default' in m));
  else ok = SCALAR.has(kind);
  supportedCache.set(s, ok);
  return ok;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object';
}

/** TypeBox's ValueOrDefault: the value, or a copy of the default when it is undefined; an object default under an object value. */
function valueOrDefault(schema: Schema, value: unknown): unknown {
  const def = 'default' in schema ? schema.default : undefined;
  const copy = typeof def === 'function' ? (def as () => unknown)() : Value.Clone(def);
  return value === undefined ? copy : isObject(value) && isObject(copy) ? Object.assign(copy, value) : value;
}

function hasDefault(s: unknown): s is Schema {
  return isKind(s) && 'default' in s;
}

function visit(schema: Schema, value: unknown): unknown {
  switch (schema[Kind]) {
    case 'Array': {
      const items = (schema as unknown as { items: Schema }).items;
      const arr = Array.isArray(value) && !ArrayBuffer.isView(value) ? value : valueOrDefault(schema, value);
      if (!Array.isArray(arr) || ArrayBuffer.isView(arr)) return arr;
      for (let i = 0; i < arr.length; i++) arr[i] = visit(items, arr[i]);
      return arr;
    }
    case 'Object': {
      const o = schema as unknown as { properties: Record<string, Schema>; additionalProperties?: unknown };
      const out = valueOrDefault(schema, value);
      if (!isObject(out)) return out;
      const known = Object.getOwnPropertyNames(o.properties);
      for (const key of known) {
        const v = visit(o.properties[key]!, out[key]);
        if (v !== undefined) out[key] = v;
      }
      if (!hasDefault(o.additionalProperties)) return out;
      for (const key of Object.getOwnPropertyNames(out)) if (!known.includes(key)) out[key] = visit(o.additionalProperties, out[key]);
      return out;
    }
    case 'Record': {
      const r = schema as unknown as { patternProperties: Record<string, Schema>; additionalProperties?: unknown };
      const out = valueOrDefault(schema, value);
      if (!isObject(out)) return out;
      const [pattern, inner] = Object.entries(r.patternProperties)[0]!;
      const keyMatches = new RegExp(pattern);
      for (const key of Object.getOwnPropertyNames(out)) if (keyMatches.test(key) && hasDefault(inner)) out[key] = visit(inner, out[key]);
      if (!hasDefault(r.additionalProperties)) return out;
      for (const key of Object.getOwnPropertyNames(out)) if (!keyMatches.test(key)) out[key] = visit(r.additionalProperties, out[key]);
      return out;
    }
    // A union of scalars: each member's visit returns a copy of the value (scalars have no defaults inside),
    // so whichever member accepts it, the result is the union's own value or default.
    default:
      return valueOrDefault(schema, value);
  }
}

/**
 * `Value.Default(schema, value)`, in one pass where the schema allows it
 * (the module comment). Mutates `value` as `Value.Default` does; use the
 * result.
 */
export function applyDefaults(schema: TSchema, value: unknown): unknown {
  return isKind(schema) && supported(schema) ? visit(schema, value) : Value.Default(schema, value);
}
