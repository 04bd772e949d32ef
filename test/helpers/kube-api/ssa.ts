/**
 * Server-side apply, reduced to what a controller notices: each field
 * manager owns the leaf fields of the configuration it last applied (objects
 * recurse; scalars and lists are one leaf each, so lists are atomic). A new
 * apply sets its fields, removes the fields it owned before and no longer
 * applies (unless another manager also owns them), and answers 409 Conflict
 * when it would change a field another apply manager owns, unless `force`,
 * which takes the field over. Writes that are not applies are not tracked
 * (a real server records them as "Update" managers that can conflict too).
 */
import { obj, jsonEqual, type JsonObject } from '../../../injector/json.ts';
import { ApiError } from './status.ts';

type Path = readonly string[];

const SERVER_SET = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'generateName', 'selfLink', 'deletionTimestamp']);

/** Leaf field paths of an applied configuration (apiVersion, kind and server-set metadata excluded). */
export function leafPaths(applied: JsonObject): Path[] {
  const out: Path[] = [];
  const walk = (v: unknown, path: string[]) => {
    const o = obj(v);
    if (!o || Object.keys(o).length === 0) {
      out.push(path);
      return;
    }
    for (const [k, child] of Object.entries(o)) walk(child, [...path, k]);
  };
  for (const [k, v] of Object.entries(applied)) {
    if (k === 'apiVersion' || k === 'kind') continue;
    if (k === 'metadata') {
      for (const [mk, mv] of Object.entries(obj(v) ?? {})) if (!SERVER_SET.has(mk)) walk(mv, ['metadata', mk]);
    } else walk(v, [k]);
  }
  return out;
}

function at(o: unknown, path: Path): unknown {
  let cur = o;
  for (const p of path) cur = obj(cur)?.[p];
  return cur;
}

function set(o: JsonObject, path: Path, value: unknown): void {
  let cur = o;
  for (const p of path.slice(0, -1)) {
    if (!obj(cur[p])) cur[p] = {};
    cur = cur[p] as JsonObject;
  }
  cur[path[path.length - 1]] = structuredClone(value);
}

function remove(o: JsonObject, path: Path): void {
  const parent = obj(at(o, path.slice(0, -1)));
  if (parent) delete parent[path[path.length - 1]];
}

const key = (p: Path) => JSON.stringify(p);
const show = (p: Path) => `.${p.join('.')}`;

/** Field ownership of every object, by uid and manager. */
export class FieldOwnership {
  private readonly owners = new Map<string, Map<string, Set<string>>>();

  /**
   * The object after `manager` applies `applied` to `current` (a copy; nothing
   * is recorded until {@link record}). Throws a 409 Conflict naming the other
   * managers' fields it would change, unless `force`.
   */
  apply(uid: string, manager: string, current: JsonObject, applied: JsonObject, force: boolean, apiVersion: string): JsonObject {
    const mine = this.owners.get(uid)?.get(manager) ?? new Set<string>();
    const paths = leafPaths(applied);
    const conflicts: { manager: string; path: Path }[] = [];
    for (const [other, owned] of this.owners.get(uid) ?? []) {
      if (other === manager) continue;
      for (const p of paths) if (owned.has(key(p)) && !jsonEqual(at(current, p), at(applied, p))) conflicts.push({ manager: other, path: p });
    }
    if (conflicts.length > 0 && !force) {
      const causes = conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${apiVersion}`, field: show(c.path) }));
      const list = causes.map((c) => `${c.message}: ${c.field}`);
      throw new ApiError(409, 'Conflict', `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? 's' : ''}: ${list.join('\n')}`, { causes });
    }
    const result = structuredClone(current);
    const now = new Set(paths.map(key));
    for (const k of mine) {
      if (now.has(k)) continue;
      const sharedWith = [...(this.owners.get(uid) ?? [])].some(([m, owned]) => m !== manager && owned.has(k));
      if (!sharedWith) remove(result, JSON.parse(k) as string[]);
    }
    for (const p of paths) set(result, p, at(applied, p));
    return result;
  }

  /** Records that `manager` now owns the leaves of `applied` on object `uid`; forced fields leave their old owners. */
  record(uid: string, manager: string, applied: JsonObject): void {
    const paths = new Set(leafPaths(applied).map(key));
    const byManager = this.owners.get(uid) ?? new Map<string, Set<string>>();
    for (const [m, owned] of byManager) if (m !== manager) for (const p of paths) owned.delete(p);
    byManager.set(manager, paths);
    this.owners.set(uid, byManager);
  }

  /** Forgets a deleted object's owners. */
  forget(uid: string): void {
    this.owners.delete(uid);
  }
}
