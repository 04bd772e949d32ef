/**
 * AdmissionReview v1 in, AdmissionReview v1 out: validates the review, looks
 * up the tenant (with a deadline), runs {@link mutatePod} and answers with a
 * base64 JSONPatch, the request's uid and warnings. A request it cannot
 * understand is an HTTP 400 ({@link AdmissionBadRequest}); a pod it cannot
 * handle is answered by the failure mode: allow (unpatched, with a warning) or
 * deny (with the reason).
 */
import type { InjectorConfig } from './config-schema.ts';
import { SkipReasons } from './decide.ts';
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import { obj, type JsonObject } from './json.ts';
import type { InjectorMetrics } from './metrics.ts';
import { mutatePod } from './mutate.ts';
import { resolveTenant, type TenantResolver } from './namespaces.ts';

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

/**
 * Answers one AdmissionReview (already JSON-parsed). Throws only for a
 * malformed review (code BAD_REQUEST: answer HTTP 400); everything else is an
 * AdmissionReview response.
 */
export async function review(body: unknown, deps: AdmissionDeps): Promise<AdmissionReviewResponse> {
  const { uid, request } = parseAdmissionReview(body);
  const { config, metrics } = deps;
  const answer = (response: Omit<AdmissionReviewResponse['response'], 'uid'>): AdmissionReviewResponse => ({
    apiVersion: ADMISSION_API_VERSION,
    kind: 'AdmissionReview',
    response: Object.fromEntries(Object.entries({ uid, ...response }).filter(([, v]) => v !== undefined)) as AdmissionReviewResponse['response'],
  });
  const kind = obj(request.kind);
  const object = obj(request.object);
  if (kind?.kind !== 'Pod' || (kind.group ?? '') !== '' || request.subResource) {
    metrics?.admissions.inc({ result: 'skipped', reason: SkipReasons.notAPod });
    return answer({ allowed: true, warnings: undefined });
  }
  const operation = typeof request.operation === 'string' ? request.operation : '';
  const meta = obj(object?.metadata);
  const namespace = (typeof request.namespace === 'string' && request.namespace) || (typeof meta?.namespace === 'string' ? meta.namespace : '');
  if (!object || !namespace) throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, 'reading AdmissionReview: a Pod request without object or namespace');
  try {
    // Look the tenant up only for pods that may be injected.
    const lookup =
      operation === 'CREATE'
        ? await resolveTenant(deps.tenants, namespace, config.namespaceLookupTimeoutMs)
        : { tenant: namespace, source: 'namespace' as const };
    if (operation === 'CREATE') metrics?.tenantLookups.inc({ source: lookup.source });
    const result = mutatePod(object, { namespace, tenant: lookup.tenant, operation, config });
    const warnings = [...(lookup.warning ? [lookup.warning] : []), ...result.warnings];
    const logFields = { uid, namespace, name: meta?.name ?? meta?.generateName, dryRun: request.dryRun === true };
    if (!result.decision.inject) {
      metrics?.admissions.inc({ result: 'skipped', reason: result.decision.reason });
      if (result.decision.reason !== SkipReasons.operation) deps.log?.('info', 'pod skipped', { ...logFields, reason: result.decision.reason });
      // UPDATE/DELETE are not the user's doing: no warning for them.
      return answer({ allowed: true, warnings: result.decision.reason === SkipReasons.operation ? undefined : trimWarnings(warnings) });
    }
    metrics?.admissions.inc({ result: 'injected', reason: 'none' });
    deps.log?.('info', 'pod injected', { ...logFields, tenant: lookup.tenant, tenantSource: lookup.source });
    return answer({
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(result.patch)).toString('base64'),
      warnings: trimWarnings(warnings),
    });
  } catch (err) {
    const code = err instanceof InjectorError ? err.code : 'INTERNAL';
    const message = err instanceof Error ? err.message : String(err);
    metrics?.admissions.inc({ result: 'error', reason: code });
    deps.log?.('error', 'admission failed', { uid, code, error: message, failureMode: config.failureMode });
    if (config.failureMode === 'deny') {
      return answer({ allowed: false, status: { code: 500, reason: 'InternalError', message: `tenant-dns: pod not admitted: ${message}` } });
    }
    return answer({ allowed: true, warnings: trimWarnings([`tenant-dns: sidecar not injected: ${message}`]) });
  }
}
