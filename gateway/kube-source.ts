/**
 * The gateway's objects from the Kubernetes API: one informer per kind
 * (Namespaces, Services, Ingresses, ClusterDNSPolicies, Gateway API Gateways
 * and HTTPRoutes) on the controller's informer code (injector/kube.ts: list,
 * watch with bookmarks, relist after 410, restart with backoff after any
 * other error), the current objects handed over after every change
 * (coalesced), and rejected claims reported as Events on the object that
 * made them.
 */
import { CoreV1Api, CustomObjectsApi, NetworkingV1Api, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { JsonObject } from '../injector/json.ts';
import { firstLine, loadKubeConfig, startOptionalInformer } from '../injector/kube.ts';
import { ErrorCodes, SidecarError } from '../sidecar/errors.ts';
import type { Logger } from '../sidecar/log.ts';
import type { Rejection } from '../injector/gateway-ownership.ts';
import { GATEWAY_API_GROUP, type SourceObjects } from '../injector/gateway-sources.ts';

/** Options of {@link startKubeSource}. */
export interface KubeSourceOptions {
  /** A kubeconfig file; default: in-cluster (the pod's ServiceAccount). */
  readonly kubeconfig?: string;
  readonly log: Logger;
  /** Called with every kind's objects after a change (changes within {@link COALESCE_MS} are one call). */
  readonly onChange: (objects: SourceObjects) => void;
  /** Milliseconds before an informer that failed (a watch that broke, a kind not installed) starts again, doubling up to 30 s (injector/kube.ts); default 1000. */
  readonly backoffMs?: number;
}

/** A running API source. */
export interface KubeSource {
  /** The objects now (what the informers hold). */
  objects(): SourceObjects;
  /** Reports a rejected claim as a Warning Event on its object (best effort: a failure is logged). */
  report(rejection: Rejection): void;
  /** Stops every informer. Idempotent. */
  close(): Promise<void>;
}

/** Milliseconds changes are gathered before the objects are handed over. */
export const COALESCE_MS = 100;

/** The Event reason of a rejected claim. */
export const REJECTED_EVENT_REASON = 'HostNotPublished';

/** The component Events name. */
const COMPONENT = 'tenant-dns-gateway';

type Kind = keyof SourceObjects;

/**
 * Starts the informers; resolves once each kind the cluster serves has been
 * listed once. A kind it does not serve (the Gateway API without its CRDs,
 * the ClusterDNSPolicy CRD not installed: the list answers 404) counts as
 * empty and is listed again in the background, with backoff.
 *
 * @throws SidecarError CONFIG_READ when the kubeconfig cannot be loaded, or neither one is given nor the process runs in a cluster.
 */
export async function startKubeSource(options: KubeSourceOptions): Promise<KubeSource> {
  let loaded;
  try {
    loaded = loadKubeConfig(options.kubeconfig);
  } catch (err) {
    throw new SidecarError(ErrorCodes.CONFIG_READ, `--kubeconfig: loading ${options.kubeconfig}`, { cause: err });
  }
  if (!loaded) throw new SidecarError(ErrorCodes.CONFIG_READ, 'the Kubernetes API: not in a cluster and no --kubeconfig given (or --objects FILE to serve from files)');
  const kc = loaded;
  const core = kc.makeApiClient(CoreV1Api);
  const networking = kc.makeApiClient(NetworkingV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const customList = (group: string, version: string, plural: string, cluster: boolean) => () =>
    (cluster ? custom.listClusterCustomObject({ group, version, plural }) : custom.listCustomObjectForAllNamespaces({ group, version, resourcePlural: plural })) as Promise<KubernetesListObject<KubernetesObject>>;
  const kinds: { kind: Kind; path: string; list: () => Promise<KubernetesListObject<KubernetesObject>> }[] = [
    { kind: 'namespaces', path: '/api/v1/namespaces', list: () => core.listNamespace() as Promise<KubernetesListObject<KubernetesObject>> },
    { kind: 'services', path: '/api/v1/services', list: () => core.listServiceForAllNamespaces() as Promise<KubernetesListObject<KubernetesObject>> },
    { kind: 'ingresses', path: '/apis/networking.k8s.io/v1/ingresses', list: () => networking.listIngressForAllNamespaces() as Promise<KubernetesListObject<KubernetesObject>> },
    { kind: 'clusterPolicies', path: '/apis/tenant-dns.io/v1alpha1/clusterdnspolicies', list: customList('tenant-dns.io', 'v1alpha1', 'clusterdnspolicies', true) },
    { kind: 'gateways', path: `/apis/${GATEWAY_API_GROUP}/v1/gateways`, list: customList(GATEWAY_API_GROUP, 'v1', 'gateways', false) },
    { kind: 'httpRoutes', path: `/apis/${GATEWAY_API_GROUP}/v1/httproutes`, list: customList(GATEWAY_API_GROUP, 'v1', 'httproutes', false) },
  ];
  const { log } = options;
  let closed = false;
  let pending: NodeJS.Timeout | undefined;
  const changed = () => {
    if (closed || pending) return;
    pending = setTimeout(() => {
      pending = undefined;
      if (!closed) options.onChange(objects());
    }, COALESCE_MS);
  };
  const informers = kinds.map((k) => {
    // Ready when listed once, or when the cluster answered that it does not serve the kind (logged once, not on every retry).
    const running = startOptionalInformer({
      kubeConfig: kc,
      path: k.path,
      list: k.list,
      backoffMs: options.backoffMs,
      onChange: changed,
      onNotServed: () => log('info', 'gateway: a kind is not served by this cluster; retrying in the background', { kind: k.kind, path: k.path }),
      onError: (err) => log('warn', 'gateway: list or watch failed, restarting', { kind: k.kind, path: k.path, error: firstLine(err) }),
    });
    return { ...k, running, ready: running.whenReady };
  });
  const objects = (): SourceObjects => {
    const out = {} as Record<Kind, JsonObject[]>;
    // client-node's objects are the API's JSON read into its model classes: the field names are the same.
    for (const i of informers) out[i.kind] = i.running.informer.list() as unknown as JsonObject[];
    return out;
  };
  await Promise.all(informers.map((i) => i.ready));

  return {
    objects,
    report(r) {
      const ref = r.claim.ref;
      const now = new Date();
      core
        .createNamespacedEvent({
          namespace: ref.namespace,
          body: {
            metadata: { generateName: `${ref.name}.` },
            involvedObject: { apiVersion: ref.apiVersion, kind: ref.kind, namespace: ref.namespace, name: ref.name, ...(ref.uid ? { uid: ref.uid } : {}) },
            reason: REJECTED_EVENT_REASON,
            message: `${r.claim.host} not published (${r.reason}): ${r.message}`.slice(0, 1024),
            type: 'Warning',
            source: { component: COMPONENT },
            reportingComponent: COMPONENT,
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        })
        .catch((err: unknown) => log('warn', 'gateway: could not write an Event for a rejected claim', { object: `${ref.kind}/${ref.namespace}/${ref.name}`, error: (err as Error).message }));
    },
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(pending);
      await Promise.all(informers.map((i) => i.running.stop().catch(() => undefined)));
    },
  };
}
