/**
 * A stand-in kube-apiserver for tests: HTTPS with a throwaway CA, bearer
 * tokens mapped to user names, and the REST protocol the official clients
 * speak (discovery, list and watch with resourceVersion and bookmarks, 410
 * Gone after `compact()`, optimistic concurrency, the status subresource,
 * CRDs that register their resources, Table output for kubectl). It writes
 * kubeconfig files that both @kubernetes/client-node and kubectl load.
 * What a real cluster adds that this cannot show: test/kube-api/README.md.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { parseAllDocuments, stringify as toYaml } from 'yaml';
import { obj, type JsonObject } from '../../injector/json.ts';
import { makeTestPki } from './k8s-certs.ts';
import { handleRest, sendError, type AdmissionHook, type RestContext } from './kube-api/http.ts';
import type { ResourceType } from './kube-api/resources.ts';
import { ApiError, badRequest, reasonFor, unauthorized } from './kube-api/status.ts';
import { Store, storageKey, type StoreWatcher } from './kube-api/store.ts';
import type { ActiveWatch } from './kube-api/watch.ts';

export type { AdmissionHook, AdmissionRequest, AdmissionVerdict } from './kube-api/http.ts';
export { NAMESPACE_CONTROLLER } from './kube-api/http.ts';
export { admissionReview, webhookAdmission, type WebhookOptions } from './kube-api/webhook.ts';

/** Options of {@link startKubeApi}. */
export interface KubeApiOptions {
  /** The user `kubeconfigPath` and `token` act as (default `admin`). */
  readonly user?: string;
  /** How often watches that asked for bookmarks get one, in ms; 0 = only through `bookmark()` (default 0). */
  readonly bookmarkIntervalMs?: number;
  /** Namespaces to create besides default, kube-system, kube-public and kube-node-lease. */
  readonly namespaces?: readonly string[];
  /**
   * How many changes the watch history keeps (default 10000); when it overflows the oldest are compacted away,
   * as a real server's watch cache window moves, so a watch from before them gets 410 Gone.
   */
  readonly historyLimit?: number;
}

/** One request the server answered, for assertions on what a client sent. */
export interface RequestRecord {
  readonly method: string;
  /** Path and query string as sent. */
  readonly url: string;
  /** The authenticated user; '' when authentication failed. */
  readonly user: string;
  /** The HTTP status answered (200 for a watch that was opened). */
  readonly code: number;
  /** The request's Content-Type ('' when none), e.g. which patch type a client chose. */
  readonly contentType: string;
}

/** A rule of {@link KubeApi.failNext}: which requests to fail and how. */
export interface FailureRule {
  /** HTTP method to match (any when absent). */
  readonly method?: string;
  /** Substring or pattern the request path (with query) must match (any when absent). */
  readonly path?: string | RegExp;
  /** HTTP status to answer (default 500); the Status reason follows the code. */
  readonly code?: number;
  /** Sends `Retry-After` and details.retryAfterSeconds, as kube-apiserver does with 429 from API Priority and Fairness. */
  readonly retryAfterSeconds?: number;
}

