/**
 * Comparing what a pod carries with what the injector writes, structurally
 * (key order never matters) and across what the API server adds on the way
 * to storage, so that the injector recognises its own injection in a stored
 * pod and nothing else. Taken into account, and nothing more:
 *
 * - the defaults of pkg/apis/core/v1/defaults.go on the fields the injector
 *   writes: `terminationMessagePath`/`Policy`, `imagePullPolicy`, probe
 *   timeouts and thresholds, `httpGet` path and scheme, port `protocol`,
 *   `fieldRef.apiVersion`, volume `defaultMode`, requests copied from limits;
 * - resource quantities compare by value, rounded up to milli units as the
 *   API server stores them (`0.5` and `500m` are equal);
 * - `resizePolicy` entries saying `NotRequired` for cpu or memory (older API
 *   servers write them as the default);
 * - what in-tree admission plugins add when the webhook is reinvoked: the
 *   ServiceAccount plugin's read-only token mount at
 *   {@link SERVICE_ACCOUNT_TOKEN_PATH}, and LimitRanger's defaults for
 *   resources the injector does not set;
 * - members that are null, empty strings, arrays or objects (the API server
 *   drops them).
 *
 * Pure: no I/O.
 */
import { arr, jsonEqual, obj, type JsonObject } from './json.ts';
import { SERVICE_ACCOUNT_TOKEN_PATH } from './names.ts';

const PROBES = ['startupProbe', 'readinessProbe', 'livenessProbe'] as const;
const DEFAULT_MODE = 0o644;

const BINARY: Readonly<Record<string, bigint>> = { Ki: 1n << 10n, Mi: 1n << 20n, Gi: 1n << 30n, Ti: 1n << 40n, Pi: 1n << 50n, Ei: 1n << 60n };
const DECIMAL: Readonly<Record<string, number>> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/**
 * A Kubernetes resource quantity (`128Mi`, `0.5`, `10m`, `1e3`) in milli
 * units, rounded up as the API server stores it, as a decimal string; the
 * input unchanged when it is not a quantity (or its exponent is beyond ±100).
 */
