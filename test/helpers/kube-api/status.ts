/**
 * Error Status objects of the stand-in Kubernetes API server, shaped as
 * kube-apiserver shapes them (k8s.io/apimachinery/pkg/api/errors): kind
 * Status, apiVersion v1, status Failure, a reason, the HTTP code, a message
 * naming the qualified resource (`leases.coordination.k8s.io "x" not found`)
 * and details with the resource's plural in `kind`.
 */
import type { JsonObject } from '../../../injector/json.ts';

/** Which resource an error is about: group ('' for core), plural, and the object's name. */
export interface ErrorTarget {
  readonly group: string;
  readonly resource: string;
  readonly name?: string;
}

/** One field-level cause of a 422 Invalid, as in Status details.causes. */
export interface StatusCause {
  readonly reason: string;
  readonly message: string;
  readonly field: string;
}

/** An error the server answers with a Status object; `status` is the whole body. */
export class ApiError extends Error {
  readonly code: number;
  readonly status: JsonObject;
  constructor(code: number, reason: string, message: string, details?: JsonObject) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    const status: JsonObject = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason };
    if (details) status.details = details;
    status.code = code;
    this.status = status;
  }
}

/** `leases.coordination.k8s.io` or `configmaps`: how messages name a resource. */
export function qualified(t: ErrorTarget): string {
  return t.group ? `${t.resource}.${t.group}` : t.resource;
}

function details(t: ErrorTarget, extra: JsonObject = {}): JsonObject {
  const d: JsonObject = {};
  if (t.name !== undefined) d.name = t.name;
  if (t.group) d.group = t.group;
  d.kind = t.resource;
  return { ...d, ...extra };
}

/** 404 NotFound for a named object. */
export function notFound(t: ErrorTarget): ApiError {
  return new ApiError(404, 'NotFound', `${qualified(t)} "${t.name ?? ''}" not found`, details(t));
}

/** 404 NotFound for a path no resource serves (the server's generic answer). */
export function pathNotFound(): ApiError {
  return new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
}

/** 409 AlreadyExists on create. */
export function alreadyExists(t: ErrorTarget): ApiError {
  return new ApiError(409, 'AlreadyExists', `${qualified(t)} "${t.name ?? ''}" already exists`, details(t));
}

/** 409 Conflict: a stale resourceVersion or a failed precondition. */
export function conflict(t: ErrorTarget, why = 'the object has been modified; please apply your changes to the latest version and try again'): ApiError {
  return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(t)} "${t.name ?? ''}": ${why}`, details(t));
}

/** 422 Invalid with field causes; `kind` is the object's Kind, as the real server names it here. */
export function invalid(kind: string, group: string, name: string, causes: readonly StatusCause[]): ApiError {
  const qualifiedKind = group ? `${kind}.${group}` : kind;
  const list = causes.map((c) => `${c.field}: ${c.message}`);
  const summary = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
  const d: JsonObject = { name };
  if (group) d.group = group;
  d.kind = kind;
  d.causes = causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field }));
  return new ApiError(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${summary}`, d);
}

/** 400 BadRequest with a message. */
export function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

/** 401 Unauthorized, exactly the body kube-apiserver sends for a bad token. */
export function unauthorized(): ApiError {
  return new ApiError(401, 'Unauthorized', 'Unauthorized');
}

/** 403 Forbidden, e.g. an admission denial. */
export function forbidden(t: ErrorTarget, why: string): ApiError {
  return new ApiError(403, 'Forbidden', `${qualified(t)} "${t.name ?? ''}" is forbidden: ${why}`, details(t));
}

/** 405 MethodNotAllowed for a verb the resource does not support. */
export function methodNotAllowed(method: string): ApiError {
  return new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method})`, {});
}

/** 410 Expired: a watch or list continuation from a compacted resourceVersion. */
export function expired(message: string): ApiError {
  return new ApiError(410, 'Expired', message);
}

/** 415 UnsupportedMediaType for a PATCH body type the server does not take. */
export function unsupportedMediaType(type: string): ApiError {
  return new ApiError(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${type})`,
  );
}

/** A reason for an injected failure code, as the server would name it. */
export function reasonFor(code: number): string {
  const reasons: Record<number, string> = {
    400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 410: 'Expired',
    422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout',
  };
  return reasons[code] ?? 'Unknown';
}

/** The Status a successful DELETE answers with (resources that do not return the object). */
export function deleted(t: ErrorTarget, uid: string): JsonObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { ...details(t), uid } };
}
