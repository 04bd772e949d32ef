/**
 * PolicyManager: loads the tenant's policy, the platform's policy and the
 * pod's labels, compiles them, and keeps the compiled policy current: it
 * watches the files (including the `..data` symlink swap Kubernetes does for
 * a mounted ConfigMap) and reloads on change or on {@link PolicyManager.reload}
 * (SIGHUP). An invalid file is rejected with one log line and the last good
 * policy keeps serving. With {@link PolicyManagerOptions.policyOptional} the
 * tenant's file may be absent: that is "no tenant policy" (the platform layer
 * alone applies), and the file is loaded when it appears.
 */
import { dirname, resolve as resolvePath } from 'node:path';
import { DNSPolicySchema, checkPolicy, type DNSPolicy, type PolicyCheckOptions, type PlatformView } from '../config/policy-schema.ts';
import { ConfigInvalidError, formatProblem, loadYamlFile, parseYaml, readTextFile } from '../config/load.ts';
import { ErrorCodes, SidecarError, describeError, errorCode } from '../errors.ts';
import { evaluate } from './evaluate.ts';
import { compilePolicy, type CompiledPolicy, type PolicyHolder } from './compile.ts';
import type { FSWatcher } from 'node:fs';
import { statSync, watch } from '../runtime/builtins.ts';

/** A log function: level, message, structured fields. */
export type PolicyLogger = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** Loads and validates a DNSPolicy file (CONFIG_READ / CONFIG_INVALID on failure); `options` as for {@link checkPolicy}. */
export function loadPolicyFile(path: string, options?: PolicyCheckOptions): DNSPolicy {
  return loadYamlFile(path, DNSPolicySchema, (p) => checkPolicy(p, options));
}

/**
 * What a tenant's policy is checked against of the platform's: its forward
 * zones, and the rule that denies a name for every pod (rules with a
 * podSelector are left out: they do not hold for every pod).
 */
export function platformView(platform: DNSPolicy): PlatformView {
  const compiled = compilePolicy({ platform });
  return {
    forwardZones: compiled.forwardZoneList.flatMap((z) => z.zones.map((zone) => ({ zone, name: z.name }))),
    denied(name) {
      const ev = evaluate(compiled, name);
      return ev.decision.action === 'deny' ? ev.decision.rule : undefined;
    },
  };
}

/** Parses DNSPolicy YAML text named `file` in messages; `options` as for {@link checkPolicy}. */
export function parsePolicy(text: string, file: string, options?: PolicyCheckOptions): DNSPolicy {
  return parseYaml(text, file, DNSPolicySchema, (p) => checkPolicy(p, options));
}

/**
 * Unquotes a Go-quoted string (strconv.Quote, as the kubelet writes label
 * values in downward API files): `"a\"b\\c\n\u00e9\xff"`.
 */
export function unquoteGo(quoted: string): string {
  if (quoted.length < 2 || !quoted.startsWith('"') || !quoted.endsWith('"')) throw new Error(`not a quoted string: ${quoted}`);
  const s = quoted.slice(1, -1);
  const bytes: number[] = [];
  const pushText = (t: string) => {
    for (const b of Buffer.from(t, 'utf8')) bytes.push(b);
  };
  const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, "'": 39, '"': 34 };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') {
      const cp = s.codePointAt(i)!;
      pushText(String.fromCodePoint(cp));
      if (cp > 0xffff) i++;
      continue;
    }
    const e = s[++i];
    if (e === undefined) throw new Error('dangling backslash');
    if (simple[e] !== undefined) bytes.push(simple[e]);
    else if (e === 'x' || e === 'u' || e === 'U') {
      const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = s.slice(i + 1, i + 1 + n);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) throw new Error(`bad \\${e} escape`);
      i += n;
      const v = parseInt(hex, 16);
      if (e === 'x') bytes.push(v);
      else pushText(String.fromCodePoint(v));
    } else if (e >= '0' && e <= '7') {
      const oct = s.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(oct)) throw new Error('bad octal escape');
      i += 2;
      bytes.push(parseInt(oct, 8));
    } else throw new Error(`unknown escape \\${e}`);
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * Parses a downward API labels file: one `key="value"` per line (the value
 * Go-quoted). Blank lines are ignored.
 *
 * @throws SidecarError CONFIG_INVALID naming the file and line.
 */
