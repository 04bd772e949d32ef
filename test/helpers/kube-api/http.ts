/**
 * The REST layer of the stand-in API server: routes a request (discovery,
 * OpenAPI, or a resource path under /api/v1 or /apis/<group>/<version>) to
 * the verb it means (get, list, watch, create, update, patch, delete,
 * deletecollection, and their /status forms), runs the admission hook the
 * tests install, and answers JSON, a Table, or a Status.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { obj, type JsonObject } from '../../../injector/json.ts';
import { apiGroup, apiGroupList, coreVersions, groupVersions, openApiDocument, openApiIndex, resourceList, table, versionInfo, wantsTable, type IncludeObject } from './discovery.ts';
import { applyPatch, parsePatchBody, patchTypeOf } from './patch.ts';
import { decodeProtobuf } from './protobuf.ts';
import { apiVersionOf, type ResourceType } from './resources.ts';
import { unknownFieldWarning, type FieldValidation } from './schema.ts';
import { parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { ApiError, badRequest, deleted, expired, methodNotAllowed, notFound, pathNotFound, reasonFor } from './status.ts';
import type { Store } from './store.ts';
import { serveWatch, type ActiveWatch } from './watch.ts';

/** The largest request body the server reads, as kube-apiserver's 3 MiB limit. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** What an admission hook is asked about a write. */
export interface AdmissionRequest {
  readonly operation: 'CREATE' | 'UPDATE' | 'DELETE';
  /** The authenticated user's name (from the bearer token). */
  readonly user: string;
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly kind: string;
  /** 'status' for writes to the status subresource, else ''. */
  readonly subResource: string;
  readonly namespace?: string;
  readonly name: string;
  /** The object as it would be stored (absent for DELETE). */
  readonly object?: JsonObject;
  /** The stored object before the write (absent for CREATE). */
  readonly oldObject?: JsonObject;
  readonly dryRun: boolean;
}

/** An admission hook's answer: allowed, or denied with a message (and an HTTP code, 403 by default). */
export interface AdmissionVerdict {
  readonly allowed: boolean;
  readonly message?: string;
  readonly code?: number;
}

/** A hook run before every write is committed, like a validating admission webhook. */
export type AdmissionHook = (req: AdmissionRequest) => AdmissionVerdict | undefined | Promise<AdmissionVerdict | undefined>;

/** What the REST layer needs from the server around it. */
export interface RestContext {
  readonly store: Store;
  readonly watches: Set<ActiveWatch>;
  readonly bookmarkIntervalMs: number;
  /** Called when a watch stream has opened and registered. */
  readonly onWatch: (url: string) => void;
  serverAddress: string;
  admission?: AdmissionHook;
}

