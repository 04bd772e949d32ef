/**
 * Rendering DNSPolicy and ClusterDNSPolicy objects into the two policy
 * ConfigMaps of every injected namespace (the platform layer and the tenant
 * layer), with a status per object. Pure: the controller and
 * `tenant-dns render -f` call {@link renderAll} with the objects they have.
 *
 * Each layer's objects are merged in order of name, one at a time; after
 * each addition the layer is checked with the sidecar's own parser and
 * checks (`parsePolicy`; the tenant layer against the platform layer's
 * `platformView`), so an object that makes the layer invalid is the one
 * refused. An object refused now contributes its last accepted spec, if it
 * has one; one that never had an accepted spec holds the layers it would
 * change (they are not rendered, the existing ConfigMaps keep serving).
 * The merge order is described in injector/README.md ("Rendering").
 */
import type { TSchema } from '@sinclair/typebox';
import { Type, Value } from '../sidecar/config/typebox.ts';
import { stringify } from 'yaml';
import { CLUSTER_DEFAULTS, clusterZones } from '../sidecar/config/cluster.ts';
import { ConfigInvalidError, parseYaml, type Problem } from '../sidecar/config/load.ts';
import { checkPolicy, POLICY_API_VERSION, ServiceDiscoverySchema, type DNSPolicy, type PlatformView, type PolicyCheckOptions } from '../sidecar/config/policy-schema.ts';
import { selectorMatches } from '../sidecar/policy/compile.ts';
import { parsePolicy, platformView } from '../sidecar/policy/manager.ts';
import type { InjectorConfig } from './config-schema.ts';
import { ClusterDNSPolicySpecSchema, ClusterSelectorSchema, DNSPolicySpecSchema, type ClusterSelector, type SplitHorizon } from './crd-schema.ts';
import { arr, jsonEqual, obj, type JsonObject } from './json.ts';
import { InjectValues, Keys, POLICY_KEY, RENDERED_MANAGED_BY, RenderedKeys } from './names.ts';
import { namespaceTenant } from './namespaces.ts';
import { publishedIndex, splitHorizonProblems, splitHorizonZones, type PublishedIndex, type PublishedObjects } from './split-horizon.ts';

/** What {@link renderAll} renders from: the objects as the API server has them. */
export interface RenderInput {
  /** v1 Namespace objects. */
  readonly namespaces: readonly JsonObject[];
  /** ClusterDNSPolicy objects. */
  readonly clusterPolicies: readonly JsonObject[];
  /** DNSPolicy objects. */
  readonly policies: readonly JsonObject[];
  /** The last accepted spec of each object, by {@link objectKey}: the `accepted` of the previous render. */
  readonly lastAccepted?: ReadonlyMap<string, JsonObject>;
  /** The objects tenants publish names with (Ingresses, Services, HTTPRoutes, Gateways), read only for split horizon; absent: none. */
  readonly published?: PublishedObjects;
}

/** The injector settings rendering depends on ({@link settingsFromConfig}). */
export interface RenderSettings {
  /** Namespace label naming the tenant; the namespace name when absent. */
  readonly tenantLabel: string;
  /** Namespaces never injected, hence never rendered. */
  readonly excludedNamespaces: readonly string[];
  /** Name of the platform layer's ConfigMap. */
  readonly platformPolicyConfigMap: string;
  /** Name of the tenant layer's ConfigMap. */
  readonly tenantPolicyConfigMap: string;
  /** The cluster domain: no forward zone may lie in it. */
  readonly clusterDomain: string;
}

/** One problem of an object, with the field named from the object's root (`spec.rules[2].names[0]`). */
export interface ObjectProblem {
  readonly field: string;
  readonly message: string;
}

