/**
 * The sidecar container and the volumes it needs, as raw Kubernetes JSON,
 * from the injector's configuration. Sidecar flags are written through
 * {@link SIDECAR_FLAGS} (the sidecar's own flag table), so every flag here is
 * one the sidecar accepts. Pure: no I/O.
 */
import { SIDECAR_FLAGS } from '../sidecar/config/schema.ts';
import pkg from '../package.json' with { type: 'json' };
import type { InjectorConfig } from './config-schema.ts';
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import { Env, HttpPaths, METRICS_PORT_NAME, Paths, POD_LABELS_ITEM, SIDECAR_METRICS_PORT, SIDECAR_NAME, SIDECAR_UID, VOLUME_NAMES } from './names.ts';

/** The version recorded in the status annotation. */
export const INJECTOR_VERSION: string = pkg.version;

const flagsByField = new Map(SIDECAR_FLAGS.map((f) => [f.field, f]));

/**
 * The sidecar flag for a config field path; `undefined` when the sidecar has
 * no such field and the flag is optional, an error when it is required.
 */
export function sidecarFlag(field: string, required = true): string | undefined {
  const spec = flagsByField.get(field);
  if (!spec && required) {
    throw new InjectorError(InjectorErrorCodes.CONFIG_INVALID, `building sidecar args: the sidecar has no config field ${field}`);
  }
  return spec?.flag;
}

/** What the sidecar spec depends on besides the config. */
export interface SidecarContext {
  /** The tenant decided by the platform (namespace label or namespace name). */
  readonly tenant: string;
  /**
   * The pod's DNS settings as the injector writes them into its dnsConfig, so the sidecar's autopath knows
   * the pod's search list and ndots even where it cannot read its resolv.conf; none: no `--search`/`--ndots`.
   */
  readonly dns?: PodDns;
}

/** The search list and ndots of a pod's dnsConfig, for the sidecar's `--search` and `--ndots`. */
export interface PodDns {
  readonly searches: readonly string[];
  /** Undefined when the pod's own ndots option is not a number (the sidecar then reads its resolv.conf). */
  readonly ndots?: number;
}

/** The upstreams written into the sidecar: the configured ones, else kube-dns over UDP, else none. */
export function defaultUpstreams(config: Pick<InjectorConfig, 'upstreams' | 'clusterDns'>): readonly string[] {
  if (config.upstreams.length > 0) return config.upstreams;
  return config.clusterDns ? [`udp://${config.clusterDns}`] : [];
}

/** The sidecar's command-line arguments (after the `sidecar` subcommand); `dns`: the pod's search list and ndots. */
export function sidecarArgs(config: InjectorConfig, dns?: PodDns): string[] {
  const args: string[] = [];
  const put = (field: string, value: string | number, required = true) => {
    const flag = sidecarFlag(field, required);
    if (flag) args.push(`${flag}=${value}`);
  };
  put('listen', config.listen);
  put('tenant', `$(${Env.tenant})`);
  put('pod', `$(${Env.pod})`);
  put('namespace', `$(${Env.namespace})`);
  put('clusterDomain', config.clusterDomain);
  if (config.clusterDns) put('clusterDns', config.clusterDns);
  // The pod's resolv.conf names only the sidecar, so the sidecar's own fallback (the
  // non-loopback nameservers of /etc/resolv.conf) would find none: without configured
  // upstreams, names outside the cluster go to kube-dns, as they did before injection.
  for (const u of defaultUpstreams(config)) put('upstream', u);
  // Written only when configured, so a sidecar without these flags still works with the defaults.
  for (const b of config.bootstrap) put('bootstrap', b);
  if (config.metricsPort !== SIDECAR_METRICS_PORT) put('metrics', `0.0.0.0:${config.metricsPort}`);
  put('policy', Paths.policyFile);
  // The tenant layer is mounted optional: a namespace without a DNSPolicy has no file, which means no tenant policy.
  args.push(sidecarFlag('policyOptional')!);
  put('platformPolicy', Paths.platformFile);
  put('podLabels', Paths.podLabelsFile);
  // The same values the pod's dnsConfig gets, for autopath (the sidecar's own flags table names them).
  for (const d of dns?.searches ?? []) put('search', d);
  if (dns?.ndots !== undefined) put('ndots', dns.ndots);
  // Written only when they differ from the sidecar's defaults.
  if (!config.autopath) put('autopath', 'false');
  if (config.clusterSpecNamesOnly) args.push(sidecarFlag('clusterSpecNamesOnly')!);
  return args;
}

