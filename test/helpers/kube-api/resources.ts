/**
 * The resource types the stand-in API server serves: the built-in ones
 * (namespaces, configmaps, events, leases, customresourcedefinitions) and the
 * ones a CustomResourceDefinition registers, with what discovery, tables and
 * validation need to know about each.
 */
import { arr, obj, type JsonObject } from '../../../injector/json.ts';
import type { StatusCause } from './status.ts';

/** A column of a Table answer: its definition and how a cell is computed from an object. */
export interface PrinterColumn {
  readonly name: string;
  readonly type: string;
  readonly format: string;
  readonly description: string;
  readonly priority: number;
  readonly cell: (o: JsonObject) => unknown;
}

/** One served resource (group, version, plural) and its behaviour. */
export interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly singular: string;
  readonly kind: string;
  readonly listKind: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  /** Has the /status subresource: main writes keep status, /status writes change only status. */
  readonly statusSubresource: boolean;
  /** Tracks metadata.generation (bumped when anything but metadata and status changes). */
  readonly generation: boolean;
  /** PUT without metadata.resourceVersion is allowed (false for custom resources and CRDs, as in kube-apiserver). */
  readonly unconditionalUpdate: boolean;
  /** Custom resource: list items keep apiVersion and kind. */
  readonly custom: boolean;
  /** Name of the CRD that registered it. */
  readonly crd?: string;
  /** The version's openAPIV3Schema, for custom resources. */
  readonly schema?: JsonObject;
  readonly columns: readonly PrinterColumn[];
  /** Field-selector fields besides metadata.name and metadata.namespace. */
  readonly fieldLabel: (field: string) => boolean;
  /** Paths of MicroTime fields, which must carry exactly six fractional digits (else a 400 decoding error). */
  readonly microTimeFields?: readonly (readonly string[])[];
  /** Resource-specific validation of an object about to be stored. */
  readonly validate?: (o: JsonObject) => StatusCause[];
}

/** apiVersion of a resource type: `v1` or `group/version`. */
export function apiVersionOf(rt: { group: string; version: string }): string {
  return rt.group ? `${rt.group}/${rt.version}` : rt.version;
}

/** How long ago an RFC 3339 time was, as kubectl prints ages (`45s`, `3m`, `5h`, `2d`). */
export function humanAge(timestamp: unknown, now = Date.now()): string {
  if (typeof timestamp !== 'string') return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(timestamp)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 ? `${s % 60}s` : ''}`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

const meta = (o: JsonObject): JsonObject => obj(o.metadata) ?? {};

function column(name: string, type: string, description: string, cell: (o: JsonObject) => unknown, format = '', priority = 0): PrinterColumn {
  return { name, type, format, description, priority, cell };
}

/** The Name column every table starts with. */
export const nameColumn = column('Name', 'string', 'Name must be unique within a namespace.', (o) => meta(o).name, 'name');
const ageColumn = column('Age', 'string', 'CreationTimestamp is a timestamp representing the server time when this object was created.', (o) => humanAge(meta(o).creationTimestamp));

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Checks metadata.name as a DNS-1123 label (namespaces) or subdomain (everything else). */
export function nameCauses(name: string, label: boolean): StatusCause[] {
  const ok = label ? name.length <= 63 && DNS1123_LABEL.test(name) : name.length <= 253 && DNS1123_SUBDOMAIN.test(name);
  if (ok) return [];
  const what = label ? 'a lowercase RFC 1123 label' : 'a lowercase RFC 1123 subdomain';
  const chars = label ? "lower case alphanumeric characters or '-'" : "lower case alphanumeric characters, '-' or '.'";
  return [{ reason: 'FieldValueInvalid', field: 'metadata.name', message: `Invalid value: "${name}": ${what} must consist of ${chars}, and must start and end with an alphanumeric character` }];
}

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Checks metadata.labels keys and values and annotation keys, as the real server does for every object. */
export function metadataCauses(o: JsonObject): StatusCause[] {
  const causes: StatusCause[] = [];
  for (const [k, v] of Object.entries(obj(meta(o).labels) ?? {})) {
    if (!QUALIFIED_NAME.test(k)) causes.push({ reason: 'FieldValueInvalid', field: 'metadata.labels', message: `Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.'` });
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) causes.push({ reason: 'FieldValueInvalid', field: 'metadata.labels', message: `Invalid value: "${String(v)}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character` });
  }
  for (const [k, v] of Object.entries(obj(meta(o).annotations) ?? {})) {
    if (!QUALIFIED_NAME.test(k)) causes.push({ reason: 'FieldValueInvalid', field: 'metadata.annotations', message: `Invalid value: "${k}": name part must consist of alphanumeric characters, '-', '_' or '.'` });
    if (typeof v !== 'string') causes.push({ reason: 'FieldValueInvalid', field: `metadata.annotations.${k}`, message: 'Invalid value: annotation values must be strings' });
  }
  return causes;
}

const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;