/** The status of one policy object after a render. */
export interface ObjectStatus {
  /** {@link objectKey}. */
  readonly key: string;
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly generation?: number;
  /** Whether the current spec was accepted everywhere it applies (the Accepted condition). */
  readonly accepted: boolean;
  /** `Accepted`, `Invalid` (the object alone is not a valid policy) or `Conflict` (it is, but not merged with the others). */
  readonly reason: string;
  /** For the condition: what was accepted where, or the problems, `field: message` joined by `; `. */
  readonly message: string;
  /** Injected namespaces the object applies to. */
  readonly namespaces: number;
  /** The problems behind Accepted=False (empty when accepted). */
  readonly problems: readonly ObjectProblem[];
}

/** A layer not rendered because an object with no accepted spec would change it. */
export interface HeldLayer {
  readonly namespace: string;
  readonly layer: 'platform' | 'tenant';
  readonly reason: string;
}

/** A namespace whose platform layer was rendered without its split horizon names, and why. */
export interface SplitHorizonSkipped {
  readonly namespace: string;
  readonly reason: string;
}

/** What {@link renderAll} returns. */
export interface RenderResult {
  /** Complete v1 ConfigMaps to write, two per injected namespace unless held, sorted by namespace. */
  readonly configMaps: readonly JsonObject[];
  /** Layers not rendered: their existing ConfigMaps must be left as they are. */
  readonly held: readonly HeldLayer[];
  /** One per input policy object, ClusterDNSPolicies first, each kind in merge order. */
  readonly statuses: readonly ObjectStatus[];
  /** The new last-accepted specs by object key: pass it as the next render's `lastAccepted`. */
  readonly accepted: ReadonlyMap<string, JsonObject>;
  /** Platform layers rendered without split horizon because the layer would not validate with it (sorted by namespace). */
  readonly splitHorizonSkipped: readonly SplitHorizonSkipped[];
}

/** The settings of {@link renderAll} from the injector configuration. */
export function settingsFromConfig(config: InjectorConfig): RenderSettings {
  return {
    tenantLabel: config.tenantLabel,
    excludedNamespaces: config.excludedNamespaces,
    platformPolicyConfigMap: config.platformPolicyConfigMap,
    tenantPolicyConfigMap: config.tenantPolicyConfigMap,
    clusterDomain: config.clusterDomain,
  };
}

type Layer = 'platform' | 'tenant';
type Kind = 'ClusterDNSPolicy' | 'DNSPolicy';

/** The key of an object in `lastAccepted`: its uid, else `Kind/namespace/name` (`Kind//name` when cluster-scoped). */
export function objectKey(o: JsonObject): string {
  const meta = obj(o.metadata) ?? {};
  if (typeof meta.uid === 'string' && meta.uid !== '') return meta.uid;
  return `${String(o.kind)}/${typeof meta.namespace === 'string' ? meta.namespace : ''}/${String(meta.name)}`;
}

/** What the render knows of one policy object. */
interface PolicyObject {
  readonly kind: Kind;
  readonly key: string;
  readonly name: string;
  readonly namespace: string | undefined;
  readonly generation: number | undefined;
  /** `Kind/name`, as in messages and the rendered-from annotation. */
  readonly ref: string;
  /** The current spec (defaults applied) when it is valid on its own. */
  readonly current: JsonObject | undefined;
  /** The problems of the current spec on its own. */
  readonly invalid: readonly ObjectProblem[];
  readonly remembered: JsonObject | undefined;
  /** Which namespaces it selects (ClusterDNSPolicy): undefined selects every injected namespace. */
  readonly selector: ClusterSelector | undefined;
}

