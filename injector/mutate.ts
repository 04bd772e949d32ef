/**
 * The whole injection of one pod: decide, compare what the pod already
 * carries with what the injector writes (the injector is authoritative: a
 * pod is injected only when it carries exactly the injection; anything that
 * collides with it is denied), then build the JSON Patch that adds the
 * sidecar and its volumes, points the pod's resolver at it, lowers the
 * unprivileged-port sysctl, labels the pod with its tenant and records what
 * was done. Shared by both webhooks and `tenant-dns inject`. Pure: no I/O.
 */
import { containerDifferences, equalPruned, formatDifferences, volumeDifferences } from './compare.ts';
import type { InjectorConfig } from './config-schema.ts';
import { decide, deny, DenyReasons, namesOf, skip, SkipReasons, type Decision, type DenyReason } from './decide.ts';
import { arr, jsonEqual, obj, type JsonObject } from './json.ts';
import { captureContainer } from './capture-spec.ts';
import { CAPTURE_NAME, HttpPaths, Keys, PORT_SYSCTL, PrometheusAnnotations, SIDECAR_NAME, SIDECAR_UID, VOLUME_NAMES } from './names.ts';
import { PatchBuilder, type PatchOperation } from './patch.ts';
import { INJECTOR_VERSION, sidecarContainer, sidecarVolumes, type PodDns } from './sidecar-spec.ts';

/** What {@link mutatePod} needs besides the pod. */
export interface MutateContext {
  readonly namespace: string;
  readonly tenant: string;
  /** The admission operation; undefined offline. */
  readonly operation?: string;
  /** The namespace carries `tenant-dns.io/allow-opt-out: "true"`. */
  readonly allowOptOut?: boolean;
  readonly config: InjectorConfig;
}

/** The result of {@link mutatePod}. */
export interface MutateResult {
  readonly decision: Decision;
  /**
   * RFC 6902 operations: the injection; for an already injected pod, only
   * metadata it lacks (tenant label, status annotation); empty when denied
   * or skipped otherwise.
   */
  readonly patch: readonly PatchOperation[];
  /** Short human-readable warnings for the user (admission `warnings`, stderr offline). */
  readonly warnings: readonly string[];
  /** The patched pod (the original when denied or skipped). */
  readonly patched: Record<string, unknown>;
}

/** Kubernetes' resolver limits (pkg/apis/core/validation). */
export const DnsLimits = { nameservers: 3, searches: 32, searchChars: 2048 } as const;

function hostOf(hostPort: string): string {
  const i = hostPort.lastIndexOf(':');
  return hostPort.slice(0, i).replace(/^\[|\]$/g, '');
}

/** The ndots to use and a warning when the annotation was unusable. */
function chooseNdots(options: unknown[], annotations: JsonObject, fallback: number): { value?: string; warning?: string } {
  if (options.some((o) => obj(o)?.name === 'ndots')) return {};
  const raw = annotations[Keys.ndots];
  if (raw === undefined) return { value: String(fallback) };
  if (typeof raw === 'string' && /^[0-9]{1,2}$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 15) return { value: String(Number(raw)) };
  return {
    value: String(fallback),
    warning: `tenant-dns: annotation ${Keys.ndots}=${JSON.stringify(raw)} is not an integer 1-15; using ndots ${fallback}`,
  };
}

