/**
 * A checker of the rules the Kubernetes API server applies to a
 * CustomResourceDefinition's openAPIV3Schema in apiextensions.k8s.io/v1
 * ("structural schemas"): every node has a type (unless it is int-or-string
 * or preserves unknown fields); the logical junctors (allOf, anyOf, oneOf,
 * not) only restrict values: no type, description, default, nullable,
 * additionalProperties or x-kubernetes-* inside them, and every property or
 * items they name is also declared outside; only the fields of
 * JSONSchemaProps, and not $ref, definitions, dependencies, additionalItems,
 * patternProperties, uniqueItems: true or additionalProperties: false;
 * properties and additionalProperties not together; enum values and
 * defaults of the node's type; list-type map with its keys required; and at
 * the root, an object whose metadata restricts at most name and generateName.
 */

/** The fields of apiextensions v1 JSONSchemaProps (anything else is unknown to the API server). */
const KNOWN = new Set([
  'id', '$schema', '$ref', 'description', 'type', 'format', 'title', 'default', 'maximum', 'exclusiveMaximum', 'minimum',
  'exclusiveMinimum', 'maxLength', 'minLength', 'pattern', 'maxItems', 'minItems', 'uniqueItems', 'multipleOf', 'enum',
  'maxProperties', 'minProperties', 'required', 'items', 'allOf', 'oneOf', 'anyOf', 'not', 'properties',
  'additionalProperties', 'patternProperties', 'dependencies', 'additionalItems', 'definitions', 'externalDocs', 'example',
  'nullable', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource', 'x-kubernetes-int-or-string',
  'x-kubernetes-list-map-keys', 'x-kubernetes-list-type', 'x-kubernetes-map-type', 'x-kubernetes-validations',
]);

/** Fields the API server refuses in a v1 CRD schema. */
const FORBIDDEN = ['$ref', '$schema', 'definitions', 'dependencies', 'additionalItems', 'patternProperties'];

/** Fields that may not appear inside allOf/anyOf/oneOf/not. */
const NOT_IN_JUNCTORS = ['type', 'description', 'default', 'nullable', 'additionalProperties', 'title'];

const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);

type Node = Record<string, unknown>;