/** An injected namespace. */
interface NamespaceInfo {
  readonly name: string;
  readonly tenant: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** A merged layer spec, with where each list entry came from. */
interface Merged {
  readonly spec: JsonObject;
  readonly origins: Readonly<Record<ListField, readonly { ref: string; index: number }[]>>;
  readonly from: readonly string[];
  readonly isolation: boolean;
  readonly shared: readonly string[];
}

const LIST_FIELDS = ['rules', 'splitZones', 'forwardZones'] as const;
type ListField = (typeof LIST_FIELDS)[number];

const EMPTY_MERGED: Merged = {
  spec: { rules: [], defaultAction: 'allow', splitZones: [], forwardZones: [] },
  origins: { rules: [], splitZones: [], forwardZones: [] },
  from: [],
  isolation: false,
  shared: [],
};

function labelsOf(o: JsonObject): Record<string, string> {
  const labels = obj(obj(o.metadata)?.labels) ?? {};
  return Object.fromEntries(Object.entries(labels).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

function nameOf(o: JsonObject): string {
  const n = obj(o.metadata)?.name;
  return typeof n === 'string' ? n : '';
}


/** Label-selector problems a schema cannot express: In and NotIn need values, Exists and DoesNotExist take none. */
function selectorProblems(selector: unknown): Problem[] {
  const out: Problem[] = [];
  arr(obj(obj(selector)?.namespaceSelector)?.matchExpressions).forEach((e, i) => {
    const x = obj(e);
    if (!x) return;
    const needs = x.operator === 'In' || x.operator === 'NotIn';
    const values = arr(x.values);
    const path = ['spec', 'selector', 'namespaceSelector', 'matchExpressions', i, 'values'];
    if (needs && values.length === 0) out.push({ path, message: `operator ${String(x.operator)} needs values` });
    if (!needs && values.length > 0) out.push({ path, message: `operator ${String(x.operator)} takes no values` });
  });
  return out;
}

const DOC_SCHEMAS: Record<Kind, TSchema> = {
  DNSPolicy: docSchema('DNSPolicy', DNSPolicySpecSchema),
  ClusterDNSPolicy: docSchema('ClusterDNSPolicy', ClusterDNSPolicySpecSchema),
};

function docSchema(kind: Kind, spec: TSchema): TSchema {
  return Type.Object({ apiVersion: Type.Literal(POLICY_API_VERSION), kind: Type.Literal(kind), metadata: Type.Object({ name: Type.String({ minLength: 1 }) }), spec }, { additionalProperties: false });
}

/**
 * Results of the checks by what was checked, kept across renders: a check is
 * a pure function of its key (the document text and the check options), so
 * a render that finds most objects unchanged parses only the changed ones
 * (the sidecar's parser takes about 20 ms for a policy of 50 rules). Bounded:
 * the least recently used results go first.
 */
const CHECK_MEMO = new Map<string, unknown>();
const CHECK_MEMO_CAP = 4096;

function memo<T>(key: string, make: () => T): T {
  if (CHECK_MEMO.has(key)) {
    const hit = CHECK_MEMO.get(key) as T;
    CHECK_MEMO.delete(key);
    CHECK_MEMO.set(key, hit);
    return hit;
  }
  const value = make();
  CHECK_MEMO.set(key, value);
  if (CHECK_MEMO.size > CHECK_MEMO_CAP) CHECK_MEMO.delete(CHECK_MEMO.keys().next().value!);
  return value;
}

/** A check result as stored: frozen, so a caller cannot change what the next render reads. */
type AloneCheck = { readonly spec?: JsonObject; readonly problems: readonly ObjectProblem[] };

/**
 * Checks one object on its own: its spec against the kind's schema and the
 * sidecar's policy checks (`checkPolicy`), through the sidecar's YAML loader.
 * Returns the spec with defaults, or the problems.
 */
function checkAlone(o: JsonObject, kind: Kind, options: PolicyCheckOptions): AloneCheck {
  const doc = { apiVersion: o.apiVersion ?? POLICY_API_VERSION, kind, metadata: { name: 'object' }, spec: o.spec ?? {} };
  return memo(`alone\0${kind}\0${String(options.clusterZones)}\0${JSON.stringify(doc)}`, () => {
    const check = (v: { spec: unknown }) => [...checkPolicy(v as unknown as DNSPolicy, options), ...(kind === 'ClusterDNSPolicy' ? [...selectorProblems(obj(v.spec)?.selector), ...splitHorizonProblems(obj(v.spec)?.splitHorizon)] : [])];
    try {
      const parsed = parseYaml(stringify(doc), nameOf(o), DOC_SCHEMAS[kind], check as never) as { spec: JsonObject };
      return Object.freeze({ spec: parsed.spec, problems: Object.freeze([]) });
    } catch (err) {
      if (err instanceof ConfigInvalidError) return Object.freeze({ problems: Object.freeze(err.problems.map((p) => ({ field: p.field, message: p.message }))) });
      throw err;
    }
  });
}

function policyObject(o: JsonObject, kind: Kind, lastAccepted: ReadonlyMap<string, JsonObject> | undefined, options: PolicyCheckOptions): PolicyObject {
  const meta = obj(o.metadata) ?? {};
  const key = objectKey(o);
  const alone = checkAlone(o, kind, options);
  const remembered = lastAccepted?.get(key);
  // The selector of the spec that applies: the current one, else the remembered one; one that cannot be read selects every namespace.
  const basis = alone.spec ?? remembered ?? obj(o.spec) ?? {};
  const raw = basis.selector;
  const selector = raw === undefined ? {} : Value.Check(ClusterSelectorSchema, raw) && selectorProblems(raw).length === 0 ? (raw as ClusterSelector) : undefined;
  return {
    kind,
    key,
    name: nameOf(o),
    namespace: typeof meta.namespace === 'string' ? meta.namespace : undefined,
    generation: typeof meta.generation === 'number' ? meta.generation : undefined,
    ref: `${kind}/${nameOf(o)}`,
    current: alone.spec,
    invalid: alone.problems,
    remembered,
    selector,
  };
}

/** Whether a ClusterDNSPolicy selects an injected namespace. */
function selects(p: PolicyObject, ns: NamespaceInfo): boolean {
  if (p.selector === undefined) return true;
  if (p.selector.tenants !== undefined && !p.selector.tenants.includes(ns.tenant)) return false;
  return selectorMatches(p.selector.namespaceSelector, ns.labels);
}

/** `merged` with `spec` added after it (the merge order of injector/README.md, "Rendering"). */
function mergeSpec(merged: Merged, spec: JsonObject, ref: string, from: string): Merged {
  const out: JsonObject = { ...merged.spec };
  const origins = { ...merged.origins };
  for (const f of LIST_FIELDS) {
    const add = arr(spec[f]);
    out[f] = [...arr(merged.spec[f]), ...add];
    origins[f] = [...merged.origins[f], ...add.map((_, index) => ({ ref, index }))];
  }
  if (spec.defaultAction === 'deny') out.defaultAction = 'deny';
  if (out.defaultResponse === undefined && spec.defaultResponse !== undefined) out.defaultResponse = spec.defaultResponse;
  if (out.ipFamilies === undefined && spec.ipFamilies !== undefined) out.ipFamilies = spec.ipFamilies;
  const sd = obj(spec.serviceDiscovery);
  const shared = [...new Set([...merged.shared, ...arr(sd?.sharedNamespaces).filter((n): n is string => typeof n === 'string')])].sort();
  return { spec: out, origins, from: [...merged.from, from], isolation: merged.isolation || sd?.isolation === 'tenant', shared };
}

/**
 * The sidecar policy document of a layer, with the tenant's namespace list
 * of service-discovery isolation as given: the check runs on the document
 * with an empty list, shared by every namespace of the selection (the list
 * is checked on its own, {@link isolationProblem}).
 */
function layerDoc(merged: Merged, layer: Layer, tenantNamespaces: readonly string[] = []): JsonObject {
  const spec: JsonObject = { ...merged.spec };
  if (merged.isolation) spec.serviceDiscovery = { isolation: 'tenant', namespaces: [...tenantNamespaces], sharedNamespaces: [...merged.shared] };
  return { apiVersion: POLICY_API_VERSION, kind: 'DNSPolicy', metadata: { name: layer }, spec };
}

/**
 * The `policy.yaml` of a layer of a namespace: a comment naming where it
 * came from, then the document. `spec.serviceDiscovery` comes last in the
 * document, so the YAML of the rest is made once per layer (about 5 ms for
 * 50 rules) and only that part per tenant.
 */
function layerText(merged: Merged, layer: Layer, namespace: string, tenantNamespaces: readonly string[]): string {
  const header =
    `# The ${layer} policy layer of namespace ${namespace}, rendered by ${RENDERED_MANAGED_BY} from ` +
    `${merged.from.length > 0 ? merged.from.join(', ') : `no ${layer === 'platform' ? 'ClusterDNSPolicy' : 'DNSPolicy'}`}.\n` +
    `# Edit those objects, not this ConfigMap: it is rewritten, and only the controller may write it.\n`;
  const doc = layerDoc({ ...merged, isolation: false }, layer);
  const body = memo(`yaml\0${JSON.stringify(doc)}`, () => stringify(doc, { lineWidth: 0 }));
  if (!merged.isolation) return header + body;
  const sd = stringify({ serviceDiscovery: obj(layerDoc(merged, layer, tenantNamespaces).spec)!.serviceDiscovery }, { lineWidth: 0 });
  return header + body + sd.replace(/^(?=.)/gm, '  ');
}

/** Why a tenant's namespace list cannot be rendered into the platform layer (the sidecar's schema of it), or undefined. */
function isolationProblem(merged: Merged, tenantNamespaces: readonly string[]): string | undefined {
  if (!merged.isolation) return undefined;
  const sd = { isolation: 'tenant', namespaces: [...tenantNamespaces], sharedNamespaces: [...merged.shared] };
  const e = Value.Errors(ServiceDiscoverySchema, sd).First();
  return e === undefined ? undefined : `spec.serviceDiscovery${e.path.replace(/\/(\d+)/g, '[$1]').replace(/\//g, '.')}: ${e.message} (the tenant's namespaces, rendered)`;
}

const LIST_REF = /\b(rules|splitZones|forwardZones)\[(\d+)\]/g;
const FIELD_REF = /^spec\.(rules|splitZones|forwardZones)\[(\d+)\](.*)$/;

/** A problem of the merged layer, named from the object added last (`ref`): its own indexes, other objects' entries by object. */
function attribute(problem: { field: string; message: string }, merged: Merged, ref: string): ObjectProblem {
  const local = (list: string, i: number) => {
    const origin = merged.origins[list as ListField]?.[i];
    if (origin === undefined) return `${list}[${i}]`;
    return origin.ref === ref ? `${list}[${origin.index}]` : `${origin.ref} spec.${list}[${origin.index}]`;
  };
  let field = problem.field;
  const m = FIELD_REF.exec(field);
  if (m) {
    const origin = merged.origins[m[1] as ListField]?.[Number(m[2])];
    field = origin?.ref === ref ? `spec.${m[1]}[${origin.index}]${m[3]}` : 'spec';
  }
  return { field, message: problem.message.replace(LIST_REF, (_, list: string, i: string) => local(list, Number(i))) };
}

/** The result of checking a merged layer: the document as the sidecar parsed it, or the problems. */
type LayerCheck = { readonly doc: DNSPolicy; readonly problems?: undefined } | { readonly problems: readonly { field: string; message: string }[] };

/** One object's outcome in one layer. */
interface Outcome {
  readonly reason: 'Invalid' | 'Conflict';
  readonly problems: readonly ObjectProblem[];
}

/** A merged layer. */
interface LayerResult {
  readonly merged: Merged;
  readonly doc: DNSPolicy;
  readonly outcomes: ReadonlyMap<string, Outcome>;
  /** Why the layer is held, when it is. */
  readonly held?: string;
}

function formatProblems(problems: readonly ObjectProblem[]): string {
  return problems.map((p) => `${p.field}: ${p.message}`).join('; ');
}

/** Merges `objects` (in order) into a layer, checking each addition with `check`. */
function mergeLayer(objects: readonly PolicyObject[], check: (m: Merged) => LayerCheck): LayerResult {
  let merged = EMPTY_MERGED;
  const first = check(merged);
  if (first.problems) throw new Error(`the empty policy does not validate: ${formatProblems(first.problems)}`);
  let last: { doc: DNSPolicy } = first;
  const outcomes = new Map<string, Outcome>();
  let held: string | undefined;
  for (const p of objects) {
    if (p.current === undefined) outcomes.set(p.key, { reason: 'Invalid', problems: p.invalid });
    const variants: { spec: JsonObject; from: string; current: boolean }[] = [];
    if (p.current !== undefined) variants.push({ spec: p.current, from: p.generation === undefined ? p.ref : `${p.ref}@${p.generation}`, current: true });
    if (p.remembered !== undefined && !(p.current !== undefined && jsonEqual(p.current, p.remembered))) variants.push({ spec: p.remembered, from: `${p.ref}@last-accepted`, current: false });
    let added = false;
    for (const v of variants) {
      const candidate = mergeSpec(merged, v.spec, p.ref, v.from);
      const result = check(candidate);
      if (result.problems === undefined) {
        merged = candidate;
        last = result;
        added = true;
        break;
      }
      if (v.current) outcomes.set(p.key, { reason: 'Conflict', problems: result.problems.map((x) => attribute(x, candidate, p.ref)) });
    }
    if (!added && p.remembered === undefined && held === undefined) {
      const o = outcomes.get(p.key)!;
      held = `${p.ref} is not accepted (${o.reason}: ${formatProblems(o.problems)}) and has no earlier accepted spec to use instead`;
    }
  }
  return { merged, doc: last.doc, outcomes, ...(held === undefined ? {} : { held }) };
}

/**
 * Checks a layer's document with the sidecar's own parser (what the sidecar
 * will read); `platformKey` names the platform layer a tenant layer is
 * checked under (its document), '' for the platform layer.
 */
function checker(layer: Layer, options: PolicyCheckOptions, platformKey: string): (m: Merged) => LayerCheck {
  return (m) => {
    const doc = layerDoc(m, layer);
    return memo(`layer\0${String(options.clusterZones)}\0${platformKey}\0${JSON.stringify(doc)}`, () => {
      try {
        return Object.freeze({ doc: parsePolicy(stringify(doc, { lineWidth: 0 }), layer, options) });
      } catch (err) {
        if (err instanceof ConfigInvalidError) return Object.freeze({ problems: Object.freeze(err.problems.map((p) => ({ field: p.field, message: p.message }))) });
        throw err;
      }
    });
  };
}

function configMap(name: string, namespace: string, layer: Layer, result: LayerResult, text: string): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      namespace,
      labels: { [RenderedKeys.managedBy]: RENDERED_MANAGED_BY, [RenderedKeys.layer]: layer },
      annotations: { [RenderedKeys.renderedFrom]: result.merged.from.join(',') },
    },
    data: { [POLICY_KEY]: text },
  };
}