function buildDnsConfig(spec: JsonObject, annotations: JsonObject, ctx: MutateContext, warnings: string[]): JsonObject {
  const { config, namespace } = ctx;
  const existing = obj(spec.dnsConfig) ?? {};
  const domain = config.clusterDomain;
  const ours = [`${namespace}.svc.${domain}`, `svc.${domain}`, domain];
  const podSearches = arr(existing.searches).filter((s): s is string => typeof s === 'string');
  const searches = [...new Set([...ours, ...podSearches])];
  while (searches.length > DnsLimits.searches || searches.join(' ').length > DnsLimits.searchChars) {
    const dropped = searches.pop();
    warnings.push(`tenant-dns: search domain ${dropped} dropped to stay within Kubernetes limits`);
  }
  if (spec.dnsPolicy === 'Default') warnings.push('tenant-dns: dnsPolicy Default replaced; names now resolve through the sidecar');
  const options = arr(existing.options);
  const ndots = chooseNdots(options, annotations, config.ndots);
  if (ndots.warning) warnings.push(ndots.warning);
  const nameservers = [hostOf(config.listen)];
  return {
    nameservers: nameservers.slice(0, DnsLimits.nameservers),
    searches,
    options: ndots.value === undefined ? options : [{ name: 'ndots', value: ndots.value }, ...options],
  };
}

/**
 * The search list and ndots a dnsConfig gives the pod's resolvers: ndots is the last `ndots` option, as
 * glibc reads options (capped at 15, as glibc and musl cap it); undefined when that is not a number.
 */
function podDns(dnsConfig: JsonObject): PodDns {
  const searches = arr(dnsConfig.searches).filter((s): s is string => typeof s === 'string');
  const raw = arr(dnsConfig.options).map(obj).filter((o) => o?.name === 'ndots').pop()?.value;
  const n = typeof raw === 'string' && /^[0-9]{1,3}$/.test(raw) ? Math.min(Number(raw), 15) : undefined;
  return n === undefined ? { searches } : { searches, ndots: n };
}

function mergeSysctl(b: PatchBuilder): void {
  const path = ['spec', 'securityContext', 'sysctls'];
  const sysctls = arr(b.get(path));
  const i = sysctls.findIndex((s) => obj(s)?.name === PORT_SYSCTL);
  if (i < 0) {
    b.append(path, { name: PORT_SYSCTL, value: '53' });
    return;
  }
  const current = Number(obj(sysctls[i])?.value);
  if (!(Number.isInteger(current) && current <= 53)) b.set([...path, i, 'value'], '53');
}

/** One way a pod collides with the injection. */
interface Conflict {
  readonly reason: DenyReason;
  readonly detail: string;
}

/** What the injector writes for one pod, apart from the pod-dependent DNS settings. */
interface Injection {
  readonly container: JsonObject;
  readonly volumes: readonly JsonObject[];
  /** The DNS capture init container (`capture: init`), first of the init containers; undefined without capture. */
  readonly capture: JsonObject | undefined;
}

function mismatch(detail: string): Conflict {
  return { reason: DenyReasons.injectionMismatch, detail };
}

/** The checks that apply only to a pod whose sidecar is exactly the injector's: volumes, DNS settings, sysctl. */
function injectedPartsConflicts(spec: JsonObject, annotations: JsonObject, ctx: MutateContext, injection: Injection): Conflict[] {
  const conflicts: Conflict[] = [];
  const podVolumes = arr(spec.volumes);
  for (const name of Object.values(VOLUME_NAMES)) {
    const have = podVolumes.filter((v) => obj(v)?.name === name);
    const want = injection.volumes.find((v) => v.name === name);
    if (!want) {
      if (have.length > 0) conflicts.push(mismatch(`volume ${name} is not part of the injection with this configuration`));
    } else if (have.length !== 1) {
      conflicts.push(mismatch(`volume ${name} of the injection is ${have.length === 0 ? 'missing' : 'there more than once'}`));
    } else {
      const diffs = volumeDifferences(have[0], want);
      if (diffs.length > 0) conflicts.push(mismatch(`volume ${name} differs from the injection in ${formatDifferences(diffs, 'the injector writes')}`));
    }
  }
  if (spec.dnsPolicy !== 'None') {
    conflicts.push(mismatch(`dnsPolicy is ${String(spec.dnsPolicy ?? 'unset')}; the injection sets None`));
  } else {
    // The injection is a fixed point: building the DNS config again from an injected pod's gives the same.
    const want = buildDnsConfig(spec, annotations, ctx, []);
    const have = obj(spec.dnsConfig) ?? {};
    const fields = ['searches', 'options'].filter((k) => !equalPruned(have[k], want[k]));
    if (arr(have.nameservers).length === 0) fields.unshift('nameservers');
    if (fields.length > 0) conflicts.push(mismatch(`dnsConfig ${fields.join(', ')} differ from the injection (searches start with ${arr(want.searches).slice(0, 3).join(' ')})`));
  }
  const sysctl = arr(obj(spec.securityContext)?.sysctls).map(obj).find((s) => s?.name === PORT_SYSCTL);
  const value = Number(sysctl?.value);
  if (!(Number.isInteger(value) && value <= 53)) {
    conflicts.push(mismatch(`securityContext.sysctls ${PORT_SYSCTL} is ${String(sysctl?.value ?? 'unset')}; the injection sets 53 or lower`));
  }
  return conflicts;
}

