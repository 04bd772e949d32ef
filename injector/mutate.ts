/**
 * The whole injection of one pod: decide, then build the JSON Patch that adds
 * the sidecar and its volumes, points the pod's resolver at it, lowers the
 * unprivileged-port sysctl and records what was done. Shared by the webhook
 * and `tenant-dns inject`. Pure: no I/O.
 */
import { captureContainer } from './capture-spec.ts';
import type { InjectorConfig } from './config-schema.ts';
import { decide, type Decision } from './decide.ts';
import { arr, obj, type JsonObject } from './json.ts';
import { CAPTURE_NAME, HttpPaths, Keys, PORT_SYSCTL, PrometheusAnnotations, SIDECAR_NAME } from './names.ts';
import { PatchBuilder, type PatchOperation } from './patch.ts';
import { INJECTOR_VERSION, sidecarContainer, sidecarVolumes } from './sidecar-spec.ts';

/** What {@link mutatePod} needs besides the pod. */
export interface MutateContext {
  readonly namespace: string;
  readonly tenant: string;
  /** The admission operation; undefined offline. */
  readonly operation?: string;
  readonly config: InjectorConfig;
}

/** The result of {@link mutatePod}. */
export interface MutateResult {
  readonly decision: Decision;
  /** RFC 6902 operations; empty when skipped. */
  readonly patch: readonly PatchOperation[];
  /** Short human-readable warnings for the user (admission `warnings`, stderr offline). */
  readonly warnings: readonly string[];
  /** The patched pod (the original when skipped). */
  readonly patched: Record<string, unknown>;
}

/** Kubernetes' resolver limits (pkg/apis/core/validation). */
export const DnsLimits = { nameservers: 3, searches: 32, searchChars: 2048 } as const;

function hostOf(hostPort: string): string {
  const i = hostPort.lastIndexOf(':');
  return hostPort.slice(0, i).replace(/^\[|\]$/g, '');
}

/** The ndots to use and a warning when the annotation was unusable. */
function chooseNdots(options: unknown[], annotations: JsonObject, fallback: number): { value?: string; warning?: string } {
  if (options.some((o) => obj(o)?.name === 'ndots')) return {};
  const raw = annotations[Keys.ndots];
  if (raw === undefined) return { value: String(fallback) };
  if (typeof raw === 'string' && /^[0-9]{1,2}$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 15) return { value: String(Number(raw)) };
  return {
    value: String(fallback),
    warning: `tenant-dns: annotation ${Keys.ndots}=${JSON.stringify(raw)} is not an integer 1-15; using ndots ${fallback}`,
  };
}

function buildDnsConfig(spec: JsonObject, annotations: JsonObject, ctx: MutateContext, warnings: string[]): JsonObject {
  const { config, namespace } = ctx;
  const existing = obj(spec.dnsConfig) ?? {};
  const domain = config.clusterDomain;
  const ours = [`${namespace}.svc.${domain}`, `svc.${domain}`, domain];
  const podSearches = arr(existing.searches).filter((s): s is string => typeof s === 'string');
  const searches = [...new Set([...ours, ...podSearches])];
  while (searches.length > DnsLimits.searches || searches.join(' ').length > DnsLimits.searchChars) {
    const dropped = searches.pop();
    warnings.push(`tenant-dns: search domain ${dropped} dropped to stay within Kubernetes limits`);
  }
  if (arr(existing.nameservers).length > 0) {
    warnings.push('tenant-dns: the pod dnsConfig nameservers are replaced by the sidecar');
  }
  if (spec.dnsPolicy === 'Default') warnings.push('tenant-dns: dnsPolicy Default replaced; names now resolve through the sidecar');
  const options = arr(existing.options);
  const ndots = chooseNdots(options, annotations, config.ndots);
  if (ndots.warning) warnings.push(ndots.warning);
  const nameservers = [hostOf(config.listen)];
  return {
    nameservers: nameservers.slice(0, DnsLimits.nameservers),
    searches,
    options: ndots.value === undefined ? options : [{ name: 'ndots', value: ndots.value }, ...options],
  };
}

function mergeSysctl(b: PatchBuilder): void {
  const path = ['spec', 'securityContext', 'sysctls'];
  const sysctls = arr(b.get(path));
  const i = sysctls.findIndex((s) => obj(s)?.name === PORT_SYSCTL);
  if (i < 0) {
    b.append(path, { name: PORT_SYSCTL, value: '53' });
    return;
  }
  const current = Number(obj(sysctls[i])?.value);
  if (!(Number.isInteger(current) && current <= 53)) b.set([...path, i, 'value'], '53');
}

/**
 * Builds the injection patch for one pod (raw JSON), or an empty patch with
 * the skip reason. Applying the patch to `pod` gives `patched`.
 */
export function mutatePod(pod: unknown, ctx: MutateContext): MutateResult {
  const decision = decide(pod, ctx);
  if (!decision.inject) {
    return { decision, patch: [], warnings: [`tenant-dns: not injected (${decision.reason}): ${decision.detail}`], patched: (obj(pod) ?? {}) as JsonObject };
  }
  const { config } = ctx;
  const warnings: string[] = [];
  const b = new PatchBuilder(pod as JsonObject);
  const spec = obj(b.get(['spec'])) ?? {};
  const annotations = obj(b.get(['metadata', 'annotations'])) ?? {};

  const container = sidecarContainer(config, { tenant: ctx.tenant });
  if (config.nativeSidecar) {
    b.insert(['spec', 'initContainers'], 0, container);
  } else {
    const first = obj(arr(spec.containers)[0])?.name;
    b.insert(['spec', 'containers'], 0, container);
    // kubectl logs/exec pick the first container unless told otherwise.
    if (typeof first === 'string' && annotations[Keys.defaultContainer] === undefined) {
      b.set(['metadata', 'annotations', Keys.defaultContainer], first);
    }
  }
  // DNS capture runs first and exits: the sidecar starts with the rules in place.
  const capture = config.capture === 'init';
  if (capture) b.insert(['spec', 'initContainers'], 0, captureContainer(config, spec));
  const volumes = sidecarVolumes(config);
  for (const v of volumes) b.append(['spec', 'volumes'], v);

  const dnsConfig = buildDnsConfig(spec, annotations, ctx, warnings);
  b.set(['spec', 'dnsPolicy'], 'None');
  b.set(['spec', 'dnsConfig'], dnsConfig);
  mergeSysctl(b);

  if (config.prometheusAnnotations) {
    const prom = { [PrometheusAnnotations.scrape]: 'true', [PrometheusAnnotations.port]: String(config.metricsPort), [PrometheusAnnotations.path]: HttpPaths.metrics };
    if (Object.keys(prom).some((k) => annotations[k] !== undefined)) {
      warnings.push('tenant-dns: pod already has prometheus.io annotations; sidecar scrape annotations not added');
    } else {
      for (const [k, v] of Object.entries(prom)) b.set(['metadata', 'annotations', k], v);
    }
  }
  const status = {
    version: INJECTOR_VERSION,
    tenant: ctx.tenant,
    image: config.image,
    mode: config.nativeSidecar ? 'native' : 'legacy',
    containers: capture ? [CAPTURE_NAME, SIDECAR_NAME] : [SIDECAR_NAME],
    volumes: volumes.map((v) => v.name),
  };
  b.set(['metadata', 'annotations', Keys.status], JSON.stringify(status));
  return { decision, patch: b.operations, warnings, patched: b.doc };
}