export function parsePodLabels(text: string, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const eq = line.indexOf('=');
    try {
      if (eq <= 0) throw new Error('expected key="value"');
      out[line.slice(0, eq)] = unquoteGo(line.slice(eq + 1));
    } catch (err) {
      throw new SidecarError(ErrorCodes.CONFIG_INVALID, `${file}:${i + 1}: (labels): ${(err as Error).message}`, { cause: err });
    }
  }
  return out;
}

/** Reads and parses a downward API labels file. */
export function loadPodLabels(path: string): Record<string, string> {
  return parsePodLabels(readTextFile(path), path);
}

/** What {@link PolicyManager} takes. */
export interface PolicyManagerOptions {
  /** The tenant's policy file (`--policy`); without it, an empty policy (default allow). */
  readonly policy?: string;
  /**
   * Whether the tenant's file may be absent (`--policy-optional`): a missing
   * file (ENOENT, as in the empty directory the kubelet mounts for an optional
   * ConfigMap that does not exist) is then "no tenant policy", at start and on
   * a reload, instead of a CONFIG_READ error; other read errors stay errors.
   */
  readonly policyOptional?: boolean;
  /** The platform's policy file (`--platform-policy`). */
  readonly platformPolicy?: string;
  /** The pod's downward API labels file (`--pod-labels`). */
  readonly podLabels?: string;
  /** The pod's namespace (`--namespace`): always visible under the platform's service-discovery isolation. */
  readonly namespace?: string;
  /**
   * The cluster zones (`clusterZones(config.clusterDomain,
   * config.clusterReverseZones)`): a forward zone inside one is rejected, as
   * the cluster DNS answers those names. Unchecked when absent.
   */
  readonly clusterZones?: readonly string[];
  /** Where reload results are logged. */
  readonly log?: PolicyLogger;
  /**
   * Watch the files and reload on change from construction (default true). The sidecar passes false and calls
   * {@link PolicyManager.watchFiles} once its listeners serve.
   */
  readonly watch?: boolean;
  /** Milliseconds to wait after a file event before reloading (default 100). */
  readonly debounceMs?: number;
  /** Clock for `lastGoodAt`, ms since the epoch (default Date.now). */
  readonly now?: () => number;
}

/** The result of a reload. */
export type ReloadResult = { readonly ok: true; readonly error?: undefined } | { readonly ok: false; readonly error: SidecarError };

/** A reload listener (e.g. the metrics stage counting reloads). */
export type ReloadListener = (result: 'success' | 'failure', error?: SidecarError) => void;

interface Texts {
  readonly platform: string | undefined;
  readonly tenant: string | undefined;
  readonly labels: string | undefined;
  readonly signature: string;
}

interface Loaded {
  readonly compiled: CompiledPolicy;
  readonly signature: string;
  /** Whether the tenant's file was absent (with `policyOptional`). */
  readonly tenantAbsent: boolean;
}

