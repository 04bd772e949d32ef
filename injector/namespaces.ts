/**
 * Tenant names: the namespace's tenant label (default `tenant-dns.io/tenant`)
 * when the injector may read namespaces, else the namespace name. Never a
 * value the pod sets on itself. With it, whether the namespace lets its pods
 * opt out (`tenant-dns.io/allow-opt-out: "true"`; false when unknown).
 *
 * {@link NamespaceWatchCache} keeps every namespace's labels from a list +
 * watch on the API server's REST API (service-account token, cluster CA), so
 * admission normally answers from memory; a namespace not yet seen is fetched
 * directly. {@link resolveTenant} puts a deadline on any resolver and falls
 * back to the namespace name, so a slow API never blocks admission.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import { obj, type JsonObject } from './json.ts';
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

/** A minimal Kubernetes REST client: GET and streaming GET (watch). */
export interface KubeClient {
  /** GETs `path`; resolves with status and body text. */
  get(path: string, signal: AbortSignal): Promise<{ status: number; body: string }>;
  /** GETs `path` and calls `onLine` with each line of the streamed body; resolves when the stream ends. */
  stream(path: string, onLine: (line: string) => void, signal: AbortSignal): Promise<number>;
}

/** Options of {@link createKubeClient}. */
export interface KubeClientOptions {
  /** e.g. `https://10.96.0.1:443`. */
  readonly baseUrl: string;
  /** PEM of the cluster CA; undefined for plain HTTP (tests). */
  readonly ca?: string | Buffer;
  /** Bearer token file, re-read on every request (projected tokens rotate). */
  readonly tokenFile?: string;
  /** Milliseconds a plain GET may take. */
  readonly timeoutMs?: number;
}

