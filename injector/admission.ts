/**
 * AdmissionReview v1 in, AdmissionReview v1 out, for both webhooks: checks
 * the review, looks up the tenant on CREATE (with a deadline), then
 * {@link review} (/mutate) runs {@link mutatePod} and answers with a base64
 * JSONPatch, and {@link validateReview} (/validate) runs
 * {@link validatePodAdmission} (or, for a rendered policy ConfigMap,
 * {@link validateConfigMapAdmission}). A pod that collides with the injection is
 * denied: `allowed: false` with status 403 and a message naming the conflict.
 * A request it cannot understand is an HTTP 400 (an InjectorError
 * BAD_REQUEST); a pod it cannot handle is answered by the failure mode: allow
 * (unchanged, with a warning) or deny (status 500 with the reason).
 */
import type { InjectorConfig } from './config-schema.ts';
import { SkipReasons, type DenyReason } from './decide.ts';
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import { obj, type JsonObject } from './json.ts';
import type { InjectorMetrics, Webhook } from './metrics.ts';
import { mutatePod } from './mutate.ts';
import { resolveTenant, type TenantLookup, type TenantResolver } from './namespaces.ts';
import { validateConfigMapAdmission, validatePodAdmission } from './validate.ts';

/** The AdmissionReview API version the injector speaks. */
export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

/** What {@link review} needs. */
export interface AdmissionDeps {
  readonly config: InjectorConfig;
  readonly tenants: TenantResolver;
  readonly metrics?: InjectorMetrics;
  /** Called for failures worth logging. */
  readonly log?: (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
}

/** The AdmissionReview response body. */
export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: boolean;
    patchType?: 'JSONPatch';
    patch?: string;
    warnings?: string[];
    status?: { code: number; message: string; reason?: string };
  };
}

/** Kubernetes truncates longer warnings; keep ours readable. */
const MAX_WARNING = 120;
const MAX_WARNINGS = 10;
/** A denial names every conflict; this bounds what a pod built to collide everywhere makes us write. */
const MAX_MESSAGE = 2000;

function trimWarnings(ws: readonly string[]): string[] | undefined {
  if (ws.length === 0) return undefined;
  return ws.slice(0, MAX_WARNINGS).map((w) => (w.length > MAX_WARNING ? w.slice(0, MAX_WARNING - 1) + '…' : w));
}

/** Parses and checks the envelope; throws an InjectorError BAD_REQUEST when it is not an AdmissionReview v1 request. */
export function parseAdmissionReview(body: unknown): { uid: string; request: JsonObject } {
  const review = obj(body);
  if (!review) throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, 'reading AdmissionReview: body is not a JSON object');
  if (review.apiVersion !== ADMISSION_API_VERSION || review.kind !== 'AdmissionReview') {
    throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, `reading AdmissionReview: expected ${ADMISSION_API_VERSION} AdmissionReview, got ${String(review.apiVersion)} ${String(review.kind)}`);
  }
  const request = obj(review.request);
  if (!request || typeof request.uid !== 'string' || request.uid === '') {
    throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, 'reading AdmissionReview: request.uid is missing');
  }
  return { uid: request.uid, request };
}

/** What one webhook makes of a pod request, before it becomes a response. */
type Answer = Omit<AdmissionReviewResponse['response'], 'uid'>;

/** A pod request: what both webhooks read from the review. */
interface PodRequest {
  readonly uid: string;
  readonly operation: string;
  readonly namespace: string;
  readonly object: JsonObject;
  readonly oldObject?: JsonObject;
  readonly logFields: Record<string, unknown>;
}

function denial(reason: DenyReason, detail: string, subject = 'pod'): Answer {
  const message = `tenant-dns: ${subject} denied (${reason}): ${detail}`;
  return { allowed: false, status: { code: 403, reason: 'Forbidden', message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message } };
}

