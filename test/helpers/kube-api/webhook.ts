/**
 * An admission hook that calls a real validating webhook the way
 * kube-apiserver does: an `admission.k8s.io/v1` AdmissionReview POSTed over
 * HTTPS (trusting the given CA), with the user's name and groups in
 * `userInfo`, and the answer turned into the Status the API server sends
 * (`admission webhook "NAME" denied the request: ...`). failurePolicy Fail
 * turns an unreachable or broken webhook into a 500, Ignore allows.
 */
import { randomUUID } from 'node:crypto';
import { Agent, fetch } from 'undici';
import { obj, type JsonObject } from '../../../injector/json.ts';
import type { AdmissionHook, AdmissionRequest, AdmissionVerdict } from './http.ts';

/** Where the webhook is and which requests go to it. */
export interface WebhookOptions {
  /** The webhook's URL, e.g. `https://127.0.0.1:PORT/validate`. */
  readonly url: string;
  /** CA bundle (PEM) the webhook's certificate chains to. */
  readonly ca: Buffer | string;
  /** The webhook's name in denial messages (default `validate.tenant-dns.io`). */
  readonly name?: string;
  /** Which requests are sent (default: all); the rest are allowed without a call. */
  readonly matches?: (req: AdmissionRequest) => boolean;
  /** What an unreachable webhook or an unusable answer means (default Fail). */
  readonly failurePolicy?: 'Fail' | 'Ignore';
  /** Per-call deadline in ms (default 10000, kube-apiserver's default webhook timeout). */
  readonly timeoutMs?: number;
}

/** The groups kube-apiserver puts in userInfo for a user name. */
export function groupsOf(username: string): string[] {
  const sa = username.match(/^system:serviceaccount:([^:]+):[^:]+$/);
  return sa ? ['system:serviceaccounts', `system:serviceaccounts:${sa[1]}`, 'system:authenticated'] : ['system:authenticated'];
}

/** The AdmissionReview kube-apiserver would send for `req`. */
export function admissionReview(req: AdmissionRequest, uid = randomUUID()): JsonObject {
  const kind = { group: req.group, version: req.version, kind: req.kind };
  const resource = { group: req.group, version: req.version, resource: req.resource };
  const optionsKind = req.operation === 'CREATE' ? 'CreateOptions' : req.operation === 'UPDATE' ? 'UpdateOptions' : 'DeleteOptions';
  const request: JsonObject = {
    uid, kind, resource, requestKind: kind, requestResource: resource, name: req.name, operation: req.operation,
    userInfo: { username: req.user, groups: groupsOf(req.user) },
    object: req.object ?? null, oldObject: req.oldObject ?? null, dryRun: req.dryRun,
    options: { kind: optionsKind, apiVersion: 'meta.k8s.io/v1' },
  };
  if (req.subResource) request.subResource = req.subResource;
  if (req.namespace) request.namespace = req.namespace;
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request };
}

/** An admission hook calling a validating webhook; see the module comment. */
export function webhookAdmission(opts: WebhookOptions): AdmissionHook {
  const name = opts.name ?? 'validate.tenant-dns.io';
  const dispatcher = new Agent({ connect: { ca: opts.ca } });
  const failed = (why: string): AdmissionVerdict | undefined => (opts.failurePolicy === 'Ignore'
    ? undefined
    : { allowed: false, code: 500, message: `Internal error occurred: failed calling webhook "${name}": ${why}` });
  return async (req) => {
    if (opts.matches && !opts.matches(req)) return undefined;
    const uid = randomUUID();
    let answer: JsonObject | undefined;
    try {
      const res = await fetch(opts.url, {
        method: 'POST', dispatcher, body: JSON.stringify(admissionReview(req, uid)),
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
      });
      if (res.status !== 200) return failed(`received invalid webhook response: HTTP ${res.status}`);
      answer = obj(await res.json());
    } catch (e) {
      return failed(`failed to call webhook: Post "${opts.url}": ${(e as Error).message}`);
    }
    const response = obj(answer?.response);
    if (!response || response.uid !== uid) return failed('received invalid webhook response: expected response.uid to match the request.uid');
    if (response.allowed === true) return undefined;
    const status = obj(response.status) ?? {};
    const code = typeof status.code === 'number' && status.code >= 400 ? status.code : 403;
    const why = typeof status.message === 'string' && status.message ? `: ${status.message}` : ' without explanation';
    return { allowed: false, code, message: `admission webhook "${name}" denied the request${why}` };
  };
}
