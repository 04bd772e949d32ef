/**
 * The policy controller, in the injector's process: informers (client-node,
 * list + watch) on Namespaces, ClusterDNSPolicies, DNSPolicies, the
 * rendered ConfigMaps, and (for split horizon, always) Services, Ingresses,
 * Gateways and HTTPRoutes; on any change (and every resync interval) one render
 * with {@link renderAll} (debounced: a burst of changes is one render), then,
 * only while this replica leads (leader.ts), the writes that change
 * something: each ConfigMap whose data, labels or annotations differ from
 * the cached one (create, or replace with its resourceVersion), and each
 * object's status whose condition, observedGeneration or namespace count
 * changed (through the status subresource). Held layers are never written.
 * A 409 Conflict re-reads the object and tries again, with backoff.
 *
 * What it writes reaches pods through the kubelet (mounted ConfigMaps, which
 * the sidecar reloads); while it is down nothing changes and pods keep their
 * last mounted config.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, NetworkingV1Api, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1ConfigMap } from '@kubernetes/client-node';
import { GATEWAY_API_GROUP } from './gateway-sources.ts';
import type { InjectorConfig } from './config-schema.ts';
import { ACCEPTED_CONDITION, CRD_GROUP, CRD_VERSION } from './crd-schema.ts';
import { jsonEqual, obj, type JsonObject } from './json.ts';
import { apiStatus, firstLine, startInformer, startOptionalInformer, type OptionalInformer, type RunningInformer } from './kube.ts';
import { LeaderElector, type ElectionClock } from './leader.ts';
import { POLICY_KINDS, type ControllerMetrics } from './metrics.ts';
import { CONTROLLER_LEASE_NAME, RENDERED_MANAGED_BY, RenderedKeys } from './names.ts';
import { renderAll, settingsFromConfig, type ObjectStatus, type RenderSettings } from './render.ts';

/** The policy objects' resources (plural names under `tenant-dns.io/v1alpha1`). */
const PLURALS = { ClusterDNSPolicy: 'clusterdnspolicies', DNSPolicy: 'dnspolicies' } as const;

/** The kinds split horizon reads (the gateway's sources), as keys of `RenderInput.published`. */
const PUBLISHED_KINDS = ['ingresses', 'services', 'httpRoutes', 'gateways'] as const;

/** Logs one line. */
type Log = (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

/** Options of {@link PolicyController}. */
export interface PolicyControllerOptions {
  readonly kubeConfig: KubeConfig;
  readonly config: InjectorConfig;
  /** The namespace informer (shared with the tenant lookup), started by its owner. */
  readonly namespaces: RunningInformer<KubernetesObject>;
  /** Whether this replica may write now (it leads); checked before every write. */
  readonly isLeader: () => boolean;
  readonly metrics: ControllerMetrics;
  readonly log?: Log;
  /** Milliseconds a change waits for more before the render. Default 100. */
  readonly debounceMs?: number;
  /** Milliseconds between renders without changes (resync). Default 300 000; 0 disables. */
  readonly resyncMs?: number;
  /** Attempts of one write that conflicts (409) before it is left to the next render. Default 5. */
  readonly maxAttempts?: number;
  /** Backoff before the second attempt in ms, doubling. Default 100. */
  readonly backoffMs?: number;
  /** Backoff of the informers after an error, in ms. Default 1 000. */
  readonly informerBackoffMs?: number;
  /** This replica's identity in the Events it records (`reportingInstance`). Default: the host name. */
  readonly identity?: string;
}

type Condition = { type: string; status: string; reason: string; message: string; observedGeneration?: number; lastTransitionTime: string };

/** The status an object gets for its render outcome; `lastTransitionTime` kept while the condition's status stays. */
export function desiredStatus(s: ObjectStatus, current: unknown, now: Date): JsonObject {
  const old = acceptedOf(current);
  const status = s.accepted ? 'True' : 'False';
  const condition: Condition = {
    type: ACCEPTED_CONDITION,
    status,
    reason: s.reason,
    message: s.message,
    ...(s.generation === undefined ? {} : { observedGeneration: s.generation }),
    lastTransitionTime: old?.status === status && typeof old.lastTransitionTime === 'string' ? old.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, 'Z'),
  };
  return { ...(s.generation === undefined ? {} : { observedGeneration: s.generation }), conditions: [condition], namespaces: s.namespaces };
}