/** A {@link KubeClient} over node:http(s). */
export function createKubeClient(opts: KubeClientOptions): KubeClient {
  const base = new URL(opts.baseUrl);
  const mod = base.protocol === 'https:' ? https : http;
  const headers = (): Record<string, string> => {
    const h: Record<string, string> = { Accept: 'application/json' };
    if (opts.tokenFile) h.Authorization = `Bearer ${readFileSync(opts.tokenFile, 'utf8').trim()}`;
    return h;
  };
  const open = (path: string, signal: AbortSignal, timeoutMs: number | undefined) =>
    new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = mod.request(new URL(path, base), { method: 'GET', headers: headers(), ca: opts.ca, signal, timeout: timeoutMs }, resolve);
      req.on('timeout', () => req.destroy(new InjectorError(InjectorErrorCodes.KUBE_API, `GET ${path}: timed out after ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new InjectorError(InjectorErrorCodes.KUBE_API, `GET ${base.origin}${path}`, { cause: err })));
      req.end();
    });
  return {
    async get(path, signal) {
      const res = await open(path, signal, opts.timeoutMs ?? 5_000);
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      return { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') };
    },
    async stream(path, onLine, signal) {
      const res = await open(path, signal, undefined);
      let buf = '';
      res.setEncoding('utf8');
      for await (const chunk of res) {
        buf += chunk as string;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) onLine(line);
        }
      }
      if (buf.trim()) onLine(buf.trim());
      return res.statusCode ?? 0;
    },
  };
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A client for the API server the pod runs in, or undefined outside a cluster. */
export function inClusterClient(env: NodeJS.ProcessEnv = process.env, saDir = SA_DIR): KubeClient | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) return undefined;
  let ca: Buffer;
  try {
    ca = readFileSync(`${saDir}/ca.crt`);
    readFileSync(`${saDir}/token`);
  } catch {
    return undefined;
  }
  const h = host.includes(':') ? `[${host}]` : host;
  return createKubeClient({ baseUrl: `https://${h}:${port}`, ca, tokenFile: `${saDir}/token` });
}

/** Options of {@link NamespaceWatchCache}. */
export interface WatchCacheOptions {
  readonly client: KubeClient;
  /** The namespace label naming the tenant. */
  readonly label: string;
  /** Called with problems worth logging. */
  readonly onError?: (message: string, err: unknown) => void;
  /** Backoff after a failed list or watch, in ms (doubles up to 30 s). */
  readonly backoffMs?: number;
}

/** What the cache keeps of one namespace. */
interface NamespaceLabels {
  /** The tenant label's value, if any. */
  readonly tenant: string | undefined;
  readonly allowOptOut: boolean;
}

/** Namespace labels from a list + watch, with a direct GET for a namespace not yet seen. */
export class NamespaceWatchCache implements TenantResolver {
  readonly #opts: WatchCacheOptions;
  readonly #labels = new Map<string, NamespaceLabels>();
  readonly #stop = new AbortController();
  #synced = false;
  #loop: Promise<void> | undefined;

  constructor(opts: WatchCacheOptions) {
    this.#opts = opts;
  }

  /** Whether the initial list has completed. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Starts listing and watching in the background. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Resolves once the cache has synced, or after `timeoutMs`. */
  async waitForSync(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!this.#synced && Date.now() < end && !this.#stop.signal.aborted) await new Promise((r) => setTimeout(r, 20));
    return this.#synced;
  }

  #record(ns: unknown): void {
    const meta = obj(obj(ns)?.metadata);
    const name = meta?.name;
    if (typeof name !== 'string') return;
    const labels = obj(meta?.labels);
    const v = labels?.[this.#opts.label];
    this.#labels.set(name, { tenant: typeof v === 'string' ? v : undefined, allowOptOut: labels?.[Keys.namespaceAllowOptOut] === InjectValues.namespaceAllowOptOut });
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let backoff = this.#opts.backoffMs ?? 1_000;
    while (!signal.aborted) {
      try {
        const list = await this.#opts.client.get('/api/v1/namespaces', signal);
        if (list.status !== 200) throw new InjectorError(InjectorErrorCodes.KUBE_API, `listing namespaces: HTTP ${list.status}`);
        const body = JSON.parse(list.body) as { items?: unknown[]; metadata?: { resourceVersion?: string } };
        this.#labels.clear();
        for (const ns of body.items ?? []) this.#record(ns);
        this.#synced = true;
        backoff = this.#opts.backoffMs ?? 1_000;
        let rv = body.metadata?.resourceVersion ?? '';
        let gone = false;
        while (!signal.aborted && !gone) {
          const q = `/api/v1/namespaces?watch=true&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=${encodeURIComponent(rv)}`;
          const status = await this.#opts.client.stream(
            q,
            (line) => {
              const ev = JSON.parse(line) as { type?: string; object?: JsonObject };
              const meta = obj(ev.object?.metadata);
              if (ev.type === 'ERROR') {
                gone = true;
                return;
              }
              if (typeof meta?.resourceVersion === 'string') rv = meta.resourceVersion;
              if (ev.type === 'ADDED' || ev.type === 'MODIFIED') this.#record(ev.object);
              else if (ev.type === 'DELETED' && typeof meta?.name === 'string') this.#labels.delete(meta.name);
            },
            signal,
          );
          if (status !== 200) gone = true;
        }
      } catch (err) {
        if (signal.aborted) return;
        this.#opts.onError?.('namespace watch failed; retrying', err);
        await new Promise((r) => setTimeout(r, backoff).unref());
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  async resolve(namespace: string, signal: AbortSignal): Promise<TenantLookup> {
    const known = this.#labels.get(namespace);
    if (known) return this.#lookup(namespace, known);
    const res = await this.#opts.client.get(`/api/v1/namespaces/${encodeURIComponent(namespace)}`, signal);
    if (res.status === 404) return { tenant: namespace, source: 'namespace' };
    if (res.status !== 200) throw new InjectorError(InjectorErrorCodes.KUBE_API, `getting namespace ${namespace}: HTTP ${res.status}`);
    const ns = JSON.parse(res.body) as unknown;
    this.#record(ns);
    return this.#lookup(namespace, this.#labels.get(namespace) ?? { tenant: undefined, allowOptOut: false });
  }

  #lookup(namespace: string, { tenant: label, allowOptOut }: NamespaceLabels): TenantLookup {
    if (label === undefined || label === '') return { tenant: namespace, source: 'namespace', allowOptOut };
    if (!isTenantName(label)) {
      return { tenant: namespace, source: 'fallback', allowOptOut, warning: `tenant-dns: namespace label ${this.#opts.label} is not a valid tenant name; using ${namespace}` };
    }
    return { tenant: label, source: 'label', allowOptOut };
  }

  close(): void {
    this.#stop.abort();
  }
}