function mutateAnswer(req: PodRequest, lookup: TenantLookup, deps: AdmissionDeps): Answer {
  const { metrics } = deps;
  const result = mutatePod(req.object, { namespace: req.namespace, tenant: lookup.tenant, operation: req.operation, allowOptOut: lookup.allowOptOut, config: deps.config });
  const d = result.decision;
  if (d.outcome === 'deny') {
    metrics?.admissions.inc({ webhook: 'mutate', result: 'denied', reason: d.reason });
    deps.log?.('info', 'pod denied', { ...req.logFields, webhook: 'mutate', reason: d.reason, detail: d.detail });
    return denial(d.reason, d.detail);
  }
  const patch = result.patch.length > 0 ? { patchType: 'JSONPatch' as const, patch: Buffer.from(JSON.stringify(result.patch)).toString('base64') } : {};
  const warnings = [...(lookup.warning ? [lookup.warning] : []), ...result.warnings];
  if (d.outcome === 'skip') {
    metrics?.admissions.inc({ webhook: 'mutate', result: 'skipped', reason: d.reason });
    // UPDATE/DELETE are not the user's doing, and a reinvocation over our own injection is routine: no warning for them.
    if (d.reason === SkipReasons.operation) return { allowed: true };
    if (d.reason === SkipReasons.alreadyInjected) return { allowed: true, ...patch, warnings: trimWarnings(result.warnings) };
    deps.log?.('info', 'pod skipped', { ...req.logFields, reason: d.reason });
    return { allowed: true, ...patch, warnings: trimWarnings(warnings) };
  }
  metrics?.admissions.inc({ webhook: 'mutate', result: 'injected', reason: 'none' });
  deps.log?.('info', 'pod injected', { ...req.logFields, tenant: lookup.tenant, tenantSource: lookup.source });
  return { allowed: true, ...patch, warnings: trimWarnings(warnings) };
}

function validateAnswer(req: PodRequest, lookup: TenantLookup, deps: AdmissionDeps): Answer {
  const verdict = validatePodAdmission(req.object, {
    namespace: req.namespace,
    tenant: lookup.tenant,
    operation: req.operation,
    oldObject: req.oldObject,
    allowOptOut: lookup.allowOptOut,
    config: deps.config,
  });
  if (!verdict.allowed) {
    deps.metrics?.admissions.inc({ webhook: 'validate', result: 'denied', reason: verdict.reason });
    deps.log?.('info', 'pod denied', { ...req.logFields, webhook: 'validate', operation: req.operation, reason: verdict.reason, detail: verdict.detail });
    return denial(verdict.reason, verdict.detail);
  }
  deps.metrics?.admissions.inc({ webhook: 'validate', result: 'allowed', reason: verdict.reason });
  return { allowed: true };
}

/** Reads the pod request out of a checked review; undefined when it is not about a Pod (a subresource included). */
function podRequest(uid: string, request: JsonObject, webhook: Webhook): PodRequest | undefined {
  const kind = obj(request.kind);
  if (kind?.kind !== 'Pod' || (kind.group ?? '') !== '' || request.subResource) return undefined;
  const operation = typeof request.operation === 'string' ? request.operation : '';
  const object = obj(request.object);
  const meta = obj(object?.metadata);
  const namespace = (typeof request.namespace === 'string' && request.namespace) || (typeof meta?.namespace === 'string' ? meta.namespace : '');
  if (!object || !namespace) throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, 'reading AdmissionReview: a Pod request without object or namespace');
  const oldObject = obj(request.oldObject);
  if (webhook === 'validate' && operation === 'UPDATE' && !oldObject) throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, 'reading AdmissionReview: a Pod UPDATE without oldObject');
  const logFields = { uid, namespace, name: meta?.name ?? meta?.generateName, dryRun: request.dryRun === true };
  return { uid, operation, namespace, object, oldObject, logFields };
}

/**
 * /validate on a ConfigMap (the webhook's second entry sends only the two
 * rendered names): the verdict of {@link validateConfigMapAdmission} on who
 * writes it. Undefined when the request is not about a ConfigMap.
 */
