/**
 * `tenant-dns inject -f FILE|-`: the webhook's patch logic applied offline to
 * manifests (like `istioctl kube-inject`). Pods and the pod templates of
 * Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers,
 * Jobs and CronJobs are injected, Lists are walked, multi-document YAML is
 * kept as documents; everything else passes through unchanged. Skips and
 * warnings go to stderr, the YAML to stdout. A workload the webhook would
 * deny (it collides with the injection, or opts out where that is not
 * allowed) is an error: every denial on stderr, no YAML, exit 1.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';
import type { InjectorConfig } from './config-schema.ts';
import { loadInjectorConfig } from './config.ts';
import { SkipReasons } from './decide.ts';
import { InjectorError, InjectorErrorCodes } from './errors.ts';
import { obj, type JsonObject } from './json.ts';
import { mutatePod } from './mutate.ts';
import { isTenantName } from './namespaces.ts';
import { sidecarArgs } from './sidecar-spec.ts';
import { buildConfig, optionKey } from '../sidecar/config/flags.ts';
import { upstreamsFromResolvConf } from '../sidecar/config/resolv.ts';
import { SIDECAR_FLAGS } from '../sidecar/config/schema.ts';
import { describeError } from '../sidecar/errors.ts';
import { parseHostPort } from '../sidecar/listener/address.ts';
import { checkLoops } from '../sidecar/upstream/from-config.ts';

/** Where the pod template sits, by kind. */
export const TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

/** Options of {@link injectManifests}. */
export interface InjectOptions {
  readonly config: InjectorConfig;
  /** Namespace for objects without metadata.namespace. Default `default`. */
  readonly namespace?: string;
  /**
   * Tenant name; default the object's namespace (namespace labels cannot be
   * read offline, so the opt-out label is honoured only with `optOut: allow`).
   */
  readonly tenant?: string;
}

/** What happened to one object. */
export interface InjectEvent {
  /** `Kind namespace/name`. */
  readonly ref: string;
  readonly result: 'injected' | 'skipped' | 'denied';
  readonly reason?: string;
  readonly detail?: string;
  readonly warnings: readonly string[];
}

/** The result of {@link injectManifests}. */
export interface InjectReport {
  /** The YAML to print. */
  readonly output: string;
  readonly events: readonly InjectEvent[];
}

function refOf(o: JsonObject): string {
  const meta = obj(o.metadata) ?? {};
  const name = (meta.name as string | undefined) ?? (meta.generateName ? `${String(meta.generateName)}*` : '<unnamed>');
  return `${String(o.kind ?? '<no kind>')} ${meta.namespace ? `${String(meta.namespace)}/` : ''}${name}`;
}

function injectObject(o: unknown, opts: InjectOptions, events: InjectEvent[]): unknown {
  const top = obj(o);
  if (!top) return o;
  const kind = typeof top.kind === 'string' ? top.kind : '';
  if (kind === 'List' || (kind.endsWith('List') && Array.isArray(top.items))) {
    return { ...top, items: (Array.isArray(top.items) ? top.items : []).map((i) => injectObject(i, opts, events)) };
  }
  const path = TEMPLATE_PATHS[kind];
  const ref = refOf(top);
  if (!path) {
    events.push({ ref, result: 'skipped', reason: 'not-a-workload', detail: `kind ${kind || '<none>'} has no pod template`, warnings: [] });
    return o;
  }
  const out = structuredClone(top);
  let holder: JsonObject | undefined = out;
  for (const seg of path) holder = obj(holder?.[seg]);
  if (!holder) {
    events.push({ ref, result: 'skipped', reason: SkipReasons.notAPod, detail: `no pod template at ${path.join('.')}`, warnings: [] });
    return o;
  }
  const namespace = (obj(top.metadata)?.namespace as string | undefined) ?? opts.namespace ?? 'default';
  const pod = { metadata: holder.metadata ?? {}, spec: holder.spec };
  const result = mutatePod(pod, { namespace, tenant: opts.tenant ?? namespace, config: opts.config });
  const d = result.decision;
  if (d.outcome !== 'inject') {
    events.push({ ref, result: d.outcome === 'deny' ? 'denied' : 'skipped', reason: d.reason, detail: d.detail, warnings: [] });
    return o;
  }
  holder.metadata = result.patched.metadata;
  holder.spec = result.patched.spec;
  events.push({ ref, result: 'injected', warnings: result.warnings });
  return out;
}

/**
 * Injects every workload in `text` (YAML or JSON, one or more documents).
 * Denied workloads are passed through unchanged with a `denied` event. Pure.
 */