function isNode(v: unknown): v is Node {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether `value` is of the structural `type`. */
function ofType(value: unknown, type: unknown): boolean {
  switch (type) {
    case 'object':
      return isNode(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return Number.isInteger(value);
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    default:
      return true;
  }
}

const JUNCTORS = ['allOf', 'anyOf', 'oneOf', 'not'] as const;

/** The schemas a junctor holds (one for `not`). */
function junctorMembers(node: Node, key: (typeof JUNCTORS)[number]): Node[] {
  const v = node[key];
  if (key === 'not') return isNode(v) ? [v] : [];
  return Array.isArray(v) ? v.filter(isNode) : [];
}

/** Checks a node inside a junctor against the node outside (`outer`): value validation only, nothing new declared. */
function checkJunctorMember(member: Node, outer: Node | undefined, path: string, out: string[]): void {
  for (const key of NOT_IN_JUNCTORS) if (key in member) out.push(`${path}: ${key} must not be set inside a logical junctor`);
  for (const key of Object.keys(member)) if (key.startsWith('x-kubernetes-')) out.push(`${path}: ${key} must not be set inside a logical junctor`);
  for (const key of Object.keys(member)) if (!KNOWN.has(key)) out.push(`${path}: ${key} is not a field of JSONSchemaProps`);
  const props = isNode(member.properties) ? member.properties : {};
  const outerProps = isNode(outer?.properties) ? outer.properties : {};
  for (const [name, sub] of Object.entries(props)) {
    if (!(name in outerProps)) out.push(`${path}.properties.${name}: not declared outside the logical junctor`);
    if (isNode(sub)) checkJunctorMember(sub, isNode(outerProps[name]) ? outerProps[name] : undefined, `${path}.properties.${name}`, out);
  }
  if (isNode(member.items)) {
    if (!isNode(outer?.items)) out.push(`${path}.items: not declared outside the logical junctor`);
    checkJunctorMember(member.items, isNode(outer?.items) ? outer.items : undefined, `${path}.items`, out);
  }
  for (const j of JUNCTORS) junctorMembers(member, j).forEach((m, i) => checkJunctorMember(m, outer, `${path}.${j}[${i}]`, out));
}

function checkNode(node: Node, path: string, out: string[]): void {
  for (const key of Object.keys(node)) if (!KNOWN.has(key)) out.push(`${path}: ${key} is not a field of JSONSchemaProps`);
  for (const key of FORBIDDEN) if (key in node) out.push(`${path}: ${key} is not allowed in a CRD schema`);
  if (node.uniqueItems === true) out.push(`${path}: uniqueItems cannot be true`);
  if (node.additionalProperties === false) out.push(`${path}: additionalProperties cannot be false (the API server prunes unknown fields)`);
  if (node.properties !== undefined && node.additionalProperties !== undefined) out.push(`${path}: properties and additionalProperties are mutually exclusive`);
  const special = node['x-kubernetes-int-or-string'] === true || node['x-kubernetes-preserve-unknown-fields'] === true;
  if (typeof node.type !== 'string' || node.type === '') {
    if (!special) out.push(`${path}: type must be set`);
  } else if (!TYPES.has(node.type)) out.push(`${path}: type "${node.type}" is not one of ${[...TYPES].join(', ')}`);
  if (Array.isArray(node.enum)) node.enum.forEach((v, i) => ofType(v, node.type) || out.push(`${path}.enum[${i}]: not of type ${String(node.type)}`));
  if ('default' in node && !ofType(node.default, node.type)) out.push(`${path}.default: not of type ${String(node.type)}`);
  if (node.type === 'array' && !isNode(node.items) && !special) out.push(`${path}: an array needs items`);
  const listType = node['x-kubernetes-list-type'];
  const mapKeys = node['x-kubernetes-list-map-keys'];
  if (listType === 'map') {
    const item = isNode(node.items) ? node.items : {};
    const required = Array.isArray(item.required) ? item.required : [];
    const props = isNode(item.properties) ? item.properties : {};
    if (!Array.isArray(mapKeys) || mapKeys.length === 0) out.push(`${path}: x-kubernetes-list-type map needs x-kubernetes-list-map-keys`);
    else for (const k of mapKeys) if (!required.includes(k) && !(isNode(props[k]) && 'default' in props[k])) out.push(`${path}: list map key ${String(k)} must be required or defaulted`);
  } else if (mapKeys !== undefined) out.push(`${path}: x-kubernetes-list-map-keys needs x-kubernetes-list-type map`);
  if (isNode(node.properties)) for (const [k, v] of Object.entries(node.properties)) if (isNode(v)) checkNode(v, `${path}.properties.${k}`, out);
  if (isNode(node.items)) checkNode(node.items, `${path}.items`, out);
  if (isNode(node.additionalProperties)) checkNode(node.additionalProperties, `${path}.additionalProperties`, out);
  for (const j of JUNCTORS) junctorMembers(node, j).forEach((m, i) => checkJunctorMember(m, node, `${path}.${j}[${i}]`, out));
}

/** The violations of the structural-schema rules in a CRD's openAPIV3Schema, each `path: what is wrong`; empty when structural. */
export function structuralViolations(schema: unknown): string[] {
  const out: string[] = [];
  if (!isNode(schema)) return ['(root): not a schema object'];
  if (schema.type !== 'object') out.push('(root): type must be object');
  checkNode(schema, '(root)', out);
  const metadata = isNode(schema.properties) ? schema.properties.metadata : undefined;
  if (isNode(metadata)) {
    for (const key of Object.keys(metadata)) if (key !== 'type' && key !== 'properties') out.push(`(root).properties.metadata: ${key} must not be set (only name and generateName may be restricted)`);
    const props = isNode(metadata.properties) ? metadata.properties : {};
    for (const key of Object.keys(props)) if (key !== 'name' && key !== 'generateName') out.push(`(root).properties.metadata.properties.${key}: only name and generateName may be restricted`);
  }
  return out;
}