/** The Accepted condition of a status, if any. */
function acceptedOf(status: unknown): JsonObject | undefined {
  const conditions = obj(status)?.conditions;
  return (Array.isArray(conditions) ? conditions : []).map(obj).find((c) => c?.type === ACCEPTED_CONDITION);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** The controller: informers, debounced renders, writes while leading. */
export class PolicyController {
  readonly #o: PolicyControllerOptions;
  readonly #settings: RenderSettings;
  readonly #core: CoreV1Api;
  readonly #custom: CustomObjectsApi;
  readonly #informers: { cluster: RunningInformer<KubernetesObject>; policies: RunningInformer<KubernetesObject>; configMaps: RunningInformer<V1ConfigMap> };
  /** Split horizon's sources: always watched (a kind the cluster does not serve counts as empty). */
  readonly #published: Record<(typeof PUBLISHED_KINDS)[number], OptionalInformer<KubernetesObject>>;
  /** The last accepted spec of each object (renderAll's `accepted`): an object that turns invalid keeps contributing it. */
  #accepted: ReadonlyMap<string, JsonObject> = new Map();
  #timer: NodeJS.Timeout | undefined;
  #resync: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** Renders in a row whose writes did not all succeed: the next is retried after 1 s, doubling up to 60 s. */
  #failures = 0;
  #retry: NodeJS.Timeout | undefined;
  #idle: (() => void)[] = [];

  constructor(opts: PolicyControllerOptions) {
    this.#o = opts;
    this.#settings = settingsFromConfig(opts.config);
    this.#core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.#custom = opts.kubeConfig.makeApiClient(CustomObjectsApi);
    const common = {
      kubeConfig: opts.kubeConfig,
      onChange: () => this.kick(),
      onError: (err: unknown) => opts.log?.('warn', 'controller watch failed; retrying', { error: firstLine(err) }),
      backoffMs: opts.informerBackoffMs,
      autoStart: false,
    };
    const group = CRD_GROUP;
    const version = CRD_VERSION;
    this.#informers = {
      cluster: startInformer<KubernetesObject>({
        ...common,
        path: `/apis/${group}/${version}/${PLURALS.ClusterDNSPolicy}`,
        list: () => this.#custom.listClusterCustomObject({ group, version, plural: PLURALS.ClusterDNSPolicy }),
      }),
      policies: startInformer<KubernetesObject>({
        ...common,
        path: `/apis/${group}/${version}/${PLURALS.DNSPolicy}`,
        list: () => this.#custom.listCustomObjectForAllNamespaces({ group, version, resourcePlural: PLURALS.DNSPolicy }),
      }),
      configMaps: startInformer<V1ConfigMap>({
        ...common,
        path: '/api/v1/configmaps',
        labelSelector: `${RenderedKeys.managedBy}=${RENDERED_MANAGED_BY}`,
        list: () => this.#core.listConfigMapForAllNamespaces({ labelSelector: `${RenderedKeys.managedBy}=${RENDERED_MANAGED_BY}` }),
      }),
    };
    const networking = opts.kubeConfig.makeApiClient(NetworkingV1Api);
    type List = () => Promise<KubernetesListObject<KubernetesObject>>;
    const optional = (path: string, list: List) =>
      startOptionalInformer<KubernetesObject>({
        ...common,
        path,
        list,
        onNotServed: () => opts.log?.('info', 'controller: a kind split horizon reads is not served by this cluster; it counts as empty', { path }),
      });
    const routes = (plural: string): List => () => this.#custom.listCustomObjectForAllNamespaces({ group: GATEWAY_API_GROUP, version: 'v1', resourcePlural: plural });
    this.#published = {
      ingresses: optional('/apis/networking.k8s.io/v1/ingresses', () => networking.listIngressForAllNamespaces() as ReturnType<List>),
      services: optional('/api/v1/services', () => this.#core.listServiceForAllNamespaces() as ReturnType<List>),
      httpRoutes: optional(`/apis/${GATEWAY_API_GROUP}/v1/httproutes`, routes('httproutes')),
      gateways: optional(`/apis/${GATEWAY_API_GROUP}/v1/gateways`, routes('gateways')),
    };
  }

  /** Starts the informers and the resync timer; the first render follows their first lists. */
  start(): void {
    // The namespace informer is shared (and started by its owner): a label change re-renders too.
    for (const verb of ['add', 'update', 'delete'] as const) this.#o.namespaces.informer.on(verb, () => this.kick());
    for (const i of [...Object.values(this.#informers), ...Object.values(this.#published)]) i.start();
    void Promise.all([this.#o.namespaces.whenSynced, ...Object.values(this.#informers).map((i) => i.whenSynced), ...Object.values(this.#published).map((i) => i.whenReady)]).then(() => this.kick());
    const resync = this.#o.resyncMs ?? 300_000;
    if (resync > 0) {
      this.#resync = setInterval(() => this.kick(), resync);
      this.#resync.unref();
    }
  }

  /** Asks for a render: after `debounceMs`, coalescing every request made meanwhile. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#reconcile().finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.kick();
        } else if (!this.#timer) for (const r of this.#idle.splice(0)) r();
      });
    }, this.#o.debounceMs ?? 100);
    this.#timer.unref();
  }

  /** Resolves when no render is pending or running (tests wait on it after a change). */
  idle(): Promise<void> {
    if (!this.#timer && !this.#running) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** Stops the informers and timers; a render in progress finishes its current write. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#retry);
    clearInterval(this.#resync);
    await Promise.all([...Object.values(this.#informers), ...Object.values(this.#published)].map((i) => i.stop()));
    await this.#running;
    for (const r of this.#idle.splice(0)) r();
  }

  get #synced(): boolean {
    return this.#o.namespaces.synced && Object.values(this.#informers).every((i) => i.synced) && Object.values(this.#published).every((i) => i.ready);
  }

  async #reconcile(): Promise<void> {
    if (!this.#synced || !this.#o.isLeader()) return;
    const { metrics } = this.#o;
    let result;
    try {
      result = renderAll(
        {
          namespaces: this.#o.namespaces.informer.list() as unknown as JsonObject[],
          clusterPolicies: this.#informers.cluster.informer.list() as unknown as JsonObject[],
          policies: this.#informers.policies.informer.list() as unknown as JsonObject[],
          lastAccepted: this.#accepted,
          published: Object.fromEntries(PUBLISHED_KINDS.map((k) => [k, this.#published[k].informer.list() as unknown as JsonObject[]])),
        },
        this.#settings,
      );
    } catch (err) {
      metrics.renders.inc({ result: 'error' });
      this.#o.log?.('error', 'render failed; nothing written', { error: err instanceof Error ? err.message : String(err) });
      return;
    }
    metrics.renders.inc({ result: 'ok' });
    metrics.heldLayers.set(result.held.length);
    for (const kind of POLICY_KINDS) metrics.rejectedObjects.set({ kind }, result.statuses.filter((s) => s.kind === kind && !s.accepted).length);
    this.#accepted = result.accepted;
    for (const s of result.splitHorizonSkipped) this.#o.log?.('warn', 'split horizon names not rendered: the platform layer would not validate with them', { namespace: s.namespace, reason: s.reason });
    let ok = true;
    for (const cm of result.configMaps) ok = (await this.#writeConfigMap(cm)) && ok;
    for (const s of result.statuses) ok = (await this.#writeStatus(s)) && ok;
    clearTimeout(this.#retry);
    if (ok) {
      this.#failures = 0;
      metrics.lastSuccess.set(Date.now() / 1000);
      return;
    }
    // Not on the next change only: a failed write (the API down, a permission missing) is tried again, backing off.
    this.#retry = setTimeout(() => this.kick(), Math.min(1_000 * 2 ** this.#failures++, 60_000));
    this.#retry.unref();
  }

  /** Retries `attempt` on 409 Conflict with backoff; true when it succeeded or had nothing to do. */
  async #withRetry(kind: 'configmap' | 'status', what: string, attempt: () => Promise<'created' | 'updated' | 'unchanged' | 'not-leader'>): Promise<boolean> {
    const { metrics } = this.#o;
    const max = this.#o.maxAttempts ?? 5;
    let backoff = this.#o.backoffMs ?? 100;
    for (let i = 1; ; i++) {
      try {
        const r = await attempt();
        if (r === 'created' || r === 'updated') metrics.writes.inc({ kind, result: r });
        return r !== 'not-leader';
      } catch (err) {
        if (apiStatus(err) === 409 && i < max) {
          metrics.conflicts.inc({ kind });
          await sleep(backoff);
          backoff *= 2;
          continue;
        }
        if (apiStatus(err) === 409) metrics.conflicts.inc({ kind });
        metrics.writes.inc({ kind, result: 'error' });
        this.#o.log?.('warn', `writing ${what} failed`, { status: apiStatus(err), error: firstLine(err), attempts: i });
        return false;
      }
    }
  }

  #writeConfigMap(desired: JsonObject): Promise<boolean> {
    const meta = obj(desired.metadata)!;
    const name = String(meta.name);
    const namespace = String(meta.namespace);
    let fresh: V1ConfigMap | undefined | null = null; // null: use the informer's copy; after a conflict, read again
    return this.#withRetry('configmap', `ConfigMap ${namespace}/${name}`, async () => {
      let current: V1ConfigMap | undefined;
      if (fresh === null) current = this.#informers.configMaps.informer.get(name, namespace);
      else {
        try {
          current = await this.#core.readNamespacedConfigMap({ name, namespace });
        } catch (err) {
          if (apiStatus(err) !== 404) throw err;
          current = undefined;
        }
      }
      const same = (a: unknown, b: unknown) => jsonEqual(a ?? {}, b ?? {});
      if (current && same(current.data, desired.data) && same(current.metadata?.labels, meta.labels) && same(current.metadata?.annotations, meta.annotations)) return 'unchanged';
      if (!this.#o.isLeader()) return 'not-leader';
      try {
        if (!current) {
          await this.#core.createNamespacedConfigMap({ namespace, body: desired as V1ConfigMap });
          return 'created';
        }
        const body = { ...desired, metadata: { ...meta, resourceVersion: current.metadata?.resourceVersion } } as V1ConfigMap;
        await this.#core.replaceNamespacedConfigMap({ name, namespace, body });
        return 'updated';
      } catch (err) {
        // 409 on create: it exists (not labelled ours, or not in the cache yet); on replace: changed meanwhile. Read it again.
        if (apiStatus(err) === 409) fresh = undefined;
        throw err;
      }
    });
  }

  #writeStatus(s: ObjectStatus): Promise<boolean> {
    const kind = s.kind === 'ClusterDNSPolicy' ? 'ClusterDNSPolicy' : 'DNSPolicy';
    const informer = kind === 'ClusterDNSPolicy' ? this.#informers.cluster : this.#informers.policies;
    const group = CRD_GROUP;
    const version = CRD_VERSION;
    const plural = PLURALS[kind];
    const what = `${kind} ${s.namespace ? `${s.namespace}/` : ''}${s.name} status`;
    let reread = false;
    return this.#withRetry('status', what, async () => {
      let current: JsonObject | undefined;
      if (!reread) current = informer.informer.get(s.name, s.namespace) as unknown as JsonObject | undefined;
      else {
        try {
          current = (s.namespace
            ? await this.#custom.getNamespacedCustomObject({ group, version, namespace: s.namespace, plural, name: s.name })
            : await this.#custom.getClusterCustomObject({ group, version, plural, name: s.name })) as JsonObject;
        } catch (err) {
          if (apiStatus(err) === 404) return 'unchanged'; // deleted meanwhile
          throw err;
        }
      }
      if (!current) return 'unchanged';
      const generation = obj(current.metadata)?.generation;
      // The object changed since this render: the next render (its watch event kicks one) writes its status.
      if (s.generation !== undefined && generation !== s.generation) return 'unchanged';
      const status = desiredStatus(s, current.status, new Date());
      if (jsonEqual(status, current.status)) return 'unchanged';
      if (!this.#o.isLeader()) return 'not-leader';
      const body = { ...current, status };
      try {
        if (s.namespace) await this.#custom.replaceNamespacedCustomObjectStatus({ group, version, namespace: s.namespace, plural, name: s.name, body });
        else await this.#custom.replaceClusterCustomObjectStatus({ group, version, plural, name: s.name, body });
      } catch (err) {
        if (apiStatus(err) === 409) reread = true;
        throw err;
      }
      void this.#event(kind, current, status, s);
      return 'updated';
    });
  }

  /**
   * Records a core/v1 Event on the object when its Accepted condition turns
   * False (or its reason or message change while False), and when it turns
   * True again: `kubectl describe` shows why. Best effort: a failure is logged.
   * Events of cluster-scoped objects go to the `default` namespace, as
   * kubectl looks for them there.
   */
  async #event(kind: string, object: JsonObject, status: JsonObject, s: ObjectStatus): Promise<void> {
    const was = acceptedOf(object.status);
    const now = acceptedOf(status)!;
    const changed = was?.status !== now.status || (now.status === 'False' && (was?.reason !== now.reason || was?.message !== now.message));
    if (!changed || (now.status === 'True' && was === undefined)) return;
    const meta = obj(object.metadata) ?? {};
    const time = new Date();
    try {
      await this.#core.createNamespacedEvent({
        namespace: s.namespace ?? 'default',
        body: {
          metadata: { generateName: `${s.name}.`, namespace: s.namespace ?? 'default' },
          involvedObject: { apiVersion: String(object.apiVersion), kind, name: s.name, namespace: s.namespace, uid: String(meta.uid ?? ''), resourceVersion: String(meta.resourceVersion ?? '') },
          type: now.status === 'True' ? 'Normal' : 'Warning',
          reason: String(now.reason),
          message: String(now.message).slice(0, 1024),
          source: { component: RENDERED_MANAGED_BY },
          reportingComponent: RENDERED_MANAGED_BY,
          reportingInstance: this.#o.identity ?? hostname(),
          firstTimestamp: time,
          lastTimestamp: time,
          count: 1,
        },
      });
    } catch (err) {
      this.#o.log?.('warn', 'recording an event failed', { kind, name: s.name, namespace: s.namespace, status: apiStatus(err), error: firstLine(err) });
    }
  }
}

/** Options of {@link startControlPlane}. */
export interface ControlPlaneOptions extends Omit<PolicyControllerOptions, 'isLeader'> {
  /** The Lease's namespace: the injector's own. */
  readonly leaseNamespace: string;
  /** The Lease's name. Default {@link CONTROLLER_LEASE_NAME}. */
  readonly leaseName?: string;
  /** Holder identity. Default: POD_NAME (else the host name) plus a random part. */
  readonly identity?: string;
  /** Timings of the election (tests shorten them). */
  readonly election?: { leaseDurationSeconds?: number; renewIntervalMs?: number; renewDeadlineMs?: number; retryIntervalMs?: number; clock?: ElectionClock };
}

/** A running control plane: the elector and the controller. */
export interface ControlPlane {
  readonly elector: LeaderElector;
  readonly controller: PolicyController;
  /** Stops the controller, then releases the Lease. */
  stop(): Promise<void>;
}

/** Starts leader election and the controller; only the leader writes. */
export function startControlPlane(opts: ControlPlaneOptions): ControlPlane {
  let controller: PolicyController | undefined;
  const elector = new LeaderElector({
    api: opts.kubeConfig.makeApiClient(CoordinationV1Api),
    namespace: opts.leaseNamespace,
    name: opts.leaseName ?? CONTROLLER_LEASE_NAME,
    identity: opts.identity ?? `${process.env.POD_NAME || hostname()}_${randomBytes(4).toString('hex')}`,
    ...opts.election,
    onStartedLeading: () => {
      opts.metrics.leader.set(1);
      controller?.kick();
    },
    onStoppedLeading: () => opts.metrics.leader.set(0),
    log: opts.log,
  });
  opts.metrics.leader.set(0);
  controller = new PolicyController({ ...opts, identity: elector.identity, isLeader: () => elector.isLeader });
  controller.start();
  elector.start();
  return {
    elector,
    controller,
    async stop() {
      await controller.stop();
      await elector.stop();
    },
  };
}
