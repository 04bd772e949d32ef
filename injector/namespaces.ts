/**
 * Tenant names: the namespace's tenant label (default `tenant-dns.io/tenant`)
 * when the injector may read namespaces, else the namespace name. Never a
 * value the pod sets on itself. With it, whether the namespace lets its pods
 * opt out (`tenant-dns.io/allow-opt-out: "true"`; false when unknown).
 *
 * {@link NamespaceWatchCache} keeps every namespace's labels from a
 * client-node informer (list + watch), so admission normally answers from
 * memory; a namespace not yet seen is fetched directly. {@link resolveTenant} puts a deadline on any resolver and falls
 * back to the namespace name, so a slow API never blocks admission.
 */
import { CoreV1Api, type KubeConfig, type V1Namespace } from '@kubernetes/client-node';
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import { apiStatus, startInformer, type RunningInformer } from './kube.ts';
import { InjectValues, Keys } from './names.ts';

/** Where a tenant name came from. */
export type TenantSource = 'label' | 'namespace' | 'fallback';

/** A resolved tenant. */
export interface TenantLookup {
  readonly tenant: string;
  readonly source: TenantSource;
  /** Set when the lookup failed and the namespace name was used. */
  readonly warning?: string;
  /** The namespace carries `tenant-dns.io/allow-opt-out: "true"`; absent when unknown (no lookup, or it failed), which counts as false. */
  readonly allowOptOut?: boolean;
}

/** Resolves a namespace to its tenant. Implementations honour `signal`. */
export interface TenantResolver {
  resolve(namespace: string, signal: AbortSignal): Promise<TenantLookup>;
  /** Stops background work; idempotent. */
  close(): void;
}

/** The tenant is the namespace name (no API access, or offline). */
export class NamespaceNameResolver implements TenantResolver {
  resolve(namespace: string): Promise<TenantLookup> {
    return Promise.resolve({ tenant: namespace, source: 'namespace' });
  }
  close(): void {}
}

/** Whether `v` can be a tenant name (a Kubernetes label value, 1–63 characters). */
export function isTenantName(v: unknown): v is string {
  return typeof v === 'string' && /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(v);
}

/**
 * The tenant of namespace `name` whose tenant label has value `label`: the
 * label when it is a valid tenant name, else the namespace's name (what
 * admission decides; the controller's render and the gateway's ownership use
 * the same rule).
 */
export function namespaceTenant(name: string, label: string | undefined): string {
  return isTenantName(label) ? label : name;
}

/**
 * Resolves with a deadline of `timeoutMs` milliseconds: on timeout or error
 * the namespace name is used, with a warning. Never rejects.
 */
export async function resolveTenant(resolver: TenantResolver, namespace: string, timeoutMs: number): Promise<TenantLookup> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<TenantLookup>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error(`tenant lookup for ${namespace} timed out after ${timeoutMs} ms`));
      resolve({ tenant: namespace, source: 'fallback', warning: `tenant-dns: tenant lookup timed out; using namespace name ${namespace}` });
    }, timeoutMs);
  });
  try {
    return await Promise.race([
      resolver.resolve(namespace, controller.signal).catch(
        (): TenantLookup => ({ tenant: namespace, source: 'fallback', warning: `tenant-dns: tenant lookup failed; using namespace name ${namespace}` }),
      ),
      deadline,
    ]);
  } finally {
    clearTimeout(timer);
    controller.abort();
  }
}

/** Options of {@link NamespaceWatchCache}. */
export interface WatchCacheOptions {
  readonly kubeConfig: KubeConfig;
  /** The namespace label naming the tenant. */
  readonly label: string;
  /** Called with problems worth logging. */
  readonly onError?: (message: string, err: unknown) => void;
  /** Called after every namespace change the informer applies (the controller re-renders on it). */
  readonly onChange?: (type: 'add' | 'update' | 'delete', namespace: V1Namespace) => void;
  /** Backoff after a failed list or watch, in ms (doubles up to 30 s). */
  readonly backoffMs?: number;
}

/** What the cache keeps of one namespace. */
interface NamespaceLabels {
  /** The tenant label's value, if any. */
  readonly tenant: string | undefined;
  readonly allowOptOut: boolean;
}

function labelsOf(ns: V1Namespace | undefined, label: string): NamespaceLabels {
  const labels = ns?.metadata?.labels;
  const v = labels?.[label];
  return { tenant: typeof v === 'string' ? v : undefined, allowOptOut: labels?.[Keys.namespaceAllowOptOut] === InjectValues.namespaceAllowOptOut };
}

/**
 * Namespace labels from a client-node informer on `/api/v1/namespaces`
 * (list + watch, relist after 410 Gone, restarted after errors), with a
 * direct GET for a namespace not seen yet. The controller reads the same
 * informer ({@link NamespaceWatchCache.namespaces}).
 */
export class NamespaceWatchCache implements TenantResolver {
  readonly #opts: WatchCacheOptions;
  readonly #core: CoreV1Api;
  readonly #running: RunningInformer<V1Namespace>;
  #started = false;

  constructor(opts: WatchCacheOptions) {
    this.#opts = opts;
    this.#core = opts.kubeConfig.makeApiClient(CoreV1Api);
    this.#running = startInformer<V1Namespace>({
      kubeConfig: opts.kubeConfig,
      path: '/api/v1/namespaces',
      list: () => this.#core.listNamespace(),
      onChange: opts.onChange,
      onError: (err) => opts.onError?.('namespace watch failed; retrying', err),
      backoffMs: opts.backoffMs,
      autoStart: false,
    });
  }

  /** The namespace informer (its cache and state). */
  get namespaces(): RunningInformer<V1Namespace> {
    return this.#running;
  }

  /** Starts listing and watching in the background. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#running.start();
  }

  async resolve(namespace: string, signal: AbortSignal): Promise<TenantLookup> {
    const known = this.#running.informer.get(namespace);
    if (known) return this.#lookup(namespace, labelsOf(known, this.#opts.label));
    let ns: V1Namespace;
    try {
      ns = await this.#core.readNamespace({ name: namespace });
    } catch (err) {
      if (apiStatus(err) === 404) return { tenant: namespace, source: 'namespace' };
      throw new InjectorError(InjectorErrorCodes.KUBE_API, `getting namespace ${namespace}`, { cause: err });
    }
    signal.throwIfAborted();
    return this.#lookup(namespace, labelsOf(ns, this.#opts.label));
  }

  #lookup(namespace: string, { tenant: label, allowOptOut }: NamespaceLabels): TenantLookup {
    if (label === undefined || label === '') return { tenant: namespace, source: 'namespace', allowOptOut };
    if (!isTenantName(label)) {
      return { tenant: namespace, source: 'fallback', allowOptOut, warning: `tenant-dns: namespace label ${this.#opts.label} is not a valid tenant name; using ${namespace}` };
    }
    return { tenant: label, source: 'label', allowOptOut };
  }

  close(): void {
    void this.#running.stop();
  }
}