/**
 * The 400 message kube-apiserver gives when a MicroTime field (Lease
 * acquireTime/renewTime, Event eventTime) is not written with exactly six fractional digits:
 * Go parses it with the layout `2006-01-02T15:04:05.000000Z07:00`, so
 * `Date#toISOString()` (three digits) is rejected before validation.
 */
export function microTimeError(kind: string, value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string' && MICRO_TIME.test(value)) return undefined;
  return `${kind} in version "v1" cannot be handled as a ${kind}: parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse as MicroTime`;
}

function builtin(p: Partial<ResourceType> & Pick<ResourceType, 'group' | 'version' | 'plural' | 'singular' | 'kind' | 'namespaced'>): ResourceType {
  return {
    listKind: `${p.kind}List`,
    shortNames: [],
    categories: [],
    statusSubresource: false,
    generation: false,
    unconditionalUpdate: true,
    custom: false,
    columns: [nameColumn, ageColumn],
    fieldLabel: () => false,
    ...p,
  };
}

const CONFIGMAP_KEY = /^[-._a-zA-Z0-9]+$/;

/**
 * Built-in kinds stored as given, so `kubectl apply -k deploy/` can install
 * everything: no defaulting, no status, no controller acting on them (a
 * Deployment never gets Pods).
 */
const OPAQUE: readonly [group: string, version: string, plural: string, kind: string, namespaced: boolean, shortNames: string[]][] = [
  ['', 'v1', 'serviceaccounts', 'ServiceAccount', true, ['sa']],
  ['', 'v1', 'secrets', 'Secret', true, []],
  ['', 'v1', 'services', 'Service', true, ['svc']],
  ['', 'v1', 'pods', 'Pod', true, ['po']],
  ['apps', 'v1', 'deployments', 'Deployment', true, ['deploy']],
  ['rbac.authorization.k8s.io', 'v1', 'roles', 'Role', true, []],
  ['rbac.authorization.k8s.io', 'v1', 'rolebindings', 'RoleBinding', true, []],
  ['rbac.authorization.k8s.io', 'v1', 'clusterroles', 'ClusterRole', false, []],
  ['rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', 'ClusterRoleBinding', false, []],
  ['admissionregistration.k8s.io', 'v1', 'mutatingwebhookconfigurations', 'MutatingWebhookConfiguration', false, []],
  ['admissionregistration.k8s.io', 'v1', 'validatingwebhookconfigurations', 'ValidatingWebhookConfiguration', false, []],
  ['policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget', true, ['pdb']],
  ['networking.k8s.io', 'v1', 'networkpolicies', 'NetworkPolicy', true, ['netpol']],
  ['scheduling.k8s.io', 'v1', 'priorityclasses', 'PriorityClass', false, ['pc']],
];

/** The built-in resources every stand-in server starts with. */
export function builtinResources(): ResourceType[] {
  const opaque = OPAQUE.map(([group, version, plural, kind, namespaced, shortNames]) => builtin({
    group, version, plural, singular: kind.toLowerCase(), kind, namespaced, shortNames,
    categories: ['pods', 'services', 'deployments'].includes(plural) ? ['all'] : [],
  }));
  return [
    ...opaque,
    builtin({
      group: '', version: 'v1', plural: 'namespaces', singular: 'namespace', kind: 'Namespace', namespaced: false,
      shortNames: ['ns'], statusSubresource: true,
      columns: [nameColumn, column('Status', 'string', 'The status of the namespace', (o) => obj(o.status)?.phase), ageColumn],
      fieldLabel: (f) => f === 'status.phase',
    }),
    builtin({
      group: '', version: 'v1', plural: 'configmaps', singular: 'configmap', kind: 'ConfigMap', namespaced: true,
      shortNames: ['cm'],
      columns: [nameColumn, column('Data', 'string', 'Number of data entries', (o) => Object.keys(obj(o.data) ?? {}).length + Object.keys(obj(o.binaryData) ?? {}).length), ageColumn],
      validate: (o) => {
        const causes: StatusCause[] = [];
        for (const field of ['data', 'binaryData']) {
          for (const [k, v] of Object.entries(obj(o[field]) ?? {})) {
            if (!CONFIGMAP_KEY.test(k)) causes.push({ reason: 'FieldValueInvalid', field: `${field}[${k}]`, message: `Invalid value: "${k}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'` });
            if (typeof v !== 'string') causes.push({ reason: 'FieldValueTypeInvalid', field: `${field}[${k}]`, message: 'Invalid value: must be a string' });
          }
        }
        return causes;
      },
    }),
    builtin({
      group: '', version: 'v1', plural: 'events', singular: 'event', kind: 'Event', namespaced: true, shortNames: ['ev'],
      columns: [
        column('Last Seen', 'string', 'Time since the event was last seen', (o) => humanAge(o.lastTimestamp ?? meta(o).creationTimestamp)),
        column('Type', 'string', 'Type of the event', (o) => o.type),
        column('Reason', 'string', 'Reason of the event', (o) => o.reason),
        column('Object', 'string', 'The object the event is about', (o) => `${String(obj(o.involvedObject)?.kind ?? '').toLowerCase()}/${String(obj(o.involvedObject)?.name ?? '')}`),
        column('Message', 'string', 'Message of the event', (o) => o.message),
      ],
      fieldLabel: (f) => f.startsWith('involvedObject.') || ['reason', 'type', 'source', 'reportingComponent'].includes(f),
      microTimeFields: [['eventTime']],
    }),
    // What tenant-dns gateway reads besides Services: Ingresses, their addresses in the status.
    builtin({
      group: 'networking.k8s.io', version: 'v1', plural: 'ingresses', singular: 'ingress', kind: 'Ingress', namespaced: true,
      shortNames: ['ing'], statusSubresource: true, generation: true,
    }),
    builtin({
      group: 'coordination.k8s.io', version: 'v1', plural: 'leases', singular: 'lease', kind: 'Lease', namespaced: true,
      microTimeFields: [['spec', 'acquireTime'], ['spec', 'renewTime']],
      validate: (o) => {
        const spec = obj(o.spec) ?? {};
        const causes: StatusCause[] = [];
        if (spec.leaseDurationSeconds !== undefined && !(Number(spec.leaseDurationSeconds) > 0)) {
          causes.push({ reason: 'FieldValueInvalid', field: 'spec.leaseDurationSeconds', message: `Invalid value: ${JSON.stringify(spec.leaseDurationSeconds)}: must be greater than 0` });
        }
        if (spec.leaseTransitions !== undefined && !(Number(spec.leaseTransitions) >= 0)) {
          causes.push({ reason: 'FieldValueInvalid', field: 'spec.leaseTransitions', message: `Invalid value: ${JSON.stringify(spec.leaseTransitions)}: must be greater than or equal to 0` });
        }
        return causes;
      },
      columns: [nameColumn, column('Holder', 'string', 'The holder of the lease', (o) => obj(o.spec)?.holderIdentity ?? '<none>'), ageColumn],
    }),
    builtin({
      group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', singular: 'customresourcedefinition',
      kind: 'CustomResourceDefinition', namespaced: false, shortNames: ['crd', 'crds'], statusSubresource: true,
      generation: true, unconditionalUpdate: false,
      columns: [nameColumn, column('Created At', 'date', 'Creation time', (o) => meta(o).creationTimestamp)],
    }),
  ];
}

