/**
 * The injector's configuration as a TypeBox schema, and the type it gives:
 * the platform part of every sidecar (image, upstreams, kube-dns address,
 * cluster domain, platform policy) and how the injector behaves. Declaration
 * only; loading and validation are in config.ts, so the modules that only
 * need the type (decide, sidecar-spec, mutate, admission) do not depend on
 * the loader, which depends on sidecar-spec.
 */
import type { Static } from '@sinclair/typebox';
import { Type } from '../sidecar/config/typebox.ts';
import { HostPort } from '../sidecar/config/schema.ts';
import { DEFAULT_PLATFORM_POLICY_CONFIG_MAP, DEFAULT_TENANT_POLICY_CONFIG_MAP, Keys, SIDECAR_METRICS_PORT } from './names.ts';

/** Compute resources of the sidecar container (Kubernetes quantities). */
export const ResourcesSchema = Type.Object(
  {
    // Memory: injector/README.md, "Sizing the sidecar's memory" (request: a sidecar's PSS after load; limit: its peak RSS under floods).
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
    platformPolicyConfigMap: Type.String({
      minLength: 1,
      maxLength: 253,
      default: DEFAULT_PLATFORM_POLICY_CONFIG_MAP,
      description:
        "The platform policy layer's ConfigMap (in the pod's namespace, key policy.yaml, rendered by the controller): always mounted, not optional (a pod does not start without it), passed as --platform-policy.",
    }),
    tenantPolicyConfigMap: Type.String({ minLength: 1, maxLength: 253, default: DEFAULT_TENANT_POLICY_CONFIG_MAP, description: "The tenant policy layer's ConfigMap (key policy.yaml, rendered by the controller), mounted optional: a namespace without one resolves with the platform layer only." }),
    resources: ResourcesSchema,
    nodeOptions: Type.String({
      default: '--max-old-space-size=48 --max-semi-space-size=2',
      description:
        "NODE_OPTIONS of the sidecar container. The default caps V8's heap so a query flood stays within the 128Mi limit (measured about 110 MB of RSS under a UDP flood; uncapped, V8 grows past 230 MB). Empty: Node's defaults.",
    }),
    failureMode: Type.Union([Type.Literal('allow'), Type.Literal('deny')], { default: 'deny', description: 'When a pod cannot be handled: admit it unpatched with a warning (allow) or reject it (deny).' }),
    capture: Type.Union([Type.Literal('none'), Type.Literal('init')], {
      default: 'none',
      description:
        "DNS capture: init adds the tenant-dns-capture init container (root with NET_ADMIN and NET_RAW, outside Pod Security baseline) that redirects port 53 to the sidecar and refuses port 853; none: the pod's resolv.conf only.",
    }),
    optOut: Type.Union([Type.Literal('deny'), Type.Literal('allow')], {
      default: 'deny',
      description:
        'The pod label tenant-dns.io/inject: "false": deny such pods, except in namespaces labelled tenant-dns.io/allow-opt-out: "true" (deny), or let them run without the sidecar everywhere (allow).',
    }),
    hostNetworkPods: Type.Union([Type.Literal('deny'), Type.Literal('allow')], {
      default: 'deny',
      description: "hostNetwork pods share the node's 127.0.0.1 and cannot have the sidecar: deny them, or admit them without it (allow).",
    }),
    nativeSidecar: Type.Boolean({ default: true, description: 'Inject as a native sidecar (Kubernetes >= 1.29); false: first container with a postStart wait.' }),
    metricsPort: Type.Integer({ minimum: 1, maximum: 65535, default: SIDECAR_METRICS_PORT, description: 'The sidecar metrics and probe port.' }),
    prometheusAnnotations: Type.Boolean({ default: false, description: 'Add prometheus.io/scrape, port and path annotations.' }),
    tenantLabel: Type.String({ minLength: 1, default: Keys.namespaceTenant, description: 'Namespace label naming the tenant.' }),
    ndots: Type.Integer({ minimum: 1, maximum: 15, default: 5, description: 'ndots when neither the pod nor its annotation sets one.' }),
    autopath: Type.Boolean({ default: true, description: "The sidecar answers the search walk ndots makes a stub resolver do (its --autopath); false writes --autopath=false." }),
    clusterSpecNamesOnly: Type.Boolean({
      default: false,
      description: "The sidecar answers NXDOMAIN itself for names below <ns>.svc.<domain> the Kubernetes DNS specification cannot produce (its --cluster-spec-names-only); off by default: CoreDNS template or rewrite rules there would be lost.",
    }),
    namespaceLookupTimeoutMs: Type.Integer({ minimum: 1, maximum: 10_000, default: 500, description: 'Milliseconds the tenant lookup may take before falling back to the namespace name.' }),
    controllerUsername: Type.String({
      minLength: 1,
      default: 'system:serviceaccount:tenant-dns-system:tenant-dns-injector',
      description: "The controller's user name as the API server reports it in admission requests (its ServiceAccount): the one user that may create, update and delete the rendered policy ConfigMaps.",
    }),
    renderedConfigMapDeleters: Type.Array(Type.String({ minLength: 1 }), {
      default: ['system:serviceaccount:kube-system:namespace-controller'],
      description: 'Users that may also delete the rendered policy ConfigMaps (the namespace controller, so deleting a namespace is not blocked).',
    }),
    excludedNamespaces: Type.Array(Type.String(), { default: ['kube-system', 'kube-public', 'kube-node-lease'], description: 'Namespaces never injected (the webhook excludes them too).' }),
  },
  { additionalProperties: false, $id: 'https://tenant-dns.io/schemas/injector-config.json', title: 'tenant-dns injector configuration' },
);

/** The injector configuration after defaults, frozen. */
export type InjectorConfig = Static<typeof InjectorConfigSchema>;