/**
 * Compares what `spec` already carries with `injection`: whether the pod
 * carries the sidecar (then it must be exactly the injector's, where the
 * injector puts it, with exactly its volumes and DNS settings), and every
 * way it collides with the injection.
 */
function inspect(spec: JsonObject, annotations: JsonObject, ctx: MutateContext, injection: Injection): { injected: boolean; conflicts: Conflict[] } {
  const { config } = ctx;
  const conflicts: Conflict[] = [];
  const slot = config.nativeSidecar ? 'initContainers' : 'containers';
  // With capture, its init container comes first: in native mode the sidecar is then the second init container.
  const index = config.nativeSidecar && injection.capture ? 1 : 0;
  const where = (name: string) =>
    (['initContainers', 'containers', 'ephemeralContainers'] as const).flatMap((list) =>
      arr(spec[list]).flatMap((c, i) => (obj(c)?.name === name ? [{ list, index: i, container: c }] : [])),
    );
  const places = where(SIDECAR_NAME);
  const captures = where(CAPTURE_NAME);
  const injected = places.length > 0;
  if (places.length > 1 || (injected && (places[0]!.list !== slot || places[0]!.index !== index))) {
    const at = places.map((p) => `spec.${p.list}[${p.index}]`).join(', ');
    conflicts.push({ reason: DenyReasons.foreignSidecar, detail: `a ${SIDECAR_NAME} container at ${at}; the injector puts its own at spec.${slot}[${index}]` });
  } else if (injected) {
    const diffs = containerDifferences(places[0]!.container, injection.container);
    if (diffs.length > 0) {
      conflicts.push({ reason: DenyReasons.foreignSidecar, detail: `container ${SIDECAR_NAME} is not the injector's: it differs in ${formatDifferences(diffs, 'the injector writes')}` });
    } else {
      conflicts.push(...injectedPartsConflicts(spec, annotations, ctx, injection));
      conflicts.push(...captureConflicts(captures, injection));
    }
  } else {
    const volumes = namesOf(spec.volumes);
    for (const name of Object.values(VOLUME_NAMES)) {
      if (volumes.includes(name)) conflicts.push({ reason: DenyReasons.nameConflict, detail: `the pod already has a volume ${name}, a name the injector needs` });
    }
    for (const c of captures) {
      conflicts.push({ reason: DenyReasons.nameConflict, detail: `the pod already has a container ${CAPTURE_NAME} at spec.${c.list}[${c.index}], a name the injector needs` });
    }
  }
  if (injection.capture) conflicts.push(...captureEscapes(spec));
  const nameservers = arr(obj(spec.dnsConfig)?.nameservers);
  const ours = [hostOf(config.listen)];
  if (nameservers.length > 0 && !jsonEqual(nameservers, ours)) {
    conflicts.push({
      reason: DenyReasons.ownNameservers,
      detail: `the pod sets its own nameservers ${nameservers.map(String).join(', ')}; here names resolve through the sidecar (${ours[0]}) only: ask for a forward zone in the DNS policy instead`,
    });
  }
  return { injected, conflicts };
}