/**
 * A tiny JSONPath for printer columns: `.a.b`, `[0]`, `[*]` and
 * `[?(@.type=="Ready")]`. Returns the first match, undefined when none.
 */
export function jsonPath(o: unknown, path: string): unknown {
  const tokens = path.match(/\.[^.[\]]+|\[[^\]]*\]/g) ?? [];
  let cur: unknown[] = [o];
  for (const t of tokens) {
    const next: unknown[] = [];
    for (const v of cur) {
      if (t.startsWith('.')) {
        const x = obj(v)?.[t.slice(1)];
        if (x !== undefined) next.push(x);
      } else if (t === '[*]') next.push(...arr(v));
      else if (/^\[\d+\]$/.test(t)) {
        const x = arr(v)[Number(t.slice(1, -1))];
        if (x !== undefined) next.push(x);
      } else {
        const f = t.match(/^\[\?\(@\.([\w.]+)\s*==\s*["']([^"']*)["']\)\]$/);
        if (f) next.push(...arr(v).filter((e) => String(jsonPath(e, `.${f[1]}`)) === f[2]));
      }
    }
    cur = next;
  }
  return cur[0];
}

/** The resource types a CustomResourceDefinition registers (one per served version). */
export function crdResources(crd: JsonObject): ResourceType[] {
  const spec = obj(crd.spec) ?? {};
  const names = obj(spec.names) ?? {};
  const group = String(spec.group ?? '');
  const plural = String(names.plural ?? '');
  const kind = String(names.kind ?? '');
  return arr(spec.versions).map(obj).filter((v): v is JsonObject => !!v && v.served !== false).map((v) => {
    const printer = arr(v.additionalPrinterColumns).map(obj).filter((c): c is JsonObject => !!c);
    const columns = printer.length === 0 ? [nameColumn, ageColumn] : [nameColumn, ...printer.map((c) => column(
      String(c.name), String(c.type ?? 'string'), String(c.description ?? ''),
      (o) => {
        const value = jsonPath(o, String(c.jsonPath ?? ''));
        return c.type === 'date' && value !== undefined ? humanAge(value) : value;
      },
      String(c.format ?? ''), Number(c.priority ?? 0),
    ))];
    return {
      group, version: String(v.name), plural, singular: String(names.singular ?? kind.toLowerCase()), kind,
      listKind: String(names.listKind ?? `${kind}List`), namespaced: spec.scope !== 'Cluster',
      shortNames: arr(names.shortNames).map(String), categories: arr(names.categories).map(String),
      statusSubresource: obj(obj(v.subresources)?.status) !== undefined, generation: true, unconditionalUpdate: false,
      custom: true, crd: String(obj(crd.metadata)?.name ?? ''), schema: obj(obj(v.schema)?.openAPIV3Schema), columns,
      fieldLabel: () => false,
    };
  });
}