/** Whether `err` is the CONFIG_READ of a file that does not exist. */
function isMissingFile(err: unknown): boolean {
  return err instanceof SidecarError && err.code === ErrorCodes.CONFIG_READ && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * Owns the compiled policy. Is itself the {@link PolicyHolder} the policy and
 * split stages read: `current` is replaced whole on a good reload.
 */
export class PolicyManager implements PolicyHolder {
  /** The compiled policy serving now. */
  current: CompiledPolicy;
  /** When the current policy was loaded, ms since the epoch. */
  lastGoodAt: number;

  private readonly opts: PolicyManagerOptions;
  private readonly listeners = new Set<ReloadListener>();
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The tenant file's text of the policy serving now. */
  private lastTenantText: string | undefined;
  /** The tenant file's text of the load in progress. */
  private pendingTenantText: string | undefined;
  private lastSignature: string;
  /** Whether the policy serving now was loaded without the tenant's file (absent, with `policyOptional`). */
  private tenantAbsent = false;
  private closed = false;
  private watching = false;

  /**
   * Loads and compiles the files, then starts watching them.
   *
   * @throws SidecarError CONFIG_READ when a file is missing or unreadable, CONFIG_INVALID when one is invalid.
   */
  constructor(opts: PolicyManagerOptions) {
    this.opts = opts;
    const first = this.load();
    this.current = first.compiled;
    this.lastSignature = first.signature;
    this.lastTenantText = this.pendingTenantText;
    this.lastGoodAt = this.now();
    this.noteTenantAbsence(first.tenantAbsent, 'info');
    if (opts.watch ?? true) this.startWatching();
  }

  /**
   * Logs, once per change, that the tenant's file is absent and the platform
   * policy alone applies: at `level` info at start (a namespace without a
   * tenant policy), warn when a file that served goes away.
   */
  private noteTenantAbsence(absent: boolean, level: 'info' | 'warn'): void {
    if (absent && !this.tenantAbsent) this.opts.log?.(level, 'no tenant policy file; the platform policy alone applies until it appears', { file: this.opts.policy });
    this.tenantAbsent = absent;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /**
   * The files' texts (the tenant's undefined when it is absent and may be, with `policyOptional`) and their
   * signature, which tells a reload whether anything changed.
   *
   * @throws SidecarError CONFIG_READ when a file is missing or unreadable.
   */
  private readTexts(): Texts {
    const { policy, platformPolicy, podLabels } = this.opts;
    const platform = platformPolicy ? readTextFile(platformPolicy) : undefined;
    const tenant = policy ? this.readTenant(policy) : undefined;
    const labels = podLabels ? readTextFile(podLabels) : undefined;
    const parts: string[] = [];
    if (platform !== undefined) parts.push(platform);
    if (policy) parts.push(tenant ?? '\u0001no tenant file');
    if (labels !== undefined) parts.push(labels);
    return { platform, tenant, labels, signature: parts.join('\u0000') };
  }

  private load(): Loaded {
    const { policy, platformPolicy, podLabels } = this.opts;
    const texts = this.readTexts();
    const checks = { clusterZones: this.opts.clusterZones };
    // The platform first: the tenant's policy is checked against it (no shadowing, no denied split targets).
    const platform = platformPolicy ? parsePolicy(texts.platform!, platformPolicy, checks) : undefined;
    let tenant: DNSPolicy | undefined;
    const text = texts.tenant;
    if (policy && text !== undefined) {
      try {
        tenant = parsePolicy(text, policy, { ...checks, layer: 'tenant', ...(platform ? { platform: platformView(platform) } : {}) });
      } catch (err) {
        // A tenant file that was good and has not changed, now in conflict with a new platform policy: the
        // platform's change must never wait on a tenant's file. It loads, the platform wins at query time
        // (a denied split target is denied, a tenant forward zone below a platform one is left out), and
        // the conflict is logged. A changed tenant file in conflict is refused like any invalid one.
        if (!(err instanceof ConfigInvalidError) || text !== this.lastTenantText) throw err;
        tenant = parsePolicy(text, policy, { ...checks, layer: 'tenant' });
        this.opts.log?.('warn', 'the platform policy now conflicts with the unchanged tenant policy; the platform wins', {
          problems: err.problems.map(formatProblem),
        });
      }
    }
    this.pendingTenantText = text;
    const labels = podLabels ? parsePodLabels(texts.labels!, podLabels) : undefined;
    return { compiled: compilePolicy({ tenant, platform, podLabels: labels, namespace: this.opts.namespace }), signature: texts.signature, tenantAbsent: policy !== undefined && text === undefined };
  }

  /** The tenant file's text; undefined when it does not exist and may be absent (`policyOptional`). */
  private readTenant(path: string): string | undefined {
    try {
      return readTextFile(path);
    } catch (err) {
      if (this.opts.policyOptional && isMissingFile(err)) return undefined;
      throw err;
    }
  }

  /** Registers a listener called after every reload attempt; returns a function that removes it. */
  onReload(cb: ReloadListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /**
   * Reloads every file now (SIGHUP). On success the new policy serves from
   * the next query; on failure the last good policy stays and one line is logged.
   */
  reload(): ReloadResult {
    return this.doReload(true);
  }

  private doReload(force: boolean): ReloadResult {
    let loaded: Loaded;
    try {
      loaded = this.load();
    } catch (err) {
      const error = err instanceof SidecarError ? err : new SidecarError(ErrorCodes.INTERNAL, 'reloading policy', { cause: err });
      const signature = `error:${error.message}`;
      if (!force && signature === this.lastSignature) return { ok: false, error };
      this.lastSignature = signature;
      this.opts.log?.('warn', 'policy reload failed; keeping the last good policy', {
        code: errorCode(error),
        error: describeError(error).replace(/\n/g, '; '),
      });
      for (const cb of this.listeners) cb('failure', error);
      return { ok: false, error };
    }
    if (!force && loaded.signature === this.lastSignature) return { ok: true };
    this.lastSignature = loaded.signature;
    this.lastTenantText = this.pendingTenantText;
    this.current = loaded.compiled;
    this.lastGoodAt = this.now();
    this.noteTenantAbsence(loaded.tenantAbsent, 'warn');
    this.opts.log?.('info', 'policy reloaded', {
      rules: loaded.compiled.tenantRules.size + loaded.compiled.platformRules.size,
      splitZones: loaded.compiled.splitZoneList.length,
      forwardZones: loaded.compiled.forwardZoneList.length,
    });
    for (const cb of this.listeners) cb('success');
    return { ok: true };
  }

  /**
   * Starts watching the files (once; nothing after {@link close}), then reloads if they changed since they were
   * read: the sidecar starts watching after its listeners serve, so that setting the watches up does not delay
   * the first answer (test/bench/README.md, "Start: what the first answer waits for").
   */
  watchFiles(): void {
    if (this.closed || this.watching) return;
    this.startWatching();
    if (this.rereadable() && this.textsNow() !== this.lastSignature) this.schedule();
  }

  /**
   * Whether every file that exists is a regular file (a ConfigMap's symlinks lead to one). A pipe, as a shell's
   * `<(…)` gives, cannot be read twice: a second read finds nothing (the labels, and the rules they select, would
   * go) or, for a named pipe with no writer, never returns. Only SIGHUP and the watch's events read such a file
   * again, as before.
   */
  private rereadable(): boolean {
    for (const f of this.files()) {
      try {
        if (!statSync(f).isFile()) return false;
      } catch {
        // Missing or unreadable: the read says which (an absent optional tenant file is a text of its own).
      }
    }
    return true;
  }

  /** The signature `load` would give the files as they are now, or undefined when one cannot be read. */
  private textsNow(): string | undefined {
    try {
      return this.readTexts().signature;
    } catch {
      return undefined;
    }
  }

  /** The files the policy is read from: the tenant's, the platform's and the pod labels, those configured. */
  private files(): string[] {
    return [this.opts.policy, this.opts.platformPolicy, this.opts.podLabels].filter((f): f is string => !!f);
  }

  private startWatching(): void {
    this.watching = true;
    const dirs = new Set(this.files().map((f) => dirname(resolvePath(f))));
    for (const dir of dirs) {
      const failed = (err: unknown) => this.opts.log?.('warn', 'policy watch failed; reload with SIGHUP', { dir, error: describeError(err) });
      // Watch the directory, not the file: Kubernetes replaces a ConfigMap's
      // files by swapping the `..data` symlink, which a file watch never sees.
      // An optional tenant file's directory may not exist (the kubelet mounts
      // an empty one for a missing optional ConfigMap, but a hand-run sidecar
      // may point anywhere): then only SIGHUP reloads.
      let w: FSWatcher;
      try {
        w = watch(dir, { persistent: false }, () => this.schedule());
      } catch (err) {
        failed(err);
        continue;
      }
      w.on('error', failed);
      this.watchers.push(w);
    }
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed) this.doReload(false);
    }, this.opts.debounceMs ?? 100);
    this.timer.unref();
  }

  /** Stops watching. Idempotent. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.watchers.splice(0)) w.close();
  }
}
