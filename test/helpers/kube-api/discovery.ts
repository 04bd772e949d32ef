/**
 * What the stand-in API server answers for clients to find their way:
 * legacy discovery (/api, /api/v1, /apis, /apis/<group>[/<version>]),
 * /version, the OpenAPI v3 index and per-group-version documents (which
 * kubectl reads to learn that the server validates fields itself, so it
 * sends `fieldValidation=Strict` instead of validating from OpenAPI v2), and
 * Table answers built from each resource's printer columns.
 */
import { createHash } from 'node:crypto';
import { obj, type JsonObject } from '../../../injector/json.ts';
import type { ResourceType } from './resources.ts';

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

/** The /version answer: a 1.32 server, matching Debian's kubectl. */
export function versionInfo(): JsonObject {
  return {
    major: '1', minor: '32', gitVersion: 'v1.32.0-tenant-dns-stand-in', gitCommit: '0000000000000000000000000000000000000000',
    gitTreeState: 'clean', buildDate: '2026-01-01T00:00:00Z', goVersion: 'go1.23.4', compiler: 'gc', platform: 'linux/amd64',
  };
}

/** The versions of the core group (/api). */
export function coreVersions(serverAddress: string): JsonObject {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function hash(s: string): string {
  return createHash('sha256').update(s).digest('base64').slice(0, 11);
}

/** An APIResourceList for one group/version: each resource and, where it has one, its status subresource. */
export function resourceList(groupVersion: string, types: readonly ResourceType[]): JsonObject {
  const resources: JsonObject[] = [];
  for (const rt of types) {
    const r: JsonObject = { name: rt.plural, singularName: rt.singular, namespaced: rt.namespaced, kind: rt.kind, verbs: VERBS };
    if (rt.shortNames.length) r.shortNames = [...rt.shortNames];
    if (rt.categories.length) r.categories = [...rt.categories];
    r.storageVersionHash = hash(`${rt.group}/${rt.plural}`);
    resources.push(r);
    if (rt.statusSubresource) resources.push({ name: `${rt.plural}/status`, singularName: '', namespaced: rt.namespaced, kind: rt.kind, verbs: ['get', 'patch', 'update'] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion, resources };
}

/** Groups (other than core) and their versions, in first-registered order; the first version is preferred. */
export function groupVersions(types: readonly ResourceType[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const rt of types) {
    if (!rt.group) continue;
    const versions = groups.get(rt.group) ?? [];
    if (!versions.includes(rt.version)) versions.push(rt.version);
    groups.set(rt.group, versions);
  }
  return groups;
}

/** One APIGroup entry. */
export function apiGroup(name: string, versions: readonly string[]): JsonObject {
  const list = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { name, versions: list, preferredVersion: list[0] };
}

/** The APIGroupList (/apis). */
export function apiGroupList(types: readonly ResourceType[]): JsonObject {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: [...groupVersions(types)].map(([g, v]) => apiGroup(g, v)) };
}

function gvPath(group: string, version: string): string {
  return group ? `apis/${group}/${version}` : `api/${version}`;
}

/** The OpenAPI v3 index (/openapi/v3): one entry per group/version. */
export function openApiIndex(types: readonly ResourceType[]): JsonObject {
  const paths: JsonObject = {};
  for (const rt of types) {
    const p = gvPath(rt.group, rt.version);
    paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hash(JSON.stringify(types.filter((t) => t.group === rt.group && t.version === rt.version).map((t) => [t.plural, t.schema ?? null])))}` };
  }
  return { paths };
}

/**
 * The OpenAPI v3 document of one group/version: the operations on each
 * resource, with `x-kubernetes-group-version-kind` and the query parameters
 * (notably `fieldValidation`) kubectl looks for on PATCH, and the custom
 * resources' schemas as components.
 */
export function openApiDocument(group: string, version: string, types: readonly ResourceType[]): JsonObject {
  const paths: JsonObject = {};
  const schemas: JsonObject = {};
  const params = ['dryRun', 'fieldManager', 'fieldValidation', 'pretty'].map((name) => ({ name, in: 'query', schema: { type: 'string', uniqueItems: true } }));
  for (const rt of types.filter((t) => t.group === group && t.version === version)) {
    const gvk = { group: rt.group, version: rt.version, kind: rt.kind };
    const schemaName = `${(rt.group || 'io.k8s.api.core').split('.').reverse().join('.')}.${rt.version}.${rt.kind}`;
    schemas[schemaName] = { ...(rt.schema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }), 'x-kubernetes-group-version-kind': [gvk] };
    const ref = { $ref: `#/components/schemas/${schemaName}` };
    const body = (types: string[]) => ({ content: Object.fromEntries(types.map((t) => [t, { schema: t.includes('patch') ? { type: 'object' } : ref }])), required: true });
    const ok = { '200': { description: 'OK', content: { 'application/json': { schema: ref } } } };
    const op = (action: string, extra: JsonObject = {}): JsonObject => ({
      operationId: `${action}${rt.kind}`, parameters: params, responses: ok, 'x-kubernetes-action': action, 'x-kubernetes-group-version-kind': gvk, ...extra,
    });
    const base = `/${gvPath(rt.group, rt.version)}${rt.namespaced ? '/namespaces/{namespace}' : ''}/${rt.plural}`;
    const patchTypes = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml'];
    paths[base] = { get: op('list'), post: op('post', { requestBody: body(['application/json']) }) };
    paths[`${base}/{name}`] = {
      get: op('get'), put: op('put', { requestBody: body(['application/json']) }), delete: op('delete'),
      patch: op('patch', { requestBody: body(patchTypes) }),
    };
    if (rt.statusSubresource) {
      paths[`${base}/{name}/status`] = { get: op('get'), put: op('put', { requestBody: body(['application/json']) }), patch: op('patch', { requestBody: body(patchTypes) }) };
    }
  }
  return { openapi: '3.0.0', info: { title: 'Kubernetes', version: 'v1.32.0' }, paths, components: { schemas } };
}

/** What rows of a Table carry: PartialObjectMetadata (default), the whole object, or nothing. */
export type IncludeObject = 'Metadata' | 'Object' | 'None';

/** A meta.k8s.io/v1 Table of `items` with the resource's printer columns. */
export function table(rt: ResourceType, items: readonly JsonObject[], listMeta: JsonObject, include: IncludeObject): JsonObject {
  return {
    kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: listMeta,
    columnDefinitions: rt.columns.map((c) => ({ name: c.name, type: c.type, format: c.format, description: c.description, priority: c.priority })),
    rows: items.map((o) => {
      const row: JsonObject = { cells: rt.columns.map((c) => c.cell(o) ?? null) };
      if (include === 'Object') row.object = o;
      else if (include === 'Metadata') row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj(o.metadata) ?? {} };
      return row;
    }),
  };
}

/** True when an Accept header asks for a Table (`as=Table;g=meta.k8s.io`). */
export function wantsTable(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((part) => /;\s*as=Table/.test(part) && /g=meta\.k8s\.io/.test(part));
}
