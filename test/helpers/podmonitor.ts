/**
 * The PodMonitor of deploy/monitoring/ as a Prometheus scrape job, for tests
 * without Kubernetes: its relabelings translated into `relabel_configs`, its
 * `honorLabels`, and the `__meta_kubernetes_*` labels Kubernetes service
 * discovery reports for a pod, so that a real Prometheus (test/helpers/prometheus.ts)
 * relabels a file_sd target exactly as it would relabel the pod.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { METRICS_PORT_NAME, SIDECAR_NAME } from '../../injector/names.ts';
import type { PrometheusOptions, ScrapeSettings } from './prometheus.ts';

const MONITORING = new URL('../../deploy/monitoring/', import.meta.url);

/** A Secret's key as a PodMonitor refers to it (`tlsConfig.ca.secret`). */
interface SecretKeyRef {
  readonly name: string;
  readonly key: string;
}

/** One endpoint of a PodMonitor, as far as the tests read it. */
export interface PodMetricsEndpoint {
  readonly port: string;
  readonly path: string;
  readonly scheme?: string;
  readonly honorLabels?: boolean;
  readonly relabelings?: readonly Readonly<Record<string, unknown>>[];
  readonly tlsConfig?: { readonly ca?: { readonly secret?: SecretKeyRef }; readonly serverName?: string };
}

/** A PodMonitor object of deploy/monitoring/ (default: podmonitor.yaml, the sidecars'). */
export function readPodMonitor(file = 'podmonitor.yaml'): {
  kind: string;
  metadata: { name: string };
  spec: { selector?: { matchLabels?: Record<string, string> }; namespaceSelector?: unknown; podMetricsEndpoints: PodMetricsEndpoint[] };
} {
  return parse(readFileSync(new URL(file, MONITORING), 'utf8'));
}

/** The Prometheus Operator's relabeling fields and their names in a Prometheus `relabel_config`. */
const RELABEL_FIELDS: Readonly<Record<string, string>> = {
  sourceLabels: 'source_labels',
  separator: 'separator',
  targetLabel: 'target_label',
  regex: 'regex',
  modulus: 'modulus',
  replacement: 'replacement',
  action: 'action',
};

/**
 * The Prometheus `relabel_configs` a list of Prometheus Operator relabelings
 * renders to: the fields renamed (sourceLabels → source_labels, targetLabel →
 * target_label), the action in lower case as the operator writes it. A field
 * this does not know throws, so that nothing in the YAML is silently left out.
 */
export function relabelConfigsFromOperator(relabelings: readonly Readonly<Record<string, unknown>>[]): Record<string, unknown>[] {
  return relabelings.map((r, i) =>
    Object.fromEntries(
      Object.entries(r).map(([key, value]) => {
        const name = Object.hasOwn(RELABEL_FIELDS, key) ? RELABEL_FIELDS[key] : undefined;
        if (name === undefined) throw new Error(`relabeling ${i}: unknown field ${key}`);
        return [name, key === 'action' ? String(value).toLowerCase() : value];
      }),
    ),
  );
}

/** The one endpoint of a PodMonitor of deploy/monitoring/. */
function onlyEndpoint(file: string): PodMetricsEndpoint {
  const endpoints = readPodMonitor(file).spec.podMetricsEndpoints;
  if (endpoints.length !== 1) throw new Error(`deploy/monitoring/${file}: expected one endpoint, found ${endpoints.length}`);
  return endpoints[0]!;
}

/** The scrape options the sidecars' PodMonitor's (only) endpoint renders to: its relabel_configs and honor_labels. */
export function podMonitorScrapeOptions(): Required<Pick<PrometheusOptions, 'relabelConfigs' | 'honorLabels'>> {
  const endpoint = onlyEndpoint('podmonitor.yaml');
  return { relabelConfigs: relabelConfigsFromOperator(endpoint.relabelings ?? []), honorLabels: endpoint.honorLabels ?? false };
}

/**
 * The scrape settings the (only) endpoint of the PodMonitor in `file`
 * renders to, HTTPS included: its scheme, and its tlsConfig with the CA
 * Secret key replaced by the file `secretFiles` gives for `name/key` (the
 * operator mounts the Secret's key as a file the same way). A tlsConfig field
 * this does not know throws.
 */
export function podMonitorScrapeSettings(file: string, secretFiles: Readonly<Record<string, string>> = {}): ScrapeSettings {
  const endpoint = onlyEndpoint(file);
  const settings = { relabelConfigs: relabelConfigsFromOperator(endpoint.relabelings ?? []), honorLabels: endpoint.honorLabels ?? false };
  const scheme = endpoint.scheme ?? 'http';
  if (scheme !== 'http' && scheme !== 'https') throw new Error(`deploy/monitoring/${file}: scheme ${scheme}`);
  const tls = endpoint.tlsConfig;
  if (!tls) return { ...settings, scheme };
  for (const key of Object.keys(tls)) if (key !== 'ca' && key !== 'serverName') throw new Error(`deploy/monitoring/${file}: tlsConfig.${key} is not translated`);
  const ref = tls.ca?.secret;
  if (!ref || tls.serverName === undefined) throw new Error(`deploy/monitoring/${file}: tlsConfig needs ca.secret and serverName`);
  const caFile = secretFiles[`${ref.name}/${ref.key}`];
  if (caFile === undefined) throw new Error(`deploy/monitoring/${file}: no file given for Secret key ${ref.name}/${ref.key}`);
  return { ...settings, scheme, tls: { caFile, serverName: tls.serverName } };
}

/** A Kubernetes label or annotation key as Prometheus spells it in a meta label name (every other character → `_`). */
export function metaLabelName(key: string): string {
  return key.replace(/[^a-zA-Z0-9_]/g, '_');
}

/** A pod as Kubernetes service discovery sees it. */
export interface DiscoveredPod {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The container and port the target is (default: the sidecar and its metrics port). */
  readonly container?: string;
  readonly portName?: string;
}

/** The `__meta_kubernetes_*` labels Kubernetes service discovery (role `pod`) gives the target of one container port of `pod`. */
export function kubernetesPodMetaLabels(pod: DiscoveredPod): Record<string, string> {
  const meta: Record<string, string> = {
    __meta_kubernetes_namespace: pod.namespace,
    __meta_kubernetes_pod_name: pod.name,
    __meta_kubernetes_pod_container_name: pod.container ?? SIDECAR_NAME,
    __meta_kubernetes_pod_container_port_name: pod.portName ?? METRICS_PORT_NAME,
    __meta_kubernetes_pod_container_port_protocol: 'TCP',
  };
  for (const [key, value] of Object.entries(pod.labels)) {
    meta[`__meta_kubernetes_pod_label_${metaLabelName(key)}`] = value;
    meta[`__meta_kubernetes_pod_labelpresent_${metaLabelName(key)}`] = 'true';
  }
  return meta;
}
