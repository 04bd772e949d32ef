/**
 * `--objects FILE...`: Kubernetes objects from static YAML (multi-document,
 * Lists too), sorted into the kinds the gateway reads. Objects of other kinds
 * are left out.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { arr, obj, type JsonObject } from '../injector/json.ts';
import { ErrorCodes, SidecarError } from '../sidecar/errors.ts';
import { kindField, type SourceObjects } from '../injector/gateway-sources.ts';

/** A mutable {@link SourceObjects}. */
type Collected = { -readonly [K in keyof SourceObjects]: JsonObject[] };

/** An empty set of objects. */
export function noObjects(): SourceObjects {
  return { namespaces: [], ingresses: [], services: [], httpRoutes: [], gateways: [], clusterPolicies: [] };
}

/**
 * Reads the objects of YAML texts (`files`: name → text).
 *
 * @throws SidecarError CONFIG_INVALID naming the file and line of YAML that does not parse.
 */
export function parseObjects(files: ReadonlyMap<string, string>): SourceObjects {
  const out = noObjects() as Collected;
  for (const [file, text] of files) {
    for (const doc of parseAllDocuments(text, { prettyErrors: false }) as ReturnType<typeof parseAllDocuments> & unknown[]) {
      const error = doc.errors[0];
      if (error) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `${file}: YAML syntax at offset ${error.pos[0]}: ${error.message.split('\n')[0]}`, { cause: error });
      const value = obj(doc.toJS({ maxAliasCount: 100 }));
      if (!value) continue;
      const items = typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items) ? arr(value.items) : [value];
      for (const item of items) {
        const o = obj(item);
        const field = o && kindField(o.apiVersion ?? 'v1', o.kind);
        if (o && field) out[field].push(o);
      }
    }
  }
  return out;
}

/**
 * Reads `--objects` files.
 *
 * @throws SidecarError CONFIG_READ for a file that cannot be read, CONFIG_INVALID for YAML that does not parse.
 */
export function readObjectFiles(paths: readonly string[]): SourceObjects {
  const texts = new Map<string, string>();
  for (const p of paths) {
    try {
      texts.set(p, readFileSync(p, 'utf8'));
    } catch (err) {
      throw new SidecarError(ErrorCodes.CONFIG_READ, `--objects: reading ${p}`, { cause: err });
    }
  }
  return parseObjects(texts);
}
