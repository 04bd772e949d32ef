/**
 * Every name the injector writes into a pod or reads from one: the sidecar
 * container and the capture init container, the sidecar's uid, its volumes, mount paths and files, env vars, port, probe paths,
 * the sysctl, and the label and annotation keys. Defined here once; the other
 * injector modules import them. Changing one changes what running pods carry
 * (the golden files in test/injector/golden/ show it) and may need the same
 * change in deploy/ (the webhook's selectors) and dashboards/.
 */

/** Label and annotation keys the injector reads or writes. */
export const Keys = {
  /** Namespace label that turns injection on (value {@link InjectValues.namespaceEnabled}). */
  namespaceInject: 'tenant-dns.io/inject',
  /** Pod label to opt out (value {@link InjectValues.podOptOut}). */
  podInject: 'tenant-dns.io/inject',
  /** Namespace label naming the tenant: the default of the `tenantLabel` setting. */
  namespaceTenant: 'tenant-dns.io/tenant',
  /** Pod label the injector sets to the pod's tenant; /validate keeps it from changing (telemetry reads it). */
  podTenant: 'tenant-dns.io/tenant',
  /** Namespace label that lets pods there opt out (value {@link InjectValues.namespaceAllowOptOut}); set by the platform. */
  namespaceAllowOptOut: 'tenant-dns.io/allow-opt-out',
  /** Pod annotation overriding ndots (integer 1–15). */
  ndots: 'tenant-dns.io/ndots',
  /** Pod annotation recording what was injected (JSON). */
  status: 'tenant-dns.io/status',
  /** Set by the kubelet on mirror pods of static pods. */
  mirror: 'kubernetes.io/config.mirror',
  /** Pod annotation naming the container `kubectl logs/exec` pick by default. */
  defaultContainer: 'kubectl.kubernetes.io/default-container',
} as const;

/** The values of the inject labels that mean something (the webhook's selectors in deploy/ use the same). */
export const InjectValues = { namespaceEnabled: 'enabled', podOptOut: 'false', namespaceAllowOptOut: 'true' } as const;

/** The `prometheus.io/*` annotations added with `prometheusAnnotations: true`. */
export const PrometheusAnnotations = {
  scrape: 'prometheus.io/scrape',
  port: 'prometheus.io/port',
  path: 'prometheus.io/path',
} as const;

/** The name of the injected container; also used to recognise an injected pod. */
export const SIDECAR_NAME = 'tenant-dns';

/** The name of the DNS capture init container (`capture: init`); it runs before the sidecar and exits. */
export const CAPTURE_NAME = 'tenant-dns-capture';

/** The uid (and gid) the sidecar runs as, the image's `USER`: capture never redirects its traffic. */
export const SIDECAR_UID = 65532;

/** Volume names the injector adds. */
export const VOLUME_NAMES = { policy: 'tenant-dns-policy', podinfo: 'tenant-dns-podinfo', platform: 'tenant-dns-platform' } as const;

/** The tenant policy ConfigMap's name when the config does not set `tenantPolicyConfigMap`. */
export const DEFAULT_TENANT_POLICY_CONFIG_MAP = 'tenant-dns-policy';

/** The platform policy ConfigMap's name when the config does not set `platformPolicyConfigMap`. */
export const DEFAULT_PLATFORM_POLICY_CONFIG_MAP = 'tenant-dns-platform';

/** Labels and annotation of the ConfigMaps the controller renders (injector/render.ts). */
export const RenderedKeys = {
  /** Label `app.kubernetes.io/managed-by`, value {@link RENDERED_MANAGED_BY}. */
  managedBy: 'app.kubernetes.io/managed-by',
  /** Label naming the layer: `platform` or `tenant`. */
  layer: 'tenant-dns.io/layer',
  /** Annotation: the objects merged, `Kind/name@generation` comma-separated in merge order. */
  renderedFrom: 'tenant-dns.io/rendered-from',
} as const;

/** The value of the managed-by label on rendered ConfigMaps. */
export const RENDERED_MANAGED_BY = 'tenant-dns-controller';

/** The Lease (in the injector's namespace) its replicas elect the controller's leader with. */
export const CONTROLLER_LEASE_NAME = 'tenant-dns-controller';

/** The ConfigMap key holding a policy, which is also its file name in the mounted directory. */
export const POLICY_KEY = 'policy.yaml';

/** The downward-API file (in the podinfo volume) holding the pod's labels. */
export const POD_LABELS_ITEM = 'labels';

const POLICY_DIR = '/etc/tenant-dns/policy';
const PLATFORM_DIR = '/etc/tenant-dns/platform';
const PODINFO_DIR = '/etc/tenant-dns/podinfo';

/** Where the injected volumes are mounted in the sidecar, and the files the sidecar reads there. */
export const Paths = {
  policyDir: POLICY_DIR,
  policyFile: `${POLICY_DIR}/${POLICY_KEY}`,
  platformDir: PLATFORM_DIR,
  platformFile: `${PLATFORM_DIR}/${POLICY_KEY}`,
  podinfoDir: PODINFO_DIR,
  podLabelsFile: `${PODINFO_DIR}/${POD_LABELS_ITEM}`,
} as const;

/** Environment variables set on the sidecar (the args refer to the first three with `$(NAME)`). */
export const Env = { pod: 'POD_NAME', namespace: 'POD_NAMESPACE', tenant: 'TENANT_DNS_TENANT', nodeOptions: 'NODE_OPTIONS' } as const;

/** The sidecar's default metrics and probe port (its `--metrics` default is 0.0.0.0:9153). */
export const SIDECAR_METRICS_PORT = 9153;

/** Name of the metrics port (≤ 15 characters), for a PodMonitor. */
export const METRICS_PORT_NAME = 'tdns-metrics';

/** The paths the sidecar serves on its metrics port: probes and the scrape path. */
export const HttpPaths = { ready: '/readyz', live: '/healthz', metrics: '/metrics' } as const;

/**
 * Where the ServiceAccount admission plugin mounts the API token into every
 * container, the injector's sidecar included when the webhook is reinvoked:
 * the one mount the sidecar may carry besides its own.
 */
export const SERVICE_ACCOUNT_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The sysctl that lets the non-root sidecar bind port 53. */
export const PORT_SYSCTL = 'net.ipv4.ip_unprivileged_port_start';