/**
 * How an injected pod's capture containers differ from the injection: exactly
 * the injector's at spec.initContainers[0] with capture, none without.
 */
function captureConflicts(captures: readonly { list: string; index: number; container: unknown }[], injection: Injection): Conflict[] {
  if (injection.capture === undefined) {
    return captures.map((c) => mismatch(`container ${CAPTURE_NAME} at spec.${c.list}[${c.index}] is not part of the injection with this configuration`));
  }
  if (captures.length !== 1 || captures[0]!.list !== 'initContainers' || captures[0]!.index !== 0) {
    const at = captures.map((c) => `spec.${c.list}[${c.index}]`).join(', ') || 'nowhere';
    return [mismatch(`the DNS capture container ${CAPTURE_NAME} is at ${at}; the injection puts it at spec.initContainers[0]`)];
  }
  const diffs = containerDifferences(captures[0]!.container, injection.capture);
  return diffs.length > 0 ? [mismatch(`container ${CAPTURE_NAME} differs from the injection in ${formatDifferences(diffs, 'the injector writes')}`)] : [];
}

/** Capabilities with which a container could remove or step around the capture rules. */
const CAPTURE_CAPABILITIES = ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'ALL'];

/**
 * With DNS capture, the pod's own containers that could get around it: one
 * that runs as the sidecar's uid (its own runAsUser, or the pod's), whose
 * traffic capture leaves alone, and one that is privileged or asks for a
 * capability with which it could remove the rules. The image's USER cannot be
 * seen here: that case stays for the platform (threat model in the README).
 */
function captureEscapes(spec: JsonObject): Conflict[] {
  const out: Conflict[] = [];
  const podUser = obj(spec.securityContext)?.runAsUser;
  for (const list of ['initContainers', 'containers', 'ephemeralContainers'] as const) {
    arr(spec[list]).forEach((c, i) => {
      const container = obj(c);
      const name = container?.name;
      if (!container || name === SIDECAR_NAME || name === CAPTURE_NAME) return;
      const sc = obj(container.securityContext) ?? {};
      const user = sc.runAsUser ?? podUser;
      const where = `spec.${list}[${i}] (${String(name)})`;
      if (user === SIDECAR_UID) {
        out.push({ reason: DenyReasons.captureEscape, detail: `${where} runs as uid ${SIDECAR_UID}, the sidecar's, whose DNS capture leaves alone` });
      }
      const added = arr(obj(sc.capabilities)?.add).filter((cap): cap is string => typeof cap === 'string' && CAPTURE_CAPABILITIES.includes(cap.replace(/^CAP_/, '')));
      if (sc.privileged === true || added.length > 0) {
        out.push({ reason: DenyReasons.captureEscape, detail: `${where} ${sc.privileged === true ? 'is privileged' : `adds ${added.join(', ')}`}, with which it could remove the DNS capture rules` });
      }
    });
  }
  return out;
}

/** Adds the sidecar container and its volumes. */
function addSidecar(b: PatchBuilder, spec: JsonObject, annotations: JsonObject, config: InjectorConfig, injection: Injection): void {
  if (config.nativeSidecar) {
    b.insert(['spec', 'initContainers'], 0, injection.container);
  } else {
    const first = obj(arr(spec.containers)[0])?.name;
    b.insert(['spec', 'containers'], 0, injection.container);
    // kubectl logs/exec pick the first container unless told otherwise.
    if (typeof first === 'string' && annotations[Keys.defaultContainer] === undefined) {
      b.set(['metadata', 'annotations', Keys.defaultContainer], first);
    }
  }
  // DNS capture runs first and exits: the sidecar starts with the rules in place.
  if (injection.capture) b.insert(['spec', 'initContainers'], 0, injection.capture);
  for (const v of injection.volumes) b.append(['spec', 'volumes'], v);
}