function httpProbe(path: string, port: number, periodSeconds: number, failureThreshold: number) {
  return { httpGet: { path, port, scheme: 'HTTP' }, periodSeconds, timeoutSeconds: 1, failureThreshold };
}

/**
 * A postStart hook for the legacy (pre-1.29) mode: the kubelet starts the
 * next container only after it returns, so the app starts once DNS works.
 * Uses the image's node binary; gives up after 60 s (the kubelet then kills
 * the container and restarts it).
 */
function waitReadyHook(port: number) {
  const script =
    `const d=Date.now()+60000;const t=()=>fetch('http://127.0.0.1:${port}${HttpPaths.ready}')` +
    `.then(r=>{if(r.ok)process.exit(0);throw 0}).catch(()=>{if(Date.now()>d)process.exit(1);setTimeout(t,200)});t()`;
  return { postStart: { exec: { command: ['node', '-e', script] } } };
}

/** The sidecar container (raw JSON). */
export function sidecarContainer(config: InjectorConfig, ctx: SidecarContext): Record<string, unknown> {
  const port = config.metricsPort;
  const container: Record<string, unknown> = {
    name: SIDECAR_NAME,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    args: ['sidecar', ...sidecarArgs(config, ctx.dns)],
    env: [
      { name: Env.pod, valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: Env.namespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: Env.tenant, value: ctx.tenant },
      ...(config.nodeOptions ? [{ name: Env.nodeOptions, value: config.nodeOptions }] : []),
    ],
    ports: [{ name: METRICS_PORT_NAME, containerPort: port, protocol: 'TCP' }],
    resources: { requests: { ...config.resources.requests }, limits: { ...config.resources.limits } },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: SIDECAR_UID,
      runAsGroup: SIDECAR_UID,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    // Start-up waits until DNS works (policy loaded, every group has a healthy upstream), so
    // init and app containers start only then. Once running, readiness is the process serving:
    // an outage of one upstream (say, a tenant's forward zone) must not take the pod out of its
    // Services; the sidecar answers stale or SERVFAIL and the alerts say why.
    startupProbe: httpProbe(HttpPaths.ready, port, 1, 60),
    readinessProbe: httpProbe(HttpPaths.live, port, 10, 3),
    livenessProbe: httpProbe(HttpPaths.live, port, 10, 3),
    volumeMounts: [
      { name: VOLUME_NAMES.policy, mountPath: Paths.policyDir, readOnly: true },
      { name: VOLUME_NAMES.platform, mountPath: Paths.platformDir, readOnly: true },
      { name: VOLUME_NAMES.podinfo, mountPath: Paths.podinfoDir, readOnly: true },
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (config.nativeSidecar) container.restartPolicy = 'Always';
  else container.lifecycle = waitReadyHook(port);
  return container;
}

/** The volumes the sidecar mounts (raw JSON). */
export function sidecarVolumes(config: InjectorConfig): Record<string, unknown>[] {
  // The platform layer is not optional: a pod does not start without it (fail closed). The tenant layer is:
  // a namespace with no DNSPolicy resolves with the platform layer only.
  return [
    { name: VOLUME_NAMES.policy, configMap: { name: config.tenantPolicyConfigMap, optional: true } },
    { name: VOLUME_NAMES.podinfo, downwardAPI: { items: [{ path: POD_LABELS_ITEM, fieldRef: { fieldPath: 'metadata.labels' } }] } },
    { name: VOLUME_NAMES.platform, configMap: { name: config.platformPolicyConfigMap, optional: false } },
  ];
}
