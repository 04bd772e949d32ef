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
import type { PrometheusOptions } from './prometheus.ts';

const PODMONITOR = new URL('../../deploy/monitoring/podmonitor.yaml', import.meta.url);

/** One endpoint of a PodMonitor, as far as the tests read it. */
export interface PodMetricsEndpoint {
  readonly port: string;
  readonly path: string;
  readonly honorLabels?: boolean;
  readonly relabelings?: readonly Readonly<Record<string, unknown>>[];
}

/** The PodMonitor object of deploy/monitoring/podmonitor.yaml. */
export function readPodMonitor(): { kind: string; spec: { podMetricsEndpoints: PodMetricsEndpoint[] } } {
  return parse(readFileSync(PODMONITOR, 'utf8'));
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

/** The scrape options the PodMonitor's (only) endpoint renders to: its relabel_configs and honor_labels. */
export function podMonitorScrapeOptions(): Required<Pick<PrometheusOptions, 'relabelConfigs' | 'honorLabels'>> {
  const endpoints = readPodMonitor().spec.podMetricsEndpoints;
  if (endpoints.length !== 1) throw new Error(`deploy/monitoring/podmonitor.yaml: expected one endpoint, found ${endpoints.length}`);
  const endpoint = endpoints[0]!;
  return { relabelConfigs: relabelConfigsFromOperator(endpoint.relabelings ?? []), honorLabels: endpoint.honorLabels ?? false };
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
