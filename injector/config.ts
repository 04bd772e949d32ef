/**
 * The injector's configuration: the platform part of every sidecar (image,
 * upstreams, kube-dns address, cluster domain, platform policy) and how the
 * injector behaves. Declared once as a TypeBox schema; loaded from YAML,
 * validated with the failing field's path and line, defaulted and frozen.
 */
import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, parseDocument, isNode } from 'yaml';
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import { deepFreeze } from '../sidecar/config/load.ts';
import { HostPort } from '../sidecar/config/schema.ts';
import { sidecarArgs } from './sidecar-spec.ts';


/** Compute resources of the sidecar container (Kubernetes quantities). */
export const ResourcesSchema = Type.Object(
  {
    requests: Type.Record(Type.String(), Type.String(), { default: { cpu: '10m', memory: '32Mi' } }),
    limits: Type.Record(Type.String(), Type.String(), { default: { memory: '128Mi' } }),
  },
  { additionalProperties: false, default: {} },
);

/** The injector's configuration file (`--config FILE`). */
export const InjectorConfigSchema = Type.Object(
  {
    image: Type.String({ minLength: 1, default: 'ghcr.io/tenant-dns/tenant-dns:0.1.0', description: 'Sidecar image (the one image runs `sidecar` and `injector`).' }),
    imagePullPolicy: Type.Union([Type.Literal('Always'), Type.Literal('IfNotPresent'), Type.Literal('Never')], { default: 'IfNotPresent' }),
    listen: HostPort('ADDR:PORT the sidecar serves DNS on; the pod resolv.conf points at its address.', '127.0.0.1:53'),
    clusterDomain: Type.String({ minLength: 1, pattern: '^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$', default: 'cluster.local', description: 'The cluster domain.' }),
    clusterDns: Type.Optional(HostPort('ADDR:PORT of kube-dns, e.g. 10.96.0.10:53.')),
    upstreams: Type.Array(Type.String({ pattern: '^(udp|tcp|tls|https)://' }), { default: [], description: 'Default upstream URLs, tried in order.' }),
    bootstrap: Type.Array(Type.String({ pattern: '^[^=\\s]+=[0-9a-fA-F:.]+$' }), { default: [], description: 'host=IP pairs used to reach DoH/DoT upstreams without DNS.' }),
    platformPolicyConfigMap: Type.Optional(Type.String({ minLength: 1, maxLength: 253, description: "ConfigMap (in the pod's namespace) with the platform policy under key policy.yaml; mounted and passed as --platform-policy." })),
    tenantPolicyConfigMap: Type.String({ minLength: 1, maxLength: 253, default: 'tenant-dns-policy', description: "The tenant's policy ConfigMap (key policy.yaml), mounted optional." }),
    resources: ResourcesSchema,
    nodeOptions: Type.String({
      default: '--max-old-space-size=48 --max-semi-space-size=2',
      description:
        "NODE_OPTIONS of the sidecar container. The default caps V8's heap so a query flood stays within the 128Mi limit (measured about 110 MB of RSS under a UDP flood; uncapped, V8 grows past 230 MB). Empty: Node's defaults.",
    }),
    failureMode: Type.Union([Type.Literal('allow'), Type.Literal('deny')], { default: 'deny', description: 'When a pod cannot be handled: admit it unpatched with a warning (allow) or reject it (deny).' }),
    nativeSidecar: Type.Boolean({ default: true, description: 'Inject as a native sidecar (Kubernetes >= 1.29); false: first container with a postStart wait.' }),
    metricsPort: Type.Integer({ minimum: 1, maximum: 65535, default: 9153, description: 'The sidecar metrics and probe port.' }),
    prometheusAnnotations: Type.Boolean({ default: false, description: 'Add prometheus.io/scrape, port and path annotations.' }),
    tenantLabel: Type.String({ minLength: 1, default: 'tenant-dns.io/tenant', description: 'Namespace label naming the tenant.' }),
    ndots: Type.Integer({ minimum: 1, maximum: 15, default: 5, description: 'ndots when neither the pod nor its annotation sets one.' }),
    namespaceLookupTimeoutMs: Type.Integer({ minimum: 1, maximum: 10_000, default: 500, description: 'Milliseconds the tenant lookup may take before falling back to the namespace name.' }),
    excludedNamespaces: Type.Array(Type.String(), { default: ['kube-system', 'kube-public', 'kube-node-lease'], description: 'Namespaces never injected (the webhook excludes them too).' }),
  },
  { additionalProperties: false, $id: 'https://tenant-dns.io/schemas/injector-config.json', title: 'tenant-dns injector configuration' },
);

/** The injector configuration after defaults, frozen. */
export type InjectorConfig = Static<typeof InjectorConfigSchema>;

/**
 * Validates a plain object as injector configuration, applies defaults and
 * freezes it. `lineOf` maps a field path (`/resources/limits`) to a line for
 * the message.
 */
export function parseInjectorConfig(input: unknown, source = 'injector config', lineOf?: (path: string) => number | undefined): InjectorConfig {
  const raw = input ?? {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InjectorError(InjectorErrorCodes.CONFIG_INVALID, `reading ${source}: expected a mapping at the top`);
  }
  const value = Value.Default(InjectorConfigSchema, structuredClone(raw));
  const first = Value.Errors(InjectorConfigSchema, value).First();
  if (first) {
    const line = lineOf?.(first.path);
    const where = first.path || '/';
    throw new InjectorError(
      InjectorErrorCodes.CONFIG_INVALID,
      `reading ${source}: ${where}${line ? ` (line ${line})` : ''}: ${first.message}`,
    );
  }
  const config = value as InjectorConfig;
  // Every setting must be expressible as a flag of this sidecar version: fail at load, not per pod.
  try {
    sidecarArgs(config);
  } catch (err) {
    throw new InjectorError(InjectorErrorCodes.CONFIG_INVALID, `reading ${source}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return deepFreeze(config);
}

/** Parses injector configuration from YAML text. */
export function parseInjectorConfigYaml(text: string, source = 'injector config'): InjectorConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new InjectorError(InjectorErrorCodes.CONFIG_INVALID, `parsing ${source}: ${doc.errors[0].message}`, { cause: doc.errors[0] });
  }
  const lineOf = (path: string): number | undefined => {
    const keys = path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    for (let n = keys.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(keys.slice(0, n), true);
      if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
    }
    return undefined;
  };
  return parseInjectorConfig(doc.toJS(), source, lineOf);
}

/** Reads and parses the injector configuration file; no file means all defaults. */
export function loadInjectorConfig(file?: string): InjectorConfig {
  if (!file) return parseInjectorConfig({});
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InjectorError(InjectorErrorCodes.CONFIG_INVALID, `reading injector config ${file}`, { cause: err });
  }
  return parseInjectorConfigYaml(text, file);
}
