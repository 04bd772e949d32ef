/**
 * The gateway's objects from the Kubernetes API: one @kubernetes/client-node
 * informer per kind (Namespaces, Services, Ingresses, ClusterDNSPolicies,
 * Gateway API Gateways and HTTPRoutes), the current objects handed over after
 * every change (coalesced), and rejected claims reported as Events on the
 * object that made them.
 */
import { CoreV1Api, CustomObjectsApi, KubeConfig, makeInformer, NetworkingV1Api, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { JsonObject } from '../injector/json.ts';
import { ErrorCodes, SidecarError } from '../sidecar/errors.ts';
import type { Logger } from '../sidecar/log.ts';
import type { Rejection } from './ownership.ts';
import { GATEWAY_API_GROUP, type SourceObjects } from './sources.ts';

/** Options of {@link startKubeSource}. */
export interface KubeSourceOptions {
  /** A kubeconfig file; default: in-cluster (the pod's ServiceAccount), else the usual kubeconfig lookup. */
  readonly kubeconfig?: string;
  readonly log: Logger;
  /** Called with every kind's objects after a change (changes within {@link COALESCE_MS} are one call). */
  readonly onChange: (objects: SourceObjects) => void;
  /** Milliseconds before an informer that failed (a watch that broke, a kind not installed) starts again, doubling with each failure in a row up to 5 minutes; default 5000. */
  readonly restartMs?: number;
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

/** The longest wait before a failed informer starts again, ms. */
const MAX_RESTART_MS = 300_000;

/** The Event reason of a rejected claim. */
export const REJECTED_EVENT_REASON = 'HostNotPublished';

/** The component Events name. */
const COMPONENT = 'tenant-dns-gateway';

type Kind = keyof SourceObjects;

/**
 * Starts the informers; resolves once each has listed its kind once (a kind
 * the cluster does not serve, such as Gateway API without its CRDs, counts as
 * empty and is retried in the background).
 *
 * @throws SidecarError CONFIG_READ when no kubeconfig can be loaded.
 */
export async function startKubeSource(options: KubeSourceOptions): Promise<KubeSource> {
  const kc = new KubeConfig();
  try {
    if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new SidecarError(ErrorCodes.CONFIG_READ, `--kubeconfig: loading ${options.kubeconfig ?? 'the default kubeconfig'}`, { cause: err });
  }
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
  const restartMs = options.restartMs ?? 5_000;
  let closed = false;
  let pending: NodeJS.Timeout | undefined;
  const informers = kinds.map((k) => ({ ...k, informer: makeInformer(kc, k.path, k.list), timer: undefined as NodeJS.Timeout | undefined, failures: 0 }));
  /** Restarts a failed informer after a delay that doubles with each failure in a row, up to 5 minutes (a kind not installed asks rarely). */
  const restart = (i: (typeof informers)[number], what: string, err: unknown) => {
    const delay = Math.min(restartMs * 2 ** i.failures, MAX_RESTART_MS);
    i.failures++;
    log('warn', `gateway: ${what} failed, retrying`, { kind: i.kind, path: i.path, error: err instanceof Error ? err.message : String(err), retryMs: delay });
    clearTimeout(i.timer);
    i.timer = setTimeout(() => void (closed ? undefined : start(i)), delay);
  };

  const objects = (): SourceObjects => {
    const out = Object.fromEntries(kinds.map((k) => [k.kind, [] as JsonObject[]])) as unknown as Record<Kind, JsonObject[]>;
    // client-node's objects are the API's JSON read into its model classes: the field names are the same.
    for (const i of informers) out[i.kind] = i.informer.list() as unknown as JsonObject[];
    return out;
  };
  const changed = () => {
    if (closed || pending) return;
    pending = setTimeout(() => {
      pending = undefined;
      if (!closed) options.onChange(objects());
    }, COALESCE_MS);
  };
  const start = async (i: (typeof informers)[number]): Promise<void> => {
    try {
      await i.informer.start();
      i.failures = 0;
    } catch (err) {
      restart(i, 'listing', err);
    }
  };
  for (const i of informers) {
    for (const verb of ['add', 'update', 'delete'] as const) i.informer.on(verb, changed);
    i.informer.on('error', (err: unknown) => {
      if (!closed) restart(i, 'watch', err);
    });
  }
  await Promise.all(informers.map(start));

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
      for (const i of informers) clearTimeout(i.timer);
      await Promise.all(informers.map((i) => i.informer.stop().catch(() => undefined)));
    },
  };
}