/** Merge order: by namespace, then by name (code-unit order, as the API server sorts names). */
function byName(a: PolicyObject, b: PolicyObject): number {
  const x = `${a.namespace ?? ''}/${a.name}`;
  const y = `${b.namespace ?? ''}/${b.name}`;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * Renders the policy ConfigMaps of every injected namespace and the status
 * of every policy object (see the module comment). Pure and deterministic:
 * the same input gives the same output, so a caller writes only what changed.
 */
export function renderAll(input: RenderInput, settings: RenderSettings): RenderResult {
  const zones = clusterZones(settings.clusterDomain, CLUSTER_DEFAULTS.clusterReverseZones);
  const options: PolicyCheckOptions = { clusterZones: zones };
  const excluded = new Set(settings.excludedNamespaces);
  const all = input.namespaces.map((n) => ({ name: nameOf(n), labels: labelsOf(n) })).filter((n) => n.name !== '');
  const byTenant = new Map<string, string[]>();
  for (const n of all) {
    const t = namespaceTenant(n.name, n.labels[settings.tenantLabel]);
    byTenant.set(t, [...(byTenant.get(t) ?? []), n.name]);
  }
  const injected: NamespaceInfo[] = all
    .filter((n) => n.labels[Keys.namespaceInject] === InjectValues.namespaceEnabled && !excluded.has(n.name))
    .map((n) => ({ ...n, tenant: namespaceTenant(n.name, n.labels[settings.tenantLabel]) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const injectedNames = new Set(injected.map((n) => n.name));

  const cluster = input.clusterPolicies.map((o) => policyObject(o, 'ClusterDNSPolicy', input.lastAccepted, options)).sort(byName);
  const tenantPolicies = input.policies.map((o) => policyObject(o, 'DNSPolicy', input.lastAccepted, options)).sort(byName);

  const configMaps: JsonObject[] = [];
  const held: HeldLayer[] = [];
  /** Per object: the first refusal (with the namespace it happened in) and the namespaces it applies to. */
  const refusals = new Map<string, { outcome: Outcome; namespace?: string }>();
  const counts = new Map<string, number>();
  const refuse = (layer: LayerResult, namespace?: string) => {
    for (const [key, outcome] of layer.outcomes) if (!refusals.has(key)) refusals.set(key, { outcome, ...(namespace === undefined ? {} : { namespace }) });
  };
  // The platform layer depends on the selecting objects (and, only through the rendered namespace list, the tenant):
  // merged once per selection.
  // Split horizon: with some policy enabling it, the platform layer also depends on the tenant's published names.
  const splitSettings = (p: PolicyObject) => {
    const sh = obj((p.current ?? p.remembered)?.splitHorizon);
    return sh?.enabled === true ? [sh as unknown as SplitHorizon] : [];
  };
  let index: PublishedIndex | undefined;
  const splitSkipped: SplitHorizonSkipped[] = [];
  const platformCache = new Map<string, { result: LayerResult; view: PlatformView; key: string; skipped?: string }>();
  for (const ns of injected) {
    const selecting = cluster.filter((p) => selects(p, ns));
    for (const p of selecting) counts.set(p.key, (counts.get(p.key) ?? 0) + 1);
    const tenantNamespaces = [...(byTenant.get(ns.tenant) ?? [])].sort();
    const selection = JSON.stringify(selecting.map((p) => p.key));
    let base = platformCache.get(selection);
    if (base === undefined) {
      const result = mergeLayer(selecting, checker('platform', options, ''));
      const key = JSON.stringify(layerDoc(result.merged, 'platform'));
      base = { result, view: memo(`view\0${key}`, () => platformView(result.doc)), key };
      platformCache.set(selection, base);
    }
    let platform = base;
    const split = selecting.flatMap(splitSettings);
    if (split.length > 0 && base.result.held === undefined) {
      index ??= publishedIndex(input.namespaces, input.clusterPolicies, input.published ?? {}, settings.tenantLabel);
      const taken = new Set(arr(base.result.merged.spec.splitZones).flatMap((z) => arr(obj(z)?.names).map((g) => String(g).toLowerCase().replace(/\.$/, ''))));
      const zones = splitHorizonZones(ns.tenant, index, split, taken);
      if (zones.length > 0) {
        const withZones = `${selection}\0${JSON.stringify(zones)}`;
        let cached = platformCache.get(withZones);
        if (cached === undefined) {
          const merged = mergeSpec(base.result.merged, { splitZones: zones }, 'split-horizon', 'split-horizon');
          const checked = checker('platform', options, '')(merged);
          if (checked.problems) cached = { ...base, skipped: formatProblems(checked.problems) };
          else {
            const result: LayerResult = { ...base.result, merged, doc: checked.doc };
            const key = JSON.stringify(layerDoc(merged, 'platform'));
            cached = { result, view: memo(`view\0${key}`, () => platformView(checked.doc)), key };
          }
          platformCache.set(withZones, cached);
        }
        if (cached.skipped !== undefined) splitSkipped.push({ namespace: ns.name, reason: cached.skipped });
        platform = cached;
      }
    }
    refuse(platform.result, ns.name);
    const listProblem = isolationProblem(platform.result.merged, tenantNamespaces);
    if (platform.result.held !== undefined) held.push({ namespace: ns.name, layer: 'platform', reason: platform.result.held });
    else if (listProblem !== undefined) held.push({ namespace: ns.name, layer: 'platform', reason: listProblem });
    else configMaps.push(configMap(settings.platformPolicyConfigMap, ns.name, 'platform', platform.result, layerText(platform.result.merged, 'platform', ns.name, tenantNamespaces)));

    const own = tenantPolicies.filter((p) => p.namespace === ns.name);
    for (const p of own) counts.set(p.key, 1);
    const tenant = mergeLayer(own, checker('tenant', { ...options, platform: platform.view }, platform.key));
    refuse(tenant);
    if (tenant.held !== undefined) held.push({ namespace: ns.name, layer: 'tenant', reason: tenant.held });
    else configMaps.push(configMap(settings.tenantPolicyConfigMap, ns.name, 'tenant', tenant, layerText(tenant.merged, 'tenant', ns.name, tenantNamespaces)));
  }

  const statuses: ObjectStatus[] = [];
  const accepted = new Map<string, JsonObject>();
  for (const p of [...cluster, ...tenantPolicies]) {
    const refusal = p.current === undefined ? { outcome: { reason: 'Invalid' as const, problems: p.invalid } } : refusals.get(p.key);
    const namespaces = counts.get(p.key) ?? 0;
    let message: string;
    if (refusal !== undefined) {
      const where = refusal.namespace !== undefined && refusal.outcome.reason === 'Conflict' ? ` (in namespace ${refusal.namespace})` : '';
      const fallback =
        p.remembered !== undefined
          ? ': its last accepted spec still applies'
          : namespaces > 0
            ? ': the namespaces it applies to keep their last rendered policy until it is fixed or deleted'
            : '';
      message = `${formatProblems(refusal.outcome.problems)}${where}${fallback}`;
    } else if (p.kind === 'ClusterDNSPolicy') message = `applies to ${namespaces} injected namespace${namespaces === 1 ? '' : 's'}`;
    else if (injectedNames.has(p.namespace ?? '')) message = `merged into the tenant layer of namespace ${p.namespace}`;
    else message = `namespace ${p.namespace} is not injected (label ${Keys.namespaceInject}=${InjectValues.namespaceEnabled}): nothing rendered`;
    if (refusal === undefined && p.current !== undefined) accepted.set(p.key, p.current);
    else if (p.remembered !== undefined) accepted.set(p.key, p.remembered);
    statuses.push({
      key: p.key,
      kind: p.kind,
      ...(p.namespace === undefined ? {} : { namespace: p.namespace }),
      name: p.name,
      ...(p.generation === undefined ? {} : { generation: p.generation }),
      accepted: refusal === undefined,
      reason: refusal === undefined ? 'Accepted' : refusal.outcome.reason,
      message,
      namespaces,
      problems: refusal?.outcome.problems ?? [],
    });
  }
  return { configMaps, held, statuses, accepted, splitHorizonSkipped: splitSkipped };
}