export function injectManifests(text: string, opts: InjectOptions): InjectReport {
  if (opts.tenant !== undefined && !isTenantName(opts.tenant)) {
    throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, `--tenant ${JSON.stringify(opts.tenant)}: a tenant is a label value (1-63 letters, digits, -, _ or ., starting and ending with a letter or digit)`);
  }
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, 'parsing manifests: not YAML documents');
  const events: InjectEvent[] = [];
  const parts: string[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      throw new InjectorError(InjectorErrorCodes.BAD_REQUEST, `parsing manifests: ${doc.errors[0].message}`, { cause: doc.errors[0] });
    }
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    parts.push(stringify(injectObject(value, opts, events), { lineWidth: 0 }));
  }
  return { output: parts.join('---\n'), events };
}

/**
 * Why an injected sidecar would not start with `config`, or undefined when it
 * would: the sidecar's own start-up checks run on the arguments the injector
 * writes, with the resolv.conf the injector gives the pod (its one nameserver
 * is the sidecar). The sidecar's flag parser (`buildConfig`) validates the
 * arguments; with no `--upstream` it takes the pod resolv.conf's non-loopback
 * nameservers, of which there are none; and it refuses to forward to its own
 * listen address (`checkLoops`).
 */
export function sidecarStartProblem(config: InjectorConfig): string | undefined {
  const byFlag = new Map(SIDECAR_FLAGS.map((f) => [f.flag, f]));
  const flags: Record<string, unknown> = {};
  for (const arg of sidecarArgs(config)) {
    const eq = arg.indexOf('=');
    const spec = byFlag.get(eq < 0 ? arg : arg.slice(0, eq));
    if (!spec) return `the sidecar has no flag ${arg}`;
    const raw = eq < 0 ? true : arg.slice(eq + 1);
    const value = spec.integer ? Number(raw) : raw;
    const key = optionKey(spec.flag);
    flags[key] = spec.repeatable ? [...((flags[key] as unknown[] | undefined) ?? []), value] : value;
  }
  try {
    const sidecar = buildConfig(flags);
    const listen = sidecar.listen.map((l) => parseHostPort(l, '--listen'));
    const resolvConf = listen.map((l) => `nameserver ${l.host}`).join('\n');
    const upstreams = sidecar.upstream.length > 0 ? [...sidecar.upstream] : upstreamsFromResolvConf(resolvConf);
    if (upstreams.length === 0) {
      return (
        'the injector config gives the sidecar nowhere to forward: set upstreams (default upstream URLs) or clusterDns ' +
        "(kube-dns ADDR:PORT, then also the default upstream); the pod's resolv.conf names only the sidecar, so it would exit at start " +
        '(--upstream: none given)'
      );
    }
    checkLoops(listen, sidecar, upstreams);
    return undefined;
  } catch (err) {
    return `the sidecar would not start with the injector config: ${describeError(err)}`;
  }
}

/** Options of the `inject` command. */
export interface InjectCommandOptions {
  readonly filename: string;
  readonly config?: string;
  readonly namespace?: string;
  readonly tenant?: string;
  readonly output?: string;
}

/** Where {@link runInjectCommand} (and `tenant-dns render`) read and write. */
export interface InjectIo {
  readonly readStdin: () => string;
  readonly stdout: (s: string) => void;
  readonly stderr: (s: string) => void;
}

/** The process's stdin, stdout and stderr. */
export const processIo: InjectIo = {
  readStdin: () => readFileSync(0, 'utf8'),
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
};

/**
 * Runs `tenant-dns inject`; returns the exit code: 0, or 1 after printing the
 * error, or every denied workload (then nothing is written: a partial result
 * piped into `kubectl apply` would apply the rest).
 */
export function runInjectCommand(opts: InjectCommandOptions, io: InjectIo = processIo): number {
  try {
    const config: InjectorConfig = loadInjectorConfig(opts.config);
    const unstartable = sidecarStartProblem(config);
    if (unstartable !== undefined) throw new InjectorError(InjectorErrorCodes.CONFIG_INVALID, `${opts.config ?? 'default injector config'}: ${unstartable}`);
    const text = opts.filename === '-' ? io.readStdin() : readFileSync(opts.filename, 'utf8');
    const report = injectManifests(text, { config, namespace: opts.namespace, tenant: opts.tenant });
    for (const e of report.events) {
      if (e.result !== 'injected') io.stderr(`tenant-dns inject: ${e.result} ${e.ref}: ${e.reason} (${e.detail})\n`);
      for (const w of e.warnings) io.stderr(`tenant-dns inject: ${e.ref}: ${w}\n`);
    }
    const denied = report.events.filter((e) => e.result === 'denied').length;
    if (denied > 0) {
      io.stderr(`tenant-dns inject: ${denied} workload${denied === 1 ? '' : 's'} would be denied by the injector; nothing written\n`);
      return 1;
    }
    if (opts.output) writeFileSync(opts.output, report.output);
    else io.stdout(report.output);
    return 0;
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    io.stderr(`tenant-dns inject: ${err instanceof Error ? err.message : String(err)}${cause}\n`);
    return 1;
  }
}