/** A running stand-in API server. */
export interface KubeApi {
  /** `https://127.0.0.1:PORT`. */
  readonly url: string;
  /** The test CA certificate (PEM) the server's certificate chains to. */
  readonly ca: Buffer;
  /** The file holding `ca`. */
  readonly caFile: string;
  /** A kubeconfig for the default user (options.user, else `admin`). */
  readonly kubeconfigPath: string;
  /** The default user's bearer token. */
  readonly token: string;
  /** Requests answered so far (oldest first; the last 10000). */
  readonly requests: readonly RequestRecord[];
  /** Emits 'request' (RequestRecord) after each answer (for a watch: once its stream opened) and 'watch' (path and query) when a watch stream has opened and registered. */
  readonly events: EventEmitter;
  /** The bearer token of `username` (made on first use). */
  tokenFor(username: string): string;
  /** Writes (once) and returns the path of a kubeconfig acting as `username`. */
  kubeconfigFor(username: string): string;
  /** A stored object without HTTP: `resource` is a plural, `plural.group`, kind or short name. Undefined when absent. */
  get(resource: string, name: string, namespace?: string): JsonObject | undefined;
  /** Stored objects of a resource (all namespaces when `namespace` is absent), sorted by namespace and name. */
  list(resource: string, namespace?: string): JsonObject[];
  /**
   * Creates or replaces an object by its apiVersion and kind (a namespaced
   * object without a namespace goes to `default`) without HTTP,
   * authentication, admission or conflict checks; validation still applies,
   * with unknown fields an error (fieldValidation Strict), and `status` is
   * written too, also for resources with the status subresource. Watches see
   * the change. Returns the stored object.
   */
  put(object: JsonObject): JsonObject;
  /** Deletes an object without HTTP; true when it existed. */
  remove(resource: string, name: string, namespace?: string): boolean;
  /**
   * Puts every document of a YAML stream (e.g. deploy/crds/*.yaml read as text), in order, as {@link put}
   * does; empty documents are skipped. Returns the stored objects.
   */
  putYaml(text: string): JsonObject[];
  /**
   * Resolves with the first result of `check` that is neither undefined nor false, given the stored objects
   * of `resource` (all namespaces): checked now and after every change to that resource, so a test waits on
   * the write it expects (a controller's ConfigMap, a status condition) instead of a time window. Rejects
   * after `timeoutMs` (default 10000) with the last objects seen.
   */
  waitFor<T>(resource: string, check: (objects: JsonObject[]) => T | undefined | false, timeoutMs?: number): Promise<T>;
  /** The current resourceVersion (the global counter). */
  resourceVersion(): string;
  /** Drops the change history: a watch from an older resourceVersion gets an ERROR event with a 410 Status. */
  compact(): void;
  /** Ends every open watch (server restart); `abrupt` destroys the connections instead of ending the streams. Returns how many. */
  dropWatches(abrupt?: boolean): number;
  /** Sends a BOOKMARK now to every open watch that asked for bookmarks; returns how many got one. */
  bookmark(): number;
  /** Paths (without query) of the watches open now. */
  openWatches(): string[];
  /** Answers the next `count` requests matching `rule` with an error Status instead of serving them. */
  failNext(count: number, rule?: FailureRule): void;
  /** Installs (or removes, with undefined) a hook every write passes before it is committed. */
  setAdmission(hook: AdmissionHook | undefined): void;
  /** Ends every watch and connection, stops the server and removes the PKI files. */
  close(): Promise<void>;
}

interface PendingFailure {
  remaining: number;
  readonly rule: FailureRule;
}

function matchesRule(rule: FailureRule, method: string, url: string): boolean {
  if (rule.method && rule.method.toUpperCase() !== method) return false;
  if (rule.path === undefined) return true;
  return typeof rule.path === 'string' ? url.includes(rule.path) : rule.path.test(url);
}