export function quantityMillis(q: unknown): unknown {
  if (typeof q !== 'string' && typeof q !== 'number') return q;
  // Resource quantities are never negative: a sign other than + is left for the plain comparison.
  const m = /^\+?([0-9]*)(?:\.([0-9]*))?(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?$/.exec(String(q));
  if (!m || `${m[1]}${m[2] ?? ''}` === '') return q;
  const [, whole, frac = '', suffix = ''] = m;
  let num = BigInt(`${whole}${frac}`) * 1000n;
  let den = 10n ** BigInt(frac.length);
  if (suffix in BINARY) num *= BINARY[suffix]!;
  else {
    const exp = suffix in DECIMAL ? DECIMAL[suffix]! : Number(suffix.slice(1));
    if (Math.abs(exp) > 100) return q;
    if (exp >= 0) num *= 10n ** BigInt(exp);
    else den *= 10n ** BigInt(-exp);
  }
  return String((num + den - 1n) / den);
}

/** `v` without null, empty-string, empty-array and empty-object members, at any depth. */
function prune(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(prune);
  const o = obj(v);
  if (!o) return v;
  const out: JsonObject = {};
  for (const [k, raw] of Object.entries(o)) {
    const p = prune(raw);
    if (p === null || p === undefined || p === '') continue;
    if (Array.isArray(p) && p.length === 0) continue;
    if (obj(p) && Object.keys(p as JsonObject).length === 0) continue;
    out[k] = p;
  }
  return out;
}

function defaultHttpGet(handler: unknown): void {
  const get = obj(obj(handler)?.httpGet);
  if (!get) return;
  get.path ??= '/';
  get.scheme ??= 'HTTP';
}

function defaultFieldRef(holder: unknown): void {
  const ref = obj(obj(holder)?.fieldRef);
  if (ref) ref.apiVersion ??= 'v1';
}

/** The pull policy the API server gives an image without one: Always for `:latest` or no tag, else IfNotPresent. */
function defaultPullPolicy(image: unknown): string {
  const ref = typeof image === 'string' ? image : '';
  const at = ref.indexOf('@');
  const name = at >= 0 ? ref.slice(0, at) : ref;
  const last = name.slice(name.lastIndexOf('/') + 1);
  const tag = last.includes(':') ? last.slice(last.indexOf(':') + 1) : at >= 0 ? '' : 'latest';
  return tag === 'latest' ? 'Always' : 'IfNotPresent';
}

function resourceMap(v: unknown): JsonObject | undefined {
  const o = obj(v);
  return o && Object.fromEntries(Object.entries(o).map(([k, q]) => [k, quantityMillis(q)]));
}

/**
 * A container (raw JSON) with the API server's defaults filled in and its
 * additions taken out; `reference` (the container the injector writes)
 * decides which resource names are the injector's.
 */
function normalizeContainer(container: unknown, reference: JsonObject): JsonObject {
  const c = structuredClone(obj(container) ?? {});
  c.terminationMessagePath ??= '/dev/termination-log';
  c.terminationMessagePolicy ??= 'File';
  c.imagePullPolicy ??= defaultPullPolicy(c.image);
  for (const name of PROBES) {
    const p = obj(c[name]);
    if (!p) continue;
    p.timeoutSeconds ??= 1;
    p.periodSeconds ??= 10;
    p.successThreshold ??= 1;
    p.failureThreshold ??= 3;
    defaultHttpGet(p);
  }
  const lifecycle = obj(c.lifecycle);
  if (lifecycle) for (const hook of ['postStart', 'preStop']) defaultHttpGet(lifecycle[hook]);
  for (const port of arr(c.ports)) {
    const p = obj(port);
    if (p) p.protocol ??= 'TCP';
  }
  for (const e of arr(c.env)) defaultFieldRef(obj(e)?.valueFrom);
  const resources = obj(c.resources);
  if (resources) {
    const limits = resourceMap(resources.limits);
    const requests = { ...limits, ...resourceMap(resources.requests) };
    // LimitRanger may add resources the injector leaves unset; the injector's own must match.
    const ours = obj(reference.resources) ?? {};
    const keep = (m: JsonObject | undefined, names: JsonObject | undefined) =>
      m && Object.fromEntries(Object.entries(m).filter(([k]) => Object.hasOwn(names ?? {}, k) || Object.hasOwn(obj(ours.limits) ?? {}, k)));
    resources.limits = keep(limits, obj(ours.limits));
    resources.requests = keep(requests, obj(ours.requests));
  }
  c.resizePolicy = arr(c.resizePolicy).filter((p) => !(['cpu', 'memory'].includes(String(obj(p)?.resourceName)) && obj(p)?.restartPolicy === 'NotRequired'));
  c.volumeMounts = arr(c.volumeMounts).filter((m) => !(obj(m)?.mountPath === SERVICE_ACCOUNT_TOKEN_PATH && obj(m)?.readOnly === true));
  return prune(c) as JsonObject;
}

/** A volume (raw JSON) with the API server's defaults filled in. */
function normalizeVolume(volume: unknown): JsonObject {
  const v = structuredClone(obj(volume) ?? {});
  const configMap = obj(v.configMap);
  if (configMap) configMap.defaultMode ??= DEFAULT_MODE;
  const downward = obj(v.downwardAPI);
  if (downward) {
    downward.defaultMode ??= DEFAULT_MODE;
    for (const item of arr(downward.items)) defaultFieldRef(item);
  }
  return prune(v) as JsonObject;
}

/** The top-level fields in which two normalized objects differ, in `expected`'s order, then `actual`'s extra ones. */
function fieldsDiffering(actual: JsonObject, expected: JsonObject): string[] {
  const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])];
  return keys.filter((k) => !jsonEqual(actual[k], expected[k]));
}

/** One difference, for a message: the field, and both values when they are short strings or numbers. */
export interface Difference {
  readonly field: string;
  readonly actual?: string;
  readonly expected?: string;
}

function describe(actual: JsonObject, expected: JsonObject): Difference[] {
  const short = (v: unknown) => (typeof v === 'string' || typeof v === 'number' ? String(v).slice(0, 100) : undefined);
  return fieldsDiffering(actual, expected).map((field) => ({ field, actual: short(actual[field]), expected: short(expected[field]) }));
}

/**
 * How container `actual` (from a pod) differs from `expected` (what the
 * injector writes, or the container before an UPDATE); empty when they are
 * the same container as stored by the API server.
 */
export function containerDifferences(actual: unknown, expected: unknown): Difference[] {
  const reference = obj(expected) ?? {};
  return describe(normalizeContainer(actual, reference), normalizeContainer(expected, reference));
}

/** How volume `actual` differs from `expected`; empty when they are the same volume as stored. */
export function volumeDifferences(actual: unknown, expected: unknown): Difference[] {
  return describe(normalizeVolume(actual), normalizeVolume(expected));
}

/** Whether two values are equal once null and empty members are dropped (dnsConfig, labels). */
export function equalPruned(a: unknown, b: unknown): boolean {
  return jsonEqual(prune(a), prune(b));
}

/** `container tenant-dns differs in image (x, the injector writes y), args`: the differences for a message. */
export function formatDifferences(diffs: readonly Difference[], expectedLabel: string): string {
  return diffs
    .map((d) => (d.actual !== undefined || d.expected !== undefined ? `${d.field} (${d.actual ?? 'unset'}; ${expectedLabel} ${d.expected ?? 'unset'})` : d.field))
    .join(', ');
}
