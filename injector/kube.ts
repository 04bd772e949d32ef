/**
 * Access to the Kubernetes API through `@kubernetes/client-node`: where the
 * credentials come from (a kubeconfig file, or the pod's ServiceAccount), and
 * informers (client-node's ListWatch: list, then watch from the list's
 * resourceVersion, relist after 410 Gone) that keep running: client-node
 * stops an informer on any other error, so {@link startInformer} starts it
 * again after a backoff, from the last resourceVersion it saw.
 */
import { existsSync } from 'node:fs';
import { KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject, type ListPromise } from '@kubernetes/client-node';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The API access the injector has: the kubeconfig `file` when given, else the
 * pod's ServiceAccount when it runs in a cluster (KUBERNETES_SERVICE_HOST set
 * and a token mounted under `pathPrefix` + the ServiceAccount directory), else
 * undefined. client-node re-reads the token file as it rotates.
 */
export function loadKubeConfig(file?: string, env: NodeJS.ProcessEnv = process.env, pathPrefix = ''): KubeConfig | undefined {
  const kc = new KubeConfig();
  if (file) {
    kc.loadFromFile(file);
    return kc;
  }
  if (!env.KUBERNETES_SERVICE_HOST || !existsSync(`${pathPrefix}${SA_DIR}/token`)) return undefined;
  kc.loadFromCluster(pathPrefix || undefined);
  return kc;
}

/** A watch that asks for bookmarks, so a reconnect resumes from a recent resourceVersion instead of relisting. */
class BookmarkWatch extends Watch {
  override watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: (phase: string, apiObj: any, watchObj?: any) => void, done: (err: any) => void): Promise<AbortController> {
    return super.watch(path, { ...queryParams, allowWatchBookmarks: true }, callback, done);
  }
}

/** Options of {@link startInformer}. */
export interface InformerOptions<T extends KubernetesObject> {
  readonly kubeConfig: KubeConfig;
  /** The collection's path, e.g. `/api/v1/namespaces` or `/apis/tenant-dns.io/v1alpha1/dnspolicies`. */
  readonly path: string;
  /** The list call (same path and selector). */
  readonly list: ListPromise<T>;
  readonly labelSelector?: string;
  /** Called after every change the informer applies (add, update, delete, and each object a relist changed). */
  readonly onChange?: (type: 'add' | 'update' | 'delete', object: T) => void;
  /** Called with an error before the informer is restarted. */
  readonly onError?: (err: unknown) => void;
  /** Backoff after an error, in ms; doubles up to 30 s, back to this after a successful list. Default 1 000. */
  readonly backoffMs?: number;
  /** Start listing at once (default true); else on {@link RunningInformer.start}. */
  readonly autoStart?: boolean;
}

/** A running informer: its cache, whether its first list is in, and its stop. */
export interface RunningInformer<T extends KubernetesObject> {
  readonly informer: ListWatch<T>;
  /** Whether a list has completed (the cache holds the collection). */
  readonly synced: boolean;
  /** Resolves once the first list is in the cache. */
  readonly whenSynced: Promise<void>;
  /** Lists done so far (the first one and every relist after 410 Gone or a restart without a resourceVersion). */
  readonly lists: number;
  /** Starts it (when created with `autoStart: false`); idempotent. */
  start(): void;
  stop(): Promise<void>;
}

/** The HTTP status of a failed client-node call (its ApiException's `code`), or undefined. */
export function apiStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** The first line of an error's message (client-node's ApiException carries the whole response after it). */
export function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

/** Starts an informer that restarts itself after errors. */
export function startInformer<T extends KubernetesObject>(opts: InformerOptions<T>): RunningInformer<T> {
  const base = opts.backoffMs ?? 1_000;
  let backoff = base;
  let synced = false;
  let lists = 0;
  let stopped = false;
  let restart: NodeJS.Timeout | undefined;
  let markSynced!: () => void;
  const whenSynced = new Promise<void>((r) => (markSynced = r));
  const list: ListPromise<T> = async () => {
    const result: KubernetesListObject<T> = await opts.list();
    lists++;
    backoff = base;
    // After ListWatch has put the items in its cache (it does so as soon as this promise resolves).
    setImmediate(() => {
      synced = true;
      markSynced();
    });
    return result;
  };
  const informer = new ListWatch<T>(opts.path, new BookmarkWatch(opts.kubeConfig), list, false, opts.labelSelector);
  if (opts.onChange) {
    const on = opts.onChange;
    informer.on('add', (o) => on('add', o));
    informer.on('update', (o) => on('update', o));
    informer.on('delete', (o) => on('delete', o));
  }
  informer.on('error', (err) => {
    if (stopped) return;
    opts.onError?.(err);
    clearTimeout(restart);
    restart = setTimeout(() => {
      if (!stopped) void informer.start();
    }, backoff);
    restart.unref();
    backoff = Math.min(backoff * 2, 30_000);
  });
  let started = false;
  const start = () => {
    if (started || stopped) return;
    started = true;
    void informer.start();
  };
  if (opts.autoStart ?? true) start();
  return {
    informer,
    start,
    get synced() {
      return synced;
    },
    get lists() {
      return lists;
    },
    whenSynced,
    async stop() {
      stopped = true;
      clearTimeout(restart);
      await informer.stop();
    },
  };
}

/** An informer of a kind the cluster may not serve: ready once listed, or once the API answered 404 (it counts as empty). */
export interface OptionalInformer<T extends KubernetesObject> extends RunningInformer<T> {
  /** Whether it was listed once or the kind is not served. */
  readonly ready: boolean;
  /** Resolves when {@link OptionalInformer.ready} turns true. */
  readonly whenReady: Promise<void>;
}

/**
 * Starts an informer of a kind the cluster may not serve (the Gateway API
 * without its CRDs, say): a 404 marks it ready (empty) and calls
 * `onNotServed` once, not `onError`; it keeps retrying in the background.
 */
export function startOptionalInformer<T extends KubernetesObject>(opts: InformerOptions<T> & { readonly onNotServed?: () => void }): OptionalInformer<T> {
  let ready = false;
  let notServed = false;
  const whenReady = Promise.withResolvers<void>();
  const markReady = () => {
    ready = true;
    whenReady.resolve();
  };
  const running = startInformer<T>({
    ...opts,
    onError: (err) => {
      if (apiStatus(err) !== 404) return opts.onError?.(err);
      if (!notServed) opts.onNotServed?.();
      notServed = true;
      markReady();
    },
  });
  void running.whenSynced.then(markReady);
  return {
    informer: running.informer,
    start: running.start,
    stop: running.stop,
    whenSynced: running.whenSynced,
    get synced() {
      return running.synced;
    },
    get lists() {
      return running.lists;
    },
    get ready() {
      return ready;
    },
    whenReady: whenReady.promise,
  };
}