function configMapAnswer(request: JsonObject, deps: AdmissionDeps): Answer | undefined {
  const kind = obj(request.kind);
  if (kind?.kind !== 'ConfigMap' || (kind.group ?? '') !== '' || request.subResource) return undefined;
  const operation = typeof request.operation === 'string' ? request.operation : '';
  const meta = obj(obj(operation === 'DELETE' ? request.oldObject : request.object)?.metadata);
  const name = (typeof request.name === 'string' && request.name) || (typeof meta?.name === 'string' ? meta.name : '');
  const namespace = (typeof request.namespace === 'string' && request.namespace) || (typeof meta?.namespace === 'string' ? meta.namespace : '');
  if (!name || !namespace) throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, 'reading AdmissionReview: a ConfigMap request without name or namespace');
  const username = obj(request.userInfo)?.username;
  const verdict = validateConfigMapAdmission({ namespace, name, operation, username: typeof username === 'string' ? username : '', config: deps.config });
  if (!verdict.allowed) {
    deps.metrics?.admissions.inc({ webhook: 'validate', result: 'denied', reason: verdict.reason });
    deps.log?.('info', 'ConfigMap write denied', { uid: request.uid, namespace, name, operation, user: username, reason: verdict.reason });
    return denial(verdict.reason, verdict.detail, 'ConfigMap write');
  }
  deps.metrics?.admissions.inc({ webhook: 'validate', result: 'allowed', reason: verdict.reason });
  return { allowed: true };
}

async function answerReview(body: unknown, deps: AdmissionDeps, webhook: Webhook): Promise<AdmissionReviewResponse> {
  const { uid, request } = parseAdmissionReview(body);
  const { config, metrics } = deps;
  const respond = (response: Answer): AdmissionReviewResponse => ({
    apiVersion: ADMISSION_API_VERSION,
    kind: 'AdmissionReview',
    response: Object.fromEntries(Object.entries({ uid, ...response }).filter(([, v]) => v !== undefined)) as AdmissionReviewResponse['response'],
  });
  const written = webhook === 'validate' ? configMapAnswer(request, deps) : undefined;
  if (written) return respond(written);
  const req = podRequest(uid, request, webhook);
  if (!req) {
    metrics?.admissions.inc({ webhook, result: webhook === 'mutate' ? 'skipped' : 'allowed', reason: SkipReasons.notAPod });
    return respond({ allowed: true });
  }
  try {
    // Only CREATE needs the tenant: UPDATE compares the pod with itself.
    const lookup: TenantLookup =
      req.operation === 'CREATE' ? await resolveTenant(deps.tenants, req.namespace, config.namespaceLookupTimeoutMs) : { tenant: req.namespace, source: 'namespace' };
    if (req.operation === 'CREATE') metrics?.tenantLookups.inc({ source: lookup.source });
    return respond(webhook === 'mutate' ? mutateAnswer(req, lookup, deps) : validateAnswer(req, lookup, deps));
  } catch (err) {
    const code = err instanceof InjectorError ? err.code : 'INTERNAL';
    const message = err instanceof Error ? err.message : String(err);
    metrics?.admissions.inc({ webhook, result: 'error', reason: code });
    deps.log?.('error', 'admission failed', { uid, webhook, code, error: message, failureMode: config.failureMode });
    if (config.failureMode === 'deny') {
      return respond({ allowed: false, status: { code: 500, reason: 'InternalError', message: `tenant-dns: pod not admitted: ${message}` } });
    }
    const what = webhook === 'mutate' ? 'sidecar not injected' : 'pod not validated';
    return respond({ allowed: true, warnings: trimWarnings([`tenant-dns: ${what}: ${message}`]) });
  }
}

/**
 * Answers one AdmissionReview for /mutate (already JSON-parsed). Throws only
 * for a malformed review (code BAD_REQUEST: answer HTTP 400); everything else
 * is an AdmissionReview response.
 */
export function review(body: unknown, deps: AdmissionDeps): Promise<AdmissionReviewResponse> {
  return answerReview(body, deps, 'mutate');
}

/**
 * Answers one AdmissionReview for /validate (already JSON-parsed): CREATE and
 * UPDATE of Pods, and CREATE, UPDATE and DELETE of the rendered policy
 * ConfigMaps. Throws only for a malformed review (BAD_REQUEST), a Pod UPDATE
 * without `oldObject` or a ConfigMap request without name included.
 */
export function validateReview(body: unknown, deps: AdmissionDeps): Promise<AdmissionReviewResponse> {
  return answerReview(body, deps, 'validate');
}
