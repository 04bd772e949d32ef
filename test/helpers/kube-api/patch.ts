/**
 * PATCH bodies of the stand-in API server: JSON merge patch (RFC 7386),
 * JSON patch (RFC 6902, through fast-json-patch), strategic merge patch
 * handled as a merge patch with its `$` directives dropped (enough for
 * objects without merge-keyed lists, such as ConfigMaps and Leases). Apply
 * patches are parsed here and applied by ssa.ts.
 */
import jsonpatch from 'fast-json-patch';
import { parse as parseYaml } from 'yaml';
import { obj, type JsonObject } from '../../../injector/json.ts';
import { ApiError, badRequest, unsupportedMediaType } from './status.ts';

/** The patch types the server takes, by Content-Type. */
export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';

/** The patch type of a request's Content-Type; throws 415 for anything else. */
export function patchTypeOf(contentType: string | undefined): PatchType {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/merge-patch+json') return 'merge';
  if (type === 'application/json-patch+json') return 'json';
  if (type === 'application/strategic-merge-patch+json') return 'strategic';
  if (type === 'application/apply-patch+yaml' || type === 'application/apply-patch+cbor') return 'apply';
  throw unsupportedMediaType(type);
}

/** RFC 7386: objects merge recursively, null removes a member, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  const p = obj(patch);
  if (!p) return structuredClone(patch);
  const result: JsonObject = { ...(obj(target) ?? {}) };
  for (const [k, v] of Object.entries(p)) {
    if (v === null) delete result[k];
    else result[k] = mergePatch(result[k], v);
  }
  return result;
}

function dropDirectives(patch: unknown): unknown {
  if (Array.isArray(patch)) return patch.map(dropDirectives);
  const p = obj(patch);
  if (!p) return patch;
  if (p.$patch === 'delete') return null;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(p)) {
    if (k.startsWith('$')) continue;
    out[k] = dropDirectives(v);
  }
  return out;
}

/** Parses a PATCH body: JSON for every type, YAML also for apply. Throws 400 on bad input. */
export function parsePatchBody(type: PatchType, body: string): unknown {
  try {
    return type === 'apply' ? parseYaml(body) : JSON.parse(body);
  } catch (e) {
    throw badRequest(`error decoding patch: ${(e as Error).message}`);
  }
}

/** Applies a parsed merge, JSON or strategic patch to a copy of `current`; a JSON patch that fails answers 422 as the real server does. */
export function applyPatch(type: Exclude<PatchType, 'apply'>, current: JsonObject, patch: unknown): JsonObject {
  let result: unknown;
  if (type === 'json') {
    if (!Array.isArray(patch)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
    try {
      result = jsonpatch.applyPatch(structuredClone(current), patch as jsonpatch.Operation[], true, false).newDocument;
    } catch (e) {
      throw new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${(e as Error).message}`);
    }
  } else if (type === 'merge') result = mergePatch(current, patch);
  else result = mergePatch(current, dropDirectives(patch));
  const o = obj(result);
  if (!o) throw badRequest('the patch did not produce a JSON object');
  return o;
}