/** Writes a JSON answer. */
export function sendJson(res: ServerResponse, code: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-cache, private', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Writes an ApiError's Status. */
export function sendError(res: ServerResponse, e: ApiError): void {
  const retry = obj(e.status.details)?.retryAfterSeconds;
  sendJson(res, e.code, e.status, typeof retry === 'number' ? { 'retry-after': String(retry) } : {});
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new ApiError(413, 'RequestEntityTooLarge', 'Request entity too large: limit is 3145728');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function parseObjectBody(body: Buffer, contentType: string | undefined): JsonObject {
  if (/protobuf/.test(contentType ?? '')) return decodeProtobuf(body);
  if (/cbor/.test(contentType ?? '')) {
    throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got ${String(contentType)})`);
  }
  let value: unknown;
  try {
    const text = body.toString('utf8');
    value = /yaml/.test(contentType ?? '') ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw badRequest(`error decoding request body: ${(e as Error).message}`);
  }
  const o = obj(value);
  if (!o) throw badRequest('the request body is not a JSON object');
  return o;
}

/** Where a resource request points. */
interface Target {
  readonly rt: ResourceType;
  readonly namespace?: string;
  readonly name?: string;
  readonly subresource: string;
}

function resolveTarget(store: Store, group: string, version: string, segments: string[]): Target {
  let rest = segments;
  if (rest[0] === 'watch') rest = rest.slice(1);
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const inner = store.type(group, version, rest[2]);
    if (inner?.namespaced) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
  }
  const rt = store.type(group, version, rest[0] ?? '');
  if (!rt || rest.length > 3) throw pathNotFound();
  if (rt.namespaced && namespace === undefined && rest.length > 1) throw pathNotFound();
  const subresource = rest[2] ?? '';
  if (subresource && (subresource !== 'status' || !rt.statusSubresource)) throw pathNotFound();
  return { rt, namespace, name: rest[1], subresource };
}

function listMeta(store: Store, extra: JsonObject = {}): JsonObject {
  return { resourceVersion: String(store.rv), ...extra };
}

function itemForList(rt: ResourceType, o: JsonObject): JsonObject {
  if (rt.custom) return o;
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
}

interface ContinueToken {
  readonly rv: number;
  readonly start: string;
}

function decodeContinue(token: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as ContinueToken;
    if (typeof t.rv === 'number' && typeof t.start === 'string') return t;
  } catch {
    // fall through to the error below
  }
  throw badRequest('continue key is not valid: illegal base64 data');
}

function fieldValidationOf(v: string | null): FieldValidation {
  if (v === null || v === '' || v === 'Warn') return 'Warn';
  if (v === 'Strict' || v === 'Ignore') return v;
  throw badRequest(`fieldValidation: Unsupported value: "${v}": supported values: "Ignore", "Strict", "Warn"`);
}

function keyOf(o: JsonObject): string {
  const m = obj(o.metadata) ?? {};
  return `${String(m.namespace ?? '')}/${String(m.name ?? '')}`;
}

function includeObject(q: URLSearchParams): IncludeObject {
  const v = q.get('includeObject');
  return v === 'Object' || v === 'None' ? v : 'Metadata';
}

async function admit(ctx: RestContext, req: AdmissionRequest): Promise<void> {
  if (!ctx.admission) return;
  const verdict = await ctx.admission(req);
  if (!verdict || verdict.allowed) return;
  const code = verdict.code ?? 403;
  throw new ApiError(code, reasonFor(code), verdict.message ?? 'denied by the admission hook');
}

/** The user kube-controller-manager's namespace controller deletes a namespace's contents as. */
export const NAMESPACE_CONTROLLER = 'system:serviceaccount:kube-system:namespace-controller';

/**
 * Deletes everything in a namespace the way the namespace controller does:
 * each object as {@link NAMESPACE_CONTROLLER}, through admission. Returns how
 * many objects admission kept (the namespace then stays Terminating).
 */
async function deleteNamespaceContents(ctx: RestContext, namespace: string): Promise<number> {
  let blocked = 0;
  for (const rt of ctx.store.namespacedTypes()) {
    for (const o of ctx.store.list(rt, namespace)) {
      const name = String(obj(o.metadata)?.name);
      try {
        await admit(ctx, { operation: 'DELETE', user: NAMESPACE_CONTROLLER, group: rt.group, version: rt.version, resource: rt.plural, kind: rt.kind, subResource: '', namespace, name, oldObject: o, dryRun: false });
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        blocked++;
        continue;
      }
      if (ctx.store.get(rt, namespace, name)) ctx.store.delete(rt, namespace, name);
    }
  }
  return blocked;
}

/** Serves one authenticated request. */
export async function handleRest(ctx: RestContext, req: IncomingMessage, res: ServerResponse, user: string): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://stand-in');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  const q = url.searchParams;
  const method = req.method ?? 'GET';
  const { store } = ctx;
  const types = store.allTypes();
  if (method === 'GET') {
    if (path === '/version') return sendJson(res, 200, versionInfo());
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (path === '/api') return sendJson(res, 200, coreVersions(ctx.serverAddress));
    if (path === '/api/v1') return sendJson(res, 200, resourceList('v1', types.filter((t) => !t.group)));
    if (path === '/apis') return sendJson(res, 200, apiGroupList(types));
    if (path === '/openapi/v3') return sendJson(res, 200, openApiIndex(types));
    const oa = path.match(/^\/openapi\/v3\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/);
    if (oa) {
      const group = oa[2] ?? '';
      const version = oa[1] ?? oa[3];
      if (!types.some((t) => t.group === group && t.version === version)) throw pathNotFound();
      return sendJson(res, 200, openApiDocument(group, version, types));
    }
    const g = path.match(/^\/apis\/([^/]+)$/);
    if (g) {
      const versions = groupVersions(types).get(g[1]);
      if (!versions) throw pathNotFound();
      return sendJson(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(g[1], versions) });
    }
    const gv = path.match(/^\/apis\/([^/]+)\/([^/]+)$/);
    if (gv) {
      const served = types.filter((t) => t.group === gv[1] && t.version === gv[2]);
      if (served.length === 0) throw pathNotFound();
      return sendJson(res, 200, resourceList(`${gv[1]}/${gv[2]}`, served));
    }
  }
  const m = path.match(/^\/api\/(v1)\/(.+)$/) ?? path.match(/^\/apis\/([^/]+\/[^/]+)\/(.+)$/);
  if (!m) throw pathNotFound();
  const [group, version] = m[1].includes('/') ? m[1].split('/') : ['', m[1]];
  const target = resolveTarget(store, group, version, m[2].split('/'));
  const { rt, namespace, name, subresource } = target;
  const watchPath = m[2].startsWith('watch/');
  const dryRun = q.get('dryRun') === 'All';
  const fieldValidation = fieldValidationOf(q.get('fieldValidation'));
  const warnings: string[] = [];
  const previewOpts = { dryRun: true, fieldValidation };
  const writeOpts = { dryRun, fieldValidation, warnings };
  const written = (code: number, o: JsonObject) => sendJson(res, code, o, warnings.length ? { warning: warnings.map(unknownFieldWarning) } : {});
  const admissionBase = { user, group: rt.group, version: rt.version, resource: rt.plural, kind: rt.kind, subResource: subresource, namespace: rt.namespaced ? namespace : undefined, dryRun };

  if (method === 'GET' && (watchPath || q.get('watch') === 'true' || q.get('watch') === '1')) {
    const fieldSel = parseFieldSelector(name ? `metadata.name=${name}${q.get('fieldSelector') ? `,${q.get('fieldSelector')}` : ''}` : q.get('fieldSelector'), rt.fieldLabel);
    serveWatch(store, {
      rt, namespace, resourceVersion: q.get('resourceVersion') ?? '', bookmarks: q.get('allowWatchBookmarks') === 'true',
      sendInitialEvents: q.get('sendInitialEvents') === 'true', timeoutSeconds: Number(q.get('timeoutSeconds') ?? 0) || 0,
      match: ((l, f) => (o: JsonObject) => l(o) && f(o))(parseLabelSelector(q.get('labelSelector')), fieldSel),
      render: wantsTable(req.headers.accept) ? (o) => table(rt, [o], { resourceVersion: obj(o.metadata)?.resourceVersion }, includeObject(q)) : undefined,
    }, path, res, ctx.watches, ctx.bookmarkIntervalMs, () => ctx.onWatch(req.url ?? path));
    return;
  }

  if (method === 'GET' && name) {
    const o = store.get(rt, namespace, name);
    if (!o) throw notFound({ group: rt.group, resource: rt.plural, name });
    if (wantsTable(req.headers.accept)) return sendJson(res, 200, table(rt, [o], listMeta(store, { resourceVersion: obj(o.metadata)?.resourceVersion }), includeObject(q)));
    return sendJson(res, 200, o);
  }

  if (method === 'GET') {
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'), rt.fieldLabel);
    let items = store.list(rt, namespace).filter((o) => labels(o) && fields(o));
    let rv = store.rv;
    const cont = q.get('continue');
    if (cont) {
      const token = decodeContinue(cont);
      if (token.rv < store.compactedRv) {
        throw expired('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue value from the response.');
      }
      rv = token.rv;
      items = items.filter((o) => keyOf(o) > token.start);
    }
    const limit = Number(q.get('limit') ?? 0);
    const extra: JsonObject = {};
    if (limit > 0 && items.length > limit) {
      extra.continue = Buffer.from(JSON.stringify({ rv, start: keyOf(items[limit - 1]) })).toString('base64url');
      extra.remainingItemCount = items.length - limit;
      items = items.slice(0, limit);
    }
    const meta = { resourceVersion: String(rv), ...extra };
    if (wantsTable(req.headers.accept)) return sendJson(res, 200, table(rt, items, meta, includeObject(q)));
    return sendJson(res, 200, { kind: rt.listKind, apiVersion: apiVersionOf(rt), metadata: meta, items: items.map((o) => itemForList(rt, o)) });
  }

  if (method === 'POST' && !name) {
    const body = parseObjectBody(await readBody(req), req.headers['content-type']);
    const preview = store.create(rt, namespace, body, previewOpts);
    await admit(ctx, { ...admissionBase, operation: 'CREATE', name: String(obj(preview.metadata)?.name), object: preview });
    return written(201, store.create(rt, namespace, { ...body, metadata: { ...obj(body.metadata), name: obj(preview.metadata)?.name } }, writeOpts));
  }

  if (method === 'PUT' && name) {
    const body = parseObjectBody(await readBody(req), req.headers['content-type']);
    const target = subresource === 'status' ? 'status' : 'main';
    const old = store.get(rt, namespace, name);
    const preview = store.update(rt, namespace, name, body, target, previewOpts);
    await admit(ctx, { ...admissionBase, operation: 'UPDATE', name, object: preview, oldObject: old });
    return written(200, store.update(rt, namespace, name, body, target, writeOpts));
  }

  if (method === 'PATCH' && name) {
    const type = patchTypeOf(req.headers['content-type']);
    const patch = parsePatchBody(type, (await readBody(req)).toString('utf8'));
    const current = store.get(rt, namespace, name);
    const target = subresource === 'status' ? 'status' : 'main';
    if (type === 'apply') {
      const manager = q.get('fieldManager');
      if (!manager) throw new ApiError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
      const applied = obj(patch);
      if (!applied) throw badRequest('an apply patch must be an object');
      if (!current) {
        if (subresource) throw notFound({ group: rt.group, resource: rt.plural, name });
        const body = { ...applied, metadata: { ...obj(applied.metadata), name } };
        const preview = store.create(rt, namespace, body, previewOpts);
        await admit(ctx, { ...admissionBase, operation: 'CREATE', name, object: preview });
        const created = store.create(rt, namespace, body, writeOpts);
        if (!dryRun) store.ownership.record(String(obj(created.metadata)?.uid), manager, applied);
        return written(201, created);
      }
      const uid = String(obj(current.metadata)?.uid);
      const next = store.ownership.apply(uid, manager, current, applied, q.get('force') === 'true', apiVersionOf(rt));
      const preview = store.update(rt, namespace, name, next, target, previewOpts);
      await admit(ctx, { ...admissionBase, operation: 'UPDATE', name, object: preview, oldObject: current });
      const updated = store.update(rt, namespace, name, next, target, writeOpts);
      if (!dryRun) store.ownership.record(uid, manager, applied);
      return written(200, updated);
    }
    if (!current) throw notFound({ group: rt.group, resource: rt.plural, name });
    const next = applyPatch(type, current, patch);
    const preview = store.update(rt, namespace, name, next, target, previewOpts);
    await admit(ctx, { ...admissionBase, operation: 'UPDATE', name, object: preview, oldObject: current });
    return written(200, store.update(rt, namespace, name, next, target, writeOpts));
  }

  if (method === 'DELETE' && name && !subresource) {
    const raw = await readBody(req);
    const options = raw.length > 0 && raw.toString('utf8').trim() ? parseObjectBody(raw, req.headers['content-type']) : {};
    const old = store.get(rt, namespace, name);
    if (!old) throw notFound({ group: rt.group, resource: rt.plural, name });
    await admit(ctx, { ...admissionBase, operation: 'DELETE', name, oldObject: old });
    const deleteOpts = { dryRun: dryRun || (Array.isArray(options.dryRun) && options.dryRun.includes('All')) };
    if (rt.plural === 'namespaces' && !rt.group && !deleteOpts.dryRun) {
      const blocked = await deleteNamespaceContents(ctx, name);
      if (blocked > 0) return sendJson(res, 200, store.terminate(name));
    }
    const gone = store.delete(rt, namespace, name, obj(options.preconditions) ?? {}, deleteOpts);
    if (rt.plural === 'namespaces' && !rt.group) return sendJson(res, 200, { ...gone, status: { phase: 'Terminating' } });
    return sendJson(res, 200, deleted({ group: rt.group, resource: rt.plural, name }, String(obj(gone.metadata)?.uid)));
  }

  if (method === 'DELETE' && !name) {
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'), rt.fieldLabel);
    const items: JsonObject[] = [];
    for (const o of store.list(rt, namespace).filter((o) => labels(o) && fields(o))) {
      const n = String(obj(o.metadata)?.name);
      await admit(ctx, { ...admissionBase, operation: 'DELETE', name: n, oldObject: o });
      items.push(itemForList(rt, store.delete(rt, obj(o.metadata)?.namespace as string | undefined, n, {}, { dryRun })));
    }
    return sendJson(res, 200, { kind: rt.listKind, apiVersion: apiVersionOf(rt), metadata: listMeta(store), items });
  }

  throw methodNotAllowed(method);
}