/** Starts a stand-in API server on 127.0.0.1 (a free port); close it in t.after. */
export async function startKubeApi(opts: KubeApiOptions = {}): Promise<KubeApi> {
  const pki = makeTestPki(['localhost']);
  const store = new Store(opts.historyLimit);
  for (const ns of opts.namespaces ?? []) store.create(store.type('', 'v1', 'namespaces')!, undefined, { metadata: { name: ns } });
  const tokens = new Map<string, string>();
  const users = new Map<string, string>();
  const kubeconfigs = new Map<string, string>();
  const watches = new Set<ActiveWatch>();
  const requests: RequestRecord[] = [];
  const events = new EventEmitter();
  const failures: PendingFailure[] = [];
  const sockets = new Set<Socket>();
  const ctx: RestContext = { store, watches, bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 0, serverAddress: '', onWatch: (u) => events.emit('watch', u) };

  const tokenFor = (username: string): string => {
    let token = tokens.get(username);
    if (!token) {
      token = randomBytes(24).toString('base64url');
      tokens.set(username, token);
      users.set(token, username);
    }
    return token;
  };

  const server: Server = createServer({ cert: readFileSync(pki.certFile), key: readFileSync(pki.keyFile) }, (req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const auth = req.headers.authorization ?? '';
    const user = auth.startsWith('Bearer ') ? users.get(auth.slice(7).trim()) ?? '' : '';
    const record = (code: number) => {
      const r: RequestRecord = { method, url, user, code, contentType: req.headers['content-type'] ?? '' };
      requests.push(r);
      if (requests.length > 10000) requests.shift();
      events.emit('request', r);
    };
    const fail = (e: unknown) => {
      const err = e instanceof ApiError ? e : new ApiError(500, 'InternalError', `Internal error occurred: ${(e as Error).message}`);
      if (res.headersSent) res.destroy();
      else sendError(res, err);
      record(err.code);
    };
    if (!user) return fail(unauthorized());
    const failure = failures.find((f) => f.remaining > 0 && matchesRule(f.rule, method, url));
    if (failure) {
      failure.remaining--;
      const code = failure.rule.code ?? 500;
      const retry = failure.rule.retryAfterSeconds;
      return fail(new ApiError(code, reasonFor(code), `injected failure (${code}) for ${method} ${url}`, retry === undefined ? undefined : { retryAfterSeconds: retry }));
    }
    handleRest(ctx, req, res, user).then(() => record(res.statusCode), fail);
  });
  server.maxConnections = 256;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `https://127.0.0.1:${port}`;
  ctx.serverAddress = `127.0.0.1:${port}`;

  const kubeconfigFor = (username: string): string => {
    const existing = kubeconfigs.get(username);
    if (existing) return existing;
    const file = join(pki.dir, `kubeconfig-${kubeconfigs.size}-${username.replace(/[^\w.-]/g, '_')}.yaml`);
    const context = `${username}@stand-in`;
    writeFileSync(file, toYaml({
      apiVersion: 'v1', kind: 'Config',
      clusters: [{ name: 'stand-in', cluster: { server: url, 'certificate-authority-data': pki.ca.toString('base64') } }],
      users: [{ name: username, user: { token: tokenFor(username) } }],
      contexts: [{ name: context, context: { cluster: 'stand-in', user: username, namespace: 'default' } }],
      'current-context': context,
    }), { mode: 0o600 });
    kubeconfigs.set(username, file);
    return file;
  };

  const resolve = (resource: string): ResourceType => {
    const rt = store.resolve(resource);
    if (!rt) throw badRequest(`the server doesn't have a resource type "${resource}"`);
    return rt;
  };
  const user = opts.user ?? 'admin';

  const api: KubeApi = {
    url,
    ca: pki.ca,
    caFile: pki.caFile,
    kubeconfigPath: kubeconfigFor(user),
    token: tokenFor(user),
    requests,
    events,
    tokenFor,
    kubeconfigFor,
    get: (resource, name, namespace) => store.get(resolve(resource), namespace, name),
    list: (resource, namespace) => store.list(resolve(resource), namespace),
    put: (object) => {
      const rt = store.typeForKind(String(object.apiVersion), String(object.kind));
      if (!rt) throw badRequest(`no resource serves ${String(object.apiVersion)} ${String(object.kind)}`);
      const m = obj(object.metadata) ?? {};
      const namespace = rt.namespaced ? String(m.namespace ?? 'default') : undefined;
      const current = store.get(rt, namespace, String(m.name));
      const strict = { fieldValidation: 'Strict' } as const;
      const created = current ? undefined : store.create(rt, namespace, object, strict);
      const main = created ?? store.update(rt, namespace, String(m.name), { ...object, metadata: { ...m, resourceVersion: obj(current!.metadata)?.resourceVersion } }, 'main', strict);
      if (!rt.statusSubresource || object.status === undefined) return main;
      return store.update(rt, namespace, String(m.name), { ...main, status: object.status }, 'status', strict);
    },
    remove: (resource, name, namespace) => {
      const rt = resolve(resource);
      if (!store.get(rt, namespace, name)) return false;
      store.delete(rt, namespace, name);
      return true;
    },
    putYaml: (text) => parseAllDocuments(text).map((d) => d.toJS() as unknown).filter((d) => obj(d)).map((d) => api.put(d as JsonObject)),
    waitFor: <T>(resource: string, check: (objects: JsonObject[]) => T | undefined | false, timeoutMs = 10_000) => {
      const rt = resolve(resource);
      return new Promise<T>((done, fail) => {
        const evaluate = (): boolean => {
          const result = check(store.list(rt));
          if (result === undefined || result === false) return false;
          finish();
          done(result);
          return true;
        };
        const watcher: StoreWatcher = {
          storage: storageKey(rt),
          onChange: () => {
            try {
              evaluate();
            } catch (e) {
              finish();
              fail(e);
            }
          },
          onGone: () => {},
        };
        const timer = setTimeout(() => {
          finish();
          fail(new Error(`waitFor ${resource}: not satisfied within ${timeoutMs} ms; objects: ${JSON.stringify(store.list(rt))}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          store.watchers.delete(watcher);
        };
        try {
          if (evaluate()) return;
        } catch (e) {
          finish();
          fail(e);
          return;
        }
        store.watchers.add(watcher);
      });
    },
    resourceVersion: () => String(store.rv),
    compact: () => store.compact(),
    dropWatches: (abrupt = false) => {
      const all = [...watches];
      for (const w of all) w.end(abrupt);
      return all.length;
    },
    bookmark: () => [...watches].filter((w) => w.bookmark()).length,
    openWatches: () => [...watches].map((w) => w.path),
    failNext: (count, rule = {}) => {
      failures.push({ remaining: count, rule });
    },
    setAdmission: (hook) => {
      ctx.admission = hook;
    },
    close: async () => {
      for (const w of [...watches]) w.end(true);
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
      pki.cleanup();
    },
  };
  return api;
}
