/**
 * `tenant-dns render -f FILE... [--config FILE]`: the controller's rendering
 * (render.ts, the same `renderAll`) applied offline to ClusterDNSPolicy,
 * DNSPolicy and Namespace objects from YAML files, and the Ingress, Service,
 * HTTPRoute and Gateway objects split horizon reads. Prints the ConfigMaps the
 * controller would write (YAML documents separated by `---`), or, when any
 * object would not be accepted, its problems as `FILE:LINE: field: message`
 * on stderr, nothing on stdout, exit 1.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { LineCounter, parseAllDocuments, stringify, type Document } from 'yaml';
import { kindField } from './gateway-sources.ts';
import { lineOf } from '../sidecar/config/load.ts';
import { loadInjectorConfig } from './config.ts';
import { CRD_API_VERSION } from './crd-schema.ts';
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import { processIo, type InjectIo } from './inject-cli.ts';
import { arr, obj, type JsonObject } from './json.ts';
import { InjectValues, Keys } from './names.ts';
import { objectKey, renderAll, settingsFromConfig, type RenderResult } from './render.ts';

/** Where an object was read: file, the document it is in, and its path within the document (inside a List). */
interface Source {
  readonly file: string;
  readonly doc: Document;
  readonly lc: LineCounter;
  readonly at: readonly (string | number)[];
}

/** The objects read from files, by kind, with where each came from. */
export interface RenderFiles {
  readonly namespaces: JsonObject[];
  readonly clusterPolicies: JsonObject[];
  readonly policies: JsonObject[];
  /** The objects split horizon reads (Ingresses, Services, HTTPRoutes, Gateways). */
  readonly published: { ingresses: JsonObject[]; services: JsonObject[]; httpRoutes: JsonObject[]; gateways: JsonObject[] };
  /** Where each policy object came from, by {@link objectKey}. */
  readonly sources: Map<string, Source>;
  /** Lines for stderr: objects of other kinds that were left out. */
  readonly notes: string[];
}

/** A field name of render's messages (`spec.rules[1].names[0]`) as path segments; `(document)` is the root. */
export function fieldSegments(field: string): (string | number)[] {
  if (field === '(document)') return [];
  return [...field.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]!));
}

/**
 * Reads the objects of one YAML text (`file` in messages): Namespaces,
 * ClusterDNSPolicies and DNSPolicies, and Ingresses, Services, HTTPRoutes
 * and Gateways for split horizon, in documents or Lists. A DNSPolicy
 * without a namespace gets `namespace`.
 *
 * @throws InjectorError BAD_REQUEST for YAML that does not parse, naming file and line, or an object read twice.
 */
export function readRenderObjects(text: string, file: string, namespace: string, into: RenderFiles): void {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false });
  if (!Array.isArray(docs)) throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, `${file}: not YAML documents`);
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error) throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, `${file}:${lc.linePos(error.pos[0]).line}: (document): YAML syntax: ${error.message.split('\n')[0]}`, { cause: error });
    const value = obj(doc.toJS({ maxAliasCount: 100 }));
    if (!value) continue;
    const items = typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items) ? arr(value.items).map((item, i) => [item, ['items', i]] as const) : [[value, []] as const];
    for (const [item, at] of items) {
      const o = obj(item);
      if (!o) continue;
      const where = `${file}:${lineOf(doc, lc, at)}`;
      if (o.kind === 'Namespace' && (o.apiVersion ?? 'v1') === 'v1') into.namespaces.push(o);
      else if ((o.kind === 'ClusterDNSPolicy' || o.kind === 'DNSPolicy') && o.apiVersion === CRD_API_VERSION) {
        const meta = obj(o.metadata) ?? {};
        const object = o.kind === 'DNSPolicy' && meta.namespace === undefined ? { ...o, metadata: { ...meta, namespace } } : o;
        const key = objectKey(object);
        const seen = into.sources.get(key);
        if (seen) throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, `${where}: ${key.replace('//', '/')} is also defined at ${seen.file}:${lineOf(seen.doc, seen.lc, seen.at)}`);
        into.sources.set(key, { file, doc, lc, at });
        (o.kind === 'DNSPolicy' ? into.policies : into.clusterPolicies).push(object);
      } else {
        const field = kindField(o.apiVersion ?? 'v1', o.kind);
        if (field === 'ingresses' || field === 'services' || field === 'httpRoutes' || field === 'gateways') into.published[field].push(o);
        else into.notes.push(`${where}: left out: ${String(o.apiVersion)} ${String(o.kind)} is not a Namespace, ClusterDNSPolicy or DNSPolicy (${CRD_API_VERSION}), nor an Ingress, Service, HTTPRoute or Gateway`);
      }
    }
  }
}

