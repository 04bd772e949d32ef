/**
 * Structural-schema handling of the stand-in API server, as kube-apiserver
 * does it for custom resources: unknown fields are pruned (and reported per
 * the request's `fieldValidation`: Strict is a 400 "strict decoding error",
 * Warn a Warning header, Ignore nothing), `default`s are applied, and the
 * object is validated against the CRD's openAPIV3Schema (with ajv) into 422
 * causes worded like the real server's. Built-in kinds get a small pruning
 * schema of their top-level fields. CEL rules (`x-kubernetes-validations`)
 * and formats are not evaluated.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { obj, type JsonObject } from '../../../injector/json.ts';
import type { ResourceType } from './resources.ts';
import type { StatusCause } from './status.ts';

/** The `fieldValidation` query parameter; kube-apiserver's default is Warn. */
export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

const OBJECT_META = new Set([
  'name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields',
]);

const preserve = { 'x-kubernetes-preserve-unknown-fields': true };
const stringMap = { type: 'object', additionalProperties: { type: 'string' } };

/** Pruning schemas of the built-in kinds: their top-level fields, below which anything is kept. */
const BUILTIN: Record<string, JsonObject> = {
  ConfigMap: { type: 'object', properties: { data: stringMap, binaryData: stringMap, immutable: { type: 'boolean' } } },
  Namespace: { type: 'object', properties: { spec: { type: 'object', properties: { finalizers: { type: 'array', items: { type: 'string' } } } }, status: { type: 'object', ...preserve } } },
  Lease: {
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        properties: {
          holderIdentity: { type: 'string' }, leaseDurationSeconds: { type: 'integer' }, acquireTime: { type: 'string' },
          renewTime: { type: 'string' }, leaseTransitions: { type: 'integer' }, strategy: { type: 'string' }, preferredHolder: { type: 'string' },
        },
      },
    },
  },
};

/** The schema an object of `rt` is pruned and checked against, if any. */
export function schemaOf(rt: ResourceType): JsonObject | undefined {
  if (rt.custom) return rt.schema;
  return BUILTIN[rt.kind];
}

function prune(value: unknown, schema: JsonObject | undefined, path: string, unknown: string[]): void {
  if (!schema || schema['x-kubernetes-preserve-unknown-fields'] === true && !schema.properties) return;
  if (Array.isArray(value)) {
    const items = obj(schema.items);
    value.forEach((v, i) => prune(v, items, `${path}[${i}]`, unknown));
    return;
  }
  const o = obj(value);
  if (!o) return;
  const props = obj(schema.properties);
  const additional = obj(schema.additionalProperties);
  for (const key of Object.keys(o)) {
    const child = `${path ? `${path}.` : ''}${key}`;
    if (props && Object.hasOwn(props, key)) prune(o[key], obj(props[key]), child, unknown);
    else if (additional) prune(o[key], additional, child, unknown);
    else if (schema['x-kubernetes-preserve-unknown-fields'] === true || schema.additionalProperties === true) continue;
    else {
      unknown.push(child);
      delete o[key];
    }
  }
}

/**
 * Removes from `o` (in place) every field its schema does not declare, and
 * metadata fields ObjectMeta does not have; returns their paths
 * (`spec.foo`, `metadata.bar`). apiVersion, kind and metadata are always kept.
 */
export function pruneUnknown(rt: ResourceType, o: JsonObject): string[] {
  const unknown: string[] = [];
  const meta = obj(o.metadata);
  for (const key of Object.keys(meta ?? {})) {
    if (!OBJECT_META.has(key)) {
      unknown.push(`metadata.${key}`);
      delete meta![key];
    }
  }
  const schema = schemaOf(rt);
  if (!schema) return unknown;
  const root = { ...schema, properties: { ...(obj(schema.properties) ?? {}), apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object', ...preserve } } };
  prune(o, root, '', unknown);
  return unknown;
}

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, useDefaults: true });
const compiled = new WeakMap<object, ValidateFunction>();

function fieldPath(data: unknown, instancePath: string): string {
  let out = '';
  let cur: unknown = data;
  for (const raw of instancePath.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      out += `[${part}]`;
      cur = cur[Number(part)];
    } else {
      out += out ? `.${part}` : part;
      cur = obj(cur)?.[part];
    }
  }
  return out;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function valueAt(data: unknown, instancePath: string): unknown {
  let cur = data;
  for (const raw of instancePath.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    cur = Array.isArray(cur) ? cur[Number(part)] : obj(cur)?.[part];
  }
  return cur;
}

function cause(data: unknown, e: ErrorObject): StatusCause {
  const field = fieldPath(data, e.instancePath);
  const v = valueAt(data, e.instancePath);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required': {
      const f = `${field ? `${field}.` : ''}${String(p.missingProperty)}`;
      return { reason: 'FieldValueRequired', field: f, message: 'Required value' };
    }
    case 'type':
      return { reason: 'FieldValueTypeInvalid', field, message: `Invalid value: "${typeName(v)}": ${field} in body must be of type ${String(p.type)}: "${typeName(v)}"` };
    case 'enum':
      return { reason: 'FieldValueNotSupported', field, message: `Unsupported value: ${JSON.stringify(v)}: supported values: ${(p.allowedValues as unknown[]).map((a) => JSON.stringify(a)).join(', ')}` };
    case 'pattern':
      return { reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(v)}: ${field} in body should match '${String(p.pattern)}'` };
    case 'minimum':
      return { reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(v)}: ${field} in body should be greater than or equal to ${String(p.limit)}` };
    case 'maximum':
      return { reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(v)}: ${field} in body should be less than or equal to ${String(p.limit)}` };
    case 'minLength':
      return { reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(v)}: ${field} in body should be at least ${String(p.limit)} chars long` };
    case 'maxLength':
      return { reason: 'FieldValueTooLong', field, message: `Too long: may not be more than ${String(p.limit)} bytes` };
    case 'minItems':
      return { reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(v)}: ${field} in body should have at least ${String(p.limit)} items` };
    case 'maxItems':
      return { reason: 'FieldValueTooMany', field, message: `Too many: ${Array.isArray(v) ? v.length : 0}: must have at most ${String(p.limit)} items` };
    default:
      return { reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(v)}: ${field} in body ${e.message ?? 'is invalid'}` };
  }
}

/** Applies schema defaults to `o` (in place) and returns the schema violations as 422 causes. */
export function checkSchema(rt: ResourceType, o: JsonObject): StatusCause[] {
  const schema = rt.custom ? rt.schema : undefined;
  if (!schema || schemaProblem(schema)) return [];
  const validate = compiled.get(schema)!;
  if (validate(o)) return [];
  return (validate.errors ?? []).map((e) => cause(o, e));
}

/** Why ajv cannot compile a CRD version's schema, or undefined when it can. */
export function schemaProblem(schema: JsonObject): string | undefined {
  try {
    if (!compiled.has(schema)) compiled.set(schema, ajv.compile(schema));
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The Warning header value kube-apiserver sends for each unknown field under fieldValidation=Warn. */
export function unknownFieldWarning(path: string): string {
  return `299 - "unknown field \\"${path}\\""`;
}
