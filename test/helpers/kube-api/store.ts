/**
 * The object store of the stand-in API server: one global resourceVersion
 * counter (as etcd's revision), objects by resource and namespace/name, an
 * event history that `compact()` drops (older watches then get 410 Gone), and
 * the watchers every committed change fans out to. Every write the HTTP layer
 * and the direct test API make goes through here, so both bump versions and
 * notify watches alike.
 */
import { randomUUID } from 'node:crypto';
import { jsonEqual, obj, type JsonObject } from '../../../injector/json.ts';
import { builtinResources, crdResources, metadataCauses, microTimeError, nameCauses, apiVersionOf, type ResourceType } from './resources.ts';
import { FieldOwnership } from './ssa.ts';
import { checkSchema, pruneUnknown, schemaProblem, type FieldValidation } from './schema.ts';
import { alreadyExists, badRequest, conflict, expired, forbidden, invalid, notFound, type ErrorTarget, type StatusCause } from './status.ts';

/** A watch event type as it appears on the wire. */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** A committed change: the object after it (for DELETED, the last state with the deletion's resourceVersion) and before it. */
export interface Change {
  readonly rv: number;
  readonly storage: string;
  readonly type: WatchEventType;
  readonly object: JsonObject;
  readonly previous?: JsonObject;
}

/** A live watch: receives every change committed after it registered. */
export interface StoreWatcher {
  readonly storage: string;
  onChange(change: Change): void;
  /** The resource stopped being served (its CRD was deleted): the watch ends, as on kube-apiserver. */
  onGone(): void;
}

/** Which write to the object a request makes. */
export type WriteTarget = 'main' | 'status';

/** Options of create and update. */
export interface WriteOptions {
  readonly dryRun?: boolean;
  /** How unknown fields are answered (default Warn, as kube-apiserver). */
  readonly fieldValidation?: FieldValidation;
  /** Receives the paths of unknown fields that were pruned under Warn. */
  readonly warnings?: string[];
}

const GENERATE_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

function metaOf(o: JsonObject): JsonObject {
  let m = obj(o.metadata);
  if (!m) {
    m = {};
    o.metadata = m;
  }
  return m;
}

/** The storage key of a resource: group and plural, shared by all its versions. */
export function storageKey(rt: { group: string; plural: string }): string {
  return `${rt.group}/${rt.plural}`;
}

function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

/** The store; see the module comment. */
export class Store {
  /** The resourceVersion of the last committed change. */
  rv = 1;
  /** Changes at or below this resourceVersion are gone from the history. */
  compactedRv = 0;
  private readonly history: Change[] = [];
  private readonly data = new Map<string, Map<string, JsonObject>>();
  private readonly types = new Map<string, ResourceType>();
  readonly watchers = new Set<StoreWatcher>();
  /** Server-side apply field ownership, by object uid. */
  readonly ownership = new FieldOwnership();
  /** How many changes the history keeps; older ones are compacted away, like the watch cache's window. */
  private readonly historyLimit: number;

  constructor(historyLimit = 10_000) {
    this.historyLimit = historyLimit;
    for (const rt of builtinResources()) this.register(rt);
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
      this.create(this.type('', 'v1', 'namespaces')!, undefined, { metadata: { name: ns } });
    }
  }

  /** Every served resource type. */
  allTypes(): ResourceType[] {
    return [...this.types.values()];
  }

  /** The served resource type for group/version/plural. */
  type(group: string, version: string, plural: string): ResourceType | undefined {
    return this.types.get(`${group}/${version}/${plural}`);
  }

  /** Resolves `plural`, `plural.group`, a kind or a short name, as kubectl would; the preferred (first) version wins. */
  resolve(resource: string): ResourceType | undefined {
    for (const rt of this.types.values()) {
      const names = [rt.plural, rt.singular, rt.kind.toLowerCase(), ...rt.shortNames];
      if (names.some((n) => resource === n || resource === `${n}.${rt.group}`)) return rt;
    }
    return undefined;
  }

  /** The resource type serving objects of apiVersion and kind. */
  typeForKind(apiVersion: string, kind: string): ResourceType | undefined {
    return [...this.types.values()].find((rt) => apiVersionOf(rt) === apiVersion && rt.kind === kind);
  }

  private register(rt: ResourceType): void {
    this.types.set(`${rt.group}/${rt.version}/${rt.plural}`, rt);
    if (!this.data.has(storageKey(rt))) this.data.set(storageKey(rt), new Map());
  }

  private bucket(rt: ResourceType): Map<string, JsonObject> {
    return this.data.get(storageKey(rt))!;
  }

  private target(rt: ResourceType, name?: string): ErrorTarget {
    return { group: rt.group, resource: rt.plural, name };
  }

  /** The stored object (a copy, apiVersion and kind set for `rt`), or undefined. */
  get(rt: ResourceType, namespace: string | undefined, name: string): JsonObject | undefined {
    const o = this.bucket(rt).get(objectKey(rt.namespaced ? namespace : undefined, name));
    return o ? this.present(rt, o) : undefined;
  }

  /** Stored objects of `rt`, sorted by namespace and name (etcd key order), optionally in one namespace. */
  list(rt: ResourceType, namespace?: string): JsonObject[] {
    return [...this.bucket(rt).entries()]
      .filter(([, o]) => !namespace || !rt.namespaced || obj(o.metadata)?.namespace === namespace)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => this.present(rt, o));
  }

  /** A copy of a stored object as the given version serves it. */
  present(rt: ResourceType, o: JsonObject): JsonObject {
    const { apiVersion: _a, kind: _k, ...rest } = structuredClone(o);
    return { apiVersion: apiVersionOf(rt), kind: rt.kind, ...rest };
  }

  /** Changes after `rv` in `storage`, or a 410 Expired ApiError when history before them was compacted. */
  changesSince(storage: string, rv: number): Change[] {
    if (rv < this.compactedRv) throw expired(`too old resource version: ${rv} (${this.compactedRv + 1})`);
    return this.history.filter((c) => c.rv > rv && c.storage === storage);
  }

  /** Drops the change history, as etcd compaction does: watches from an older resourceVersion then get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.history.length = 0;
  }

  private commit(rt: ResourceType, type: WatchEventType, o: JsonObject, previous?: JsonObject): JsonObject {
    this.rv++;
    metaOf(o).resourceVersion = String(this.rv);
    const key = objectKey(rt.namespaced ? String(metaOf(o).namespace) : undefined, String(metaOf(o).name));
    if (type === 'DELETED') {
      this.bucket(rt).delete(key);
      this.ownership.forget(String(metaOf(o).uid));
    }
    else this.bucket(rt).set(key, o);
    const change: Change = { rv: this.rv, storage: storageKey(rt), type, object: structuredClone(o), previous };
    this.history.push(change);
    if (this.history.length > this.historyLimit) this.compactedRv = this.history.shift()!.rv;
    for (const w of [...this.watchers]) if (w.storage === change.storage) w.onChange(change);
    if (rt.plural === 'customresourcedefinitions' && rt.group === 'apiextensions.k8s.io') this.crdChanged(type, o);
    return this.present(rt, o);
  }

  private crdChanged(type: WatchEventType, crd: JsonObject): void {
    const name = String(metaOf(crd).name);
    const old = [...this.types.values()].filter((rt) => rt.crd === name);
    for (const rt of old) this.types.delete(`${rt.group}/${rt.version}/${rt.plural}`);
    if (type === 'DELETED') {
      const gone = old[0];
      if (gone) {
        for (const o of this.list(gone)) this.commit(gone, 'DELETED', o, o);
        this.data.delete(storageKey(gone));
        for (const w of [...this.watchers]) if (w.storage === storageKey(gone)) w.onGone();
      }
      return;
    }
    for (const rt of crdResources(crd)) this.register(rt);
  }

  private checkNamespace(rt: ResourceType, namespace: string | undefined, name: string): void {
    if (!rt.namespaced) return;
    if (!namespace) throw badRequest('the server could not find the requested resource: a namespaced resource needs a namespace');
    const nsType = this.type('', 'v1', 'namespaces')!;
    const ns = this.bucket(nsType).get(objectKey(undefined, namespace));
    if (!ns) throw notFound({ group: '', resource: 'namespaces', name: namespace });
    if (metaOf(ns).deletionTimestamp) {
      throw forbidden(this.target(rt, name), `unable to create new content in namespace ${namespace} because it is being terminated`);
    }
  }

  /** Every namespaced resource type, one per storage (the first served version). */
  namespacedTypes(): ResourceType[] {
    const seen = new Set<string>();
    return this.allTypes().filter((rt) => rt.namespaced && !seen.has(storageKey(rt)) && seen.add(storageKey(rt)));
  }

  /** Marks a namespace Terminating (deletionTimestamp, phase), as while its contents are being deleted. */
  terminate(name: string): JsonObject {
    const rt = this.type('', 'v1', 'namespaces')!;
    const current = structuredClone(this.bucket(rt).get(objectKey(undefined, name))!);
    if (metaOf(current).deletionTimestamp) return this.present(rt, current);
    const next = structuredClone(current);
    metaOf(next).deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    next.status = { ...(obj(next.status) ?? {}), phase: 'Terminating' };
    return this.commit(rt, 'MODIFIED', next, current);
  }

  /**
   * Prunes unknown fields (400 under Strict, warnings under Warn), applies
   * schema defaults, then checks names, metadata, the schema and the
   * resource's own rules: 422 Invalid with every cause.
   */
  private validate(rt: ResourceType, o: JsonObject, opts: WriteOptions): void {
    const unknown = pruneUnknown(rt, o);
    if (unknown.length > 0 && opts.fieldValidation === 'Strict') {
      throw badRequest(`${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: strict decoding error: ${unknown.map((u) => `unknown field "${u}"`).join(', ')}`);
    }
    if (unknown.length > 0 && opts.fieldValidation !== 'Ignore') opts.warnings?.push(...unknown);
    const m = metaOf(o);
    const name = String(m.name ?? '');
    const causes: StatusCause[] = [...nameCauses(name, rt.plural === 'namespaces'), ...metadataCauses(o), ...checkSchema(rt, o), ...(rt.validate?.(o) ?? [])];
    for (const path of rt.microTimeFields ?? []) {
      let v: unknown = o;
      for (const p of path) v = obj(v)?.[p];
      const message = microTimeError(rt.kind, v);
      if (message) throw badRequest(message);
    }
    if (rt.kind === 'CustomResourceDefinition') causes.push(...crdCauses(o));
    if (causes.length > 0) throw invalid(rt.kind, rt.group, name, causes);
  }

  private checkBody(rt: ResourceType, body: JsonObject, namespace: string | undefined): void {
    if (body.kind !== undefined && body.kind !== rt.kind) {
      throw badRequest(`the body of the request was of kind ${String(body.kind)}, not ${rt.kind} (${apiVersionOf(rt)})`);
    }
    const ns = obj(body.metadata)?.namespace;
    if (rt.namespaced && ns !== undefined && ns !== '' && ns !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
  }

  /** Creates an object (POST): name or generateName, uid, timestamps, generation; 409 when the name is taken. */
  create(rt: ResourceType, namespace: string | undefined, body: JsonObject, opts: WriteOptions = {}): JsonObject {
    this.checkBody(rt, body, namespace);
    const o = structuredClone(body);
    const m = metaOf(o);
    if (!m.name && typeof m.generateName === 'string' && m.generateName) {
      let suffix = '';
      for (let i = 0; i < 5; i++) suffix += GENERATE_CHARS[Math.floor(Math.random() * GENERATE_CHARS.length)];
      m.name = m.generateName + suffix;
    }
    if (!m.name) throw invalid(rt.kind, rt.group, '', [{ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' }]);
    this.checkNamespace(rt, namespace, String(m.name));
    if (rt.namespaced) m.namespace = namespace;
    else delete m.namespace;
    if (this.bucket(rt).has(objectKey(rt.namespaced ? namespace : undefined, String(m.name)))) throw alreadyExists(this.target(rt, String(m.name)));
    delete m.resourceVersion;
    delete m.deletionTimestamp;
    m.uid = randomUUID();
    m.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (rt.generation) m.generation = 1;
    else delete m.generation;
    o.apiVersion = apiVersionOf(rt);
    o.kind = rt.kind;
    if (rt.statusSubresource && rt.custom) delete o.status;
    this.defaults(rt, o);
    this.normalize(rt, o);
    this.validate(rt, o, opts);
    if (opts.dryRun) return this.present(rt, o);
    return this.commit(rt, 'ADDED', o);
  }

  /** What kube-apiserver does to every Secret written: stringData folded into data (base64), type defaulted to Opaque. */
  private normalize(rt: ResourceType, o: JsonObject): void {
    if (rt.kind !== 'Secret' || rt.group) return;
    const stringData = obj(o.stringData);
    if (stringData) {
      const data = { ...(obj(o.data) ?? {}) };
      for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(String(v)).toString('base64');
      o.data = data;
      delete o.stringData;
    }
    if (!o.type) o.type = 'Opaque';
  }

  private defaults(rt: ResourceType, o: JsonObject): void {
    if (rt.plural === 'namespaces' && !rt.group) {
      const m = metaOf(o);
      m.labels = { ...(obj(m.labels) ?? {}), 'kubernetes.io/metadata.name': String(m.name) };
      o.spec = { finalizers: ['kubernetes'], ...(obj(o.spec) ?? {}) };
      o.status = { phase: 'Active' };
    }
    if (rt.kind === 'CustomResourceDefinition') {
      const spec = obj(o.spec) ?? {};
      const versions = (Array.isArray(spec.versions) ? spec.versions : []).map(obj);
      const storage = versions.find((v) => v?.storage === true) ?? versions[0];
      o.status = {
        conditions: [
          { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: metaOf(o).creationTimestamp },
          { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: metaOf(o).creationTimestamp },
        ],
        acceptedNames: structuredClone(obj(spec.names) ?? {}),
        storedVersions: storage?.name ? [String(storage.name)] : [],
      };
    }
  }

  /**
   * Replaces an object (PUT, or the result of a PATCH). A non-empty
   * metadata.resourceVersion must equal the stored one (else 409 Conflict);
   * an empty one is refused where the real server refuses it (custom
   * resources, CRDs). A main write keeps status when the resource has a status
   * subresource; a status write changes only status. An update that changes
   * nothing commits nothing and keeps the resourceVersion, as kube-apiserver does.
   */
  update(rt: ResourceType, namespace: string | undefined, name: string, body: JsonObject, target: WriteTarget, opts: WriteOptions = {}): JsonObject {
    this.checkBody(rt, body, namespace);
    const bodyName = obj(body.metadata)?.name;
    if (bodyName !== undefined && bodyName !== name) {
      throw badRequest(`the name of the object (${String(bodyName)}) does not match the name on the URL (${name})`);
    }
    const key = objectKey(rt.namespaced ? namespace : undefined, name);
    const stored = this.bucket(rt).get(key);
    if (!stored) throw notFound(this.target(rt, name));
    const current = structuredClone(stored);
    const rv = obj(body.metadata)?.resourceVersion;
    if (rv === undefined || rv === '') {
      if (!rt.unconditionalUpdate) {
        throw invalid(rt.kind, rt.group, name, [{ reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' }]);
      }
    } else if (String(rv) !== metaOf(current).resourceVersion) throw conflict(this.target(rt, name));
    let next: JsonObject;
    if (target === 'status') {
      next = structuredClone(current);
      if (body.status === undefined) delete next.status;
      else next.status = structuredClone(body.status);
    } else {
      next = structuredClone(body);
      const m = metaOf(next);
      const cm = metaOf(current);
      for (const f of ['uid', 'creationTimestamp', 'generation', 'deletionTimestamp', 'namespace', 'name']) {
        if (cm[f] === undefined) delete m[f];
        else m[f] = cm[f];
      }
      if (rt.statusSubresource) {
        if (current.status === undefined) delete next.status;
        else next.status = structuredClone(current.status);
      }
      next.apiVersion = apiVersionOf(rt);
      next.kind = rt.kind;
      this.normalize(rt, next);
      if (rt.generation && specChanged(current, next)) m.generation = Number(cm.generation ?? 0) + 1;
    }
    metaOf(next).resourceVersion = metaOf(current).resourceVersion;
    this.validate(rt, next, opts);
    if (jsonEqual(withoutTypeMeta(next), withoutTypeMeta(current))) return this.present(rt, current);
    if (opts.dryRun) return this.present(rt, next);
    return this.commit(rt, 'MODIFIED', next, current);
  }

  /** Deletes an object; preconditions (uid, resourceVersion) as in DeleteOptions answer 409 when they do not hold. */
  delete(rt: ResourceType, namespace: string | undefined, name: string, preconditions: JsonObject = {}, opts: WriteOptions = {}): JsonObject {
    const key = objectKey(rt.namespaced ? namespace : undefined, name);
    const stored = this.bucket(rt).get(key);
    if (!stored) throw notFound(this.target(rt, name));
    const m = metaOf(stored);
    if (preconditions.uid !== undefined && preconditions.uid !== m.uid) {
      throw conflict(this.target(rt, name), `Precondition failed: UID in precondition: ${String(preconditions.uid)}, UID in object meta: ${String(m.uid)}`);
    }
    if (preconditions.resourceVersion !== undefined && preconditions.resourceVersion !== m.resourceVersion) {
      throw conflict(this.target(rt, name), `Precondition failed: ResourceVersion in precondition: ${String(preconditions.resourceVersion)}, ResourceVersion in object meta: ${String(m.resourceVersion)}`);
    }
    if (opts.dryRun) return this.present(rt, stored);
    if (rt.plural === 'namespaces' && !rt.group) {
      for (const other of this.namespacedTypes()) {
        for (const o of this.list(other, name)) {
          const k = objectKey(name, String(metaOf(o).name));
          const s = this.bucket(other).get(k);
          if (s) this.commit(other, 'DELETED', structuredClone(s), s);
        }
      }
    }
    return this.commit(rt, 'DELETED', structuredClone(stored), stored);
  }
}

function withoutTypeMeta(o: JsonObject): JsonObject {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
}

function specChanged(a: JsonObject, b: JsonObject): boolean {
  const strip = (o: JsonObject): JsonObject => {
    const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
    return rest;
  };
  return !jsonEqual(strip(a), strip(b));
}

function crdCauses(crd: JsonObject): StatusCause[] {
  const spec = obj(crd.spec) ?? {};
  const names = obj(spec.names) ?? {};
  const causes: StatusCause[] = [];
  const want = `${String(names.plural ?? '')}.${String(spec.group ?? '')}`;
  if (obj(crd.metadata)?.name !== want) {
    causes.push({ reason: 'FieldValueInvalid', field: 'metadata.name', message: `Invalid value: "${String(obj(crd.metadata)?.name)}": must be spec.names.plural+"."+spec.group` });
  }
  if (!names.kind) causes.push({ reason: 'FieldValueRequired', field: 'spec.names.kind', message: 'Required value' });
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') {
    causes.push({ reason: 'FieldValueNotSupported', field: 'spec.scope', message: `Unsupported value: "${String(spec.scope)}": supported values: "Cluster", "Namespaced"` });
  }
  const versions = Array.isArray(spec.versions) ? spec.versions.map(obj) : [];
  versions.forEach((v, i) => {
    const schema = obj(obj(v?.schema)?.openAPIV3Schema);
    const field = `spec.versions[${i}].schema.openAPIV3Schema`;
    if (!schema) causes.push({ reason: 'FieldValueRequired', field, message: 'Required value: schemas are required' });
    else if (schema.type !== 'object') causes.push({ reason: 'FieldValueInvalid', field: `${field}.type`, message: `Unsupported value: ${JSON.stringify(schema.type ?? '')}: supported values: "object"` });
    else {
      const problem = schemaProblem(schema);
      if (problem) causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${problem}` });
    }
  });
  if (versions.length === 0) causes.push({ reason: 'FieldValueRequired', field: 'spec.versions', message: 'Required value: must have exactly one version marked as storage version' });
  else if (versions.filter((v) => v?.storage === true).length !== 1) {
    causes.push({ reason: 'FieldValueInvalid', field: 'spec.versions', message: 'Invalid value: must have exactly one version marked as storage version' });
  }
  return causes;
}
