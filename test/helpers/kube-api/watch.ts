/**
 * Watch responses of the stand-in API server: HTTP 200, chunked,
 * newline-delimited JSON WatchEvents. From `resourceVersion` N the watch
 * replays the history after N (410 Gone as an ERROR event when N was
 * compacted, then the stream ends, as kube-apiserver does); without one (or
 * "0", or with `sendInitialEvents=true`) it starts with ADDED for every
 * matching object. Selector transitions turn into ADDED/DELETED the way the
 * watch cache reports them. BOOKMARK events go only to watches that asked
 * (`allowWatchBookmarks`).
 */
import type { ServerResponse } from 'node:http';
import { obj, type JsonObject } from '../../../injector/json.ts';
import { apiVersionOf, type ResourceType } from './resources.ts';
import { ApiError } from './status.ts';
import { storageKey, type Change, type Store, type StoreWatcher } from './store.ts';
import type { ObjectMatcher } from './selectors.ts';

/** What a watch request asked for. */
export interface WatchRequest {
  readonly rt: ResourceType;
  readonly namespace?: string;
  readonly match: ObjectMatcher;
  readonly resourceVersion: string;
  readonly bookmarks: boolean;
  readonly sendInitialEvents: boolean;
  /** Ends the stream after this many seconds; 0 = never. */
  readonly timeoutSeconds: number;
  /** Turns an object into what an event carries (a one-row Table for `kubectl get -w`); the object itself when absent. */
  readonly render?: (o: JsonObject) => JsonObject;
}

/** An open watch the server can end or send a bookmark to. */
export interface ActiveWatch {
  readonly rt: ResourceType;
  readonly path: string;
  readonly bookmarks: boolean;
  /** Sends a BOOKMARK with the current resourceVersion (when the watch asked for bookmarks); true when sent. */
  bookmark(): boolean;
  /** Ends the stream: gracefully (chunked end) or by destroying the connection. */
  end(abrupt?: boolean): void;
}

/** Serves a watch on `res`; registers it in `active` until it ends. */
export function serveWatch(store: Store, req: WatchRequest, path: string, res: ServerResponse, active: Set<ActiveWatch>, bookmarkIntervalMs: number, onOpen: () => void): void {
  const { rt, match } = req;
  const render = req.render ?? ((o: JsonObject) => o);
  const inScope = (o: JsonObject) => (!req.namespace || !rt.namespaced || obj(o.metadata)?.namespace === req.namespace) && match(o);
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private', 'transfer-encoding': 'chunked' });
  res.flushHeaders();
  const send = (type: string, object: JsonObject) => {
    if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify({ type, object })}\n`);
  };
  let timer: NodeJS.Timeout | undefined;
  let interval: NodeJS.Timeout | undefined;
  const watcher: StoreWatcher = {
    storage: storageKey(rt),
    onChange: (c: Change) => {
      const now = c.type !== 'DELETED' && inScope(c.object);
      const before = c.previous !== undefined && inScope(c.previous);
      let type: string | undefined;
      if (c.type === 'DELETED') type = inScope(c.object) ? 'DELETED' : undefined;
      else if (c.type === 'ADDED') type = now ? 'ADDED' : undefined;
      else if (now) type = before ? 'MODIFIED' : 'ADDED';
      else if (before) type = 'DELETED';
      if (type) send(type, render(store.present(rt, c.object)));
    },
    onGone: () => watch.end(),
  };
  const bookmarkObject = (extra: JsonObject = {}) => ({ kind: rt.kind, apiVersion: apiVersionOf(rt), metadata: { resourceVersion: String(store.rv), ...extra } });
  const watch: ActiveWatch = {
    rt,
    path,
    bookmarks: req.bookmarks,
    bookmark: () => {
      if (!req.bookmarks || res.writableEnded) return false;
      send('BOOKMARK', bookmarkObject());
      return true;
    },
    end: (abrupt = false) => {
      cleanup();
      if (abrupt) res.destroy();
      else if (!res.writableEnded) res.end();
    },
  };
  const cleanup = () => {
    store.watchers.delete(watcher);
    active.delete(watch);
    clearTimeout(timer);
    clearInterval(interval);
  };
  res.on('close', cleanup);
  const rv = req.resourceVersion;
  if (!rv || rv === '0' || req.sendInitialEvents) {
    for (const o of store.list(rt, req.namespace)) if (inScope(o)) send('ADDED', render(o));
    if (req.sendInitialEvents && req.bookmarks) send('BOOKMARK', bookmarkObject({ annotations: { 'k8s.io/initial-events-end': 'true' } }));
  } else {
    let changes: Change[];
    try {
      changes = store.changesSince(storageKey(rt), Number(rv));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      send('ERROR', e.status);
      res.end();
      return;
    }
    for (const c of changes) watcher.onChange(c);
  }
  store.watchers.add(watcher);
  active.add(watch);
  onOpen();
  if (req.timeoutSeconds > 0) timer = setTimeout(() => watch.end(), req.timeoutSeconds * 1000);
  if (req.bookmarks && bookmarkIntervalMs > 0) interval = setInterval(() => watch.bookmark(), bookmarkIntervalMs);
}