/** Points the pod's resolver at the sidecar and lets it bind port 53. */
function pointResolver(b: PatchBuilder, spec: JsonObject, annotations: JsonObject, ctx: MutateContext, warnings: string[]): void {
  const dnsConfig = buildDnsConfig(spec, annotations, ctx, warnings);
  b.set(['spec', 'dnsPolicy'], 'None');
  b.set(['spec', 'dnsConfig'], dnsConfig);
  mergeSysctl(b);
}

/** Labels the pod with its tenant and records the injection in annotations. Writes nothing that is already there. */
function recordInjection(b: PatchBuilder, annotations: JsonObject, ctx: MutateContext, injection: Injection, warnings: string[]): void {
  const { config } = ctx;
  b.set(['metadata', 'labels', Keys.podTenant], ctx.tenant);
  if (config.prometheusAnnotations) {
    const prom = { [PrometheusAnnotations.scrape]: 'true', [PrometheusAnnotations.port]: String(config.metricsPort), [PrometheusAnnotations.path]: HttpPaths.metrics };
    const own = Object.keys(prom).some((k) => annotations[k] !== undefined) && !Object.entries(prom).every(([k, v]) => annotations[k] === v);
    if (own) warnings.push('tenant-dns: pod already has prometheus.io annotations; sidecar scrape annotations not added');
    else for (const [k, v] of Object.entries(prom)) b.set(['metadata', 'annotations', k], v);
  }
  const status = {
    version: INJECTOR_VERSION,
    tenant: ctx.tenant,
    image: config.image,
    mode: config.nativeSidecar ? 'native' : 'legacy',
    containers: injection.capture ? [CAPTURE_NAME, SIDECAR_NAME] : [SIDECAR_NAME],
    volumes: injection.volumes.map((v) => v.name),
  };
  b.set(['metadata', 'annotations', Keys.status], JSON.stringify(status));
}

/**
 * Builds the injection patch for one pod (raw JSON). A pod that already
 * carries exactly the injection is skipped (`already-injected`) with a patch
 * of only the metadata it lacks, empty for the injector's own output; a pod
 * that collides with the injection is denied, every conflict named in the
 * detail (the reason is the first one's). Applying the patch to `pod` gives
 * `patched`.
 */
export function mutatePod(pod: unknown, ctx: MutateContext): MutateResult {
  const original = (obj(pod) ?? {}) as JsonObject;
  const unchanged = (decision: Decision): MutateResult => ({
    decision,
    patch: [],
    warnings: decision.outcome === 'skip' ? [`tenant-dns: not injected (${decision.reason}): ${decision.detail}`] : [],
    patched: original,
  });
  const gate = decide(pod, ctx);
  if (gate.outcome !== 'inject') return unchanged(gate);
  const { config } = ctx;
  const spec = obj(original.spec) ?? {};
  const annotations = obj(obj(original.metadata)?.annotations) ?? {};
  const injection: Injection = {
    // The sidecar gets the pod's search list and ndots as flags: the dnsConfig the injection sets (for an
    // injected pod, the one it carries: building it again gives the same).
    container: sidecarContainer(config, { tenant: ctx.tenant, dns: podDns(buildDnsConfig(spec, annotations, ctx, [])) }),
    volumes: sidecarVolumes(config),
    capture: config.capture === 'init' ? captureContainer(config) : undefined,
  };
  const { injected, conflicts } = inspect(spec, annotations, ctx, injection);
  if (conflicts.length > 0) return unchanged(deny(conflicts[0]!.reason, conflicts.map((c) => c.detail).join('; ')));
  const warnings: string[] = [];
  const b = new PatchBuilder(original);
  if (!injected) {
    addSidecar(b, spec, annotations, config, injection);
    pointResolver(b, spec, annotations, ctx, warnings);
  }
  recordInjection(b, annotations, ctx, injection, warnings);
  const decision: Decision = injected ? skip(SkipReasons.alreadyInjected, `the pod already carries the ${SIDECAR_NAME} injection`) : { outcome: 'inject' };
  return { decision, patch: b.operations, warnings, patched: b.doc };
}