/** The problems of a render as `FILE:LINE: field: message` lines, one per problem of every object not accepted. */
export function problemLines(result: RenderResult, sources: ReadonlyMap<string, Source>): string[] {
  const out: string[] = [];
  for (const s of result.statuses) {
    if (s.accepted) continue;
    const src = sources.get(s.key);
    for (const p of s.problems) {
      const where = src ? `${src.file}:${lineOf(src.doc, src.lc, [...src.at, ...fieldSegments(p.field)])}` : s.key;
      out.push(`${where}: ${p.field}: ${p.message}`);
    }
  }
  return out;
}

/** Options of the `render` command. */
export interface RenderCommandOptions {
  readonly filename: readonly string[];
  readonly config?: string;
  readonly namespace?: string;
  readonly output?: string;
}

/**
 * Runs `tenant-dns render`; returns the exit code: 0 with the ConfigMaps
 * printed, or 1 after printing every problem (nothing printed to stdout).
 */
export function runRenderCommand(opts: RenderCommandOptions, io: InjectIo = processIo): number {
  try {
    const settings = settingsFromConfig(loadInjectorConfig(opts.config));
    const files: RenderFiles = { namespaces: [], clusterPolicies: [], policies: [], published: { ingresses: [], services: [], httpRoutes: [], gateways: [] }, sources: new Map(), notes: [] };
    for (const file of opts.filename) {
      let text: string;
      try {
        text = file === '-' ? io.readStdin() : readFileSync(file, 'utf8');
      } catch (err) {
        throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, `reading ${file}`, { cause: err });
      }
      readRenderObjects(text, file === '-' ? '<stdin>' : file, opts.namespace ?? 'default', files);
    }
    for (const n of files.notes) io.stderr(`tenant-dns render: ${n}\n`);
    const result = renderAll(files, settings);
    const problems = problemLines(result, files.sources);
    if (problems.length > 0) {
      for (const p of problems) io.stderr(`${p}\n`);
      const refused = result.statuses.filter((s) => !s.accepted).length;
      io.stderr(`tenant-dns render: ${refused} object${refused === 1 ? '' : 's'} would not be accepted; nothing written\n`);
      return 1;
    }
    for (const s of result.splitHorizonSkipped) io.stderr(`tenant-dns render: namespace ${s.namespace}: split horizon names not rendered (the platform layer would not validate with them): ${s.reason}\n`);
    for (const s of result.statuses) if (s.namespaces === 0) io.stderr(`tenant-dns render: ${s.kind} ${s.namespace ? `${s.namespace}/` : ''}${s.name}: ${s.message}\n`);
    if (result.configMaps.length === 0) io.stderr(`tenant-dns render: no injected namespace among the Namespaces given (label ${Keys.namespaceInject}=${InjectValues.namespaceEnabled}, not excluded): nothing to render\n`);
    const output = result.configMaps.map((c) => stringify(c, { lineWidth: 0 })).join('---\n');
    if (opts.output) writeFileSync(opts.output, output);
    else io.stdout(output);
    return 0;
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    io.stderr(`tenant-dns render: ${err instanceof Error ? err.message : String(err)}${cause}\n`);
    return 1;
  }
}
