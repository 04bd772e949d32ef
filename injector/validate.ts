/**
 * The validating webhook's verdicts. On one pod, after every mutating webhook
 * has run: on CREATE the injection must be there and exact (the same
 * comparison as the mutating webhook's: a pass of {@link mutatePod} over the
 * pod would change nothing in its spec) and the tenant label must name the
 * pod's tenant; on UPDATE the sidecar container (image included) and its
 * volumes, the DNS settings and the tenant label cannot change. Ephemeral
 * containers are not looked at (`kubectl debug` stays possible). On a write
 * of one of the two policy ConfigMaps the controller renders: allowed only to
 * the controller (and, for delete, to `renderedConfigMapDeleters`). Pure: no I/O.
 */
import { containerDifferences, equalPruned, formatDifferences, volumeDifferences } from './compare.ts';
import type { InjectorConfig } from './config-schema.ts';
import { DenyReasons, SkipReasons, type DenyReason, type SkipReason } from './decide.ts';
import { arr, obj, type JsonObject } from './json.ts';
import { mutatePod } from './mutate.ts';
import { Keys, SIDECAR_NAME, VOLUME_NAMES } from './names.ts';

/** What {@link validatePodAdmission} needs besides the pod. */
export interface ValidateContext {
  readonly namespace: string;
  /** The pod's tenant as the platform decides it (needed on CREATE). */
  readonly tenant: string;
  readonly operation: string;
  /** The pod before the UPDATE. */
  readonly oldObject?: unknown;
  /** The namespace carries `tenant-dns.io/allow-opt-out: "true"`. */
  readonly allowOptOut?: boolean;
  readonly config: InjectorConfig;
}

/** The verdict: allowed (with the skip reason, or `none` when checked), or denied with the conflict. */
export type Verdict =
  | { readonly allowed: true; readonly reason: SkipReason | 'none' }
  | { readonly allowed: false; readonly reason: DenyReason; readonly detail: string };

const allow = (reason: SkipReason | 'none'): Verdict => ({ allowed: true, reason });
const refuse = (reason: DenyReason, detail: string): Verdict => ({ allowed: false, reason, detail });

function tenantLabel(pod: unknown): unknown {
  return obj(obj(obj(pod)?.metadata)?.labels)?.[Keys.podTenant];
}

/** The sidecar container of a pod and where it is (`initContainers[0]`), or undefined. */
function sidecarOf(pod: unknown): { where: string; container: JsonObject } | undefined {
  const spec = obj(obj(pod)?.spec);
  for (const list of ['initContainers', 'containers']) {
    const index = arr(spec?.[list]).findIndex((c) => obj(c)?.name === SIDECAR_NAME);
    if (index >= 0) return { where: `${list}[${index}]`, container: obj(arr(spec?.[list])[index])! };
  }
  return undefined;
}

function onCreate(pod: unknown, ctx: ValidateContext): Verdict {
  const { decision } = mutatePod(pod, { namespace: ctx.namespace, tenant: ctx.tenant, operation: 'CREATE', allowOptOut: ctx.allowOptOut, config: ctx.config });
  if (decision.outcome === 'deny') return refuse(decision.reason, decision.detail);
  if (decision.outcome === 'inject') {
    return refuse(DenyReasons.notInjected, `the pod has no ${SIDECAR_NAME} sidecar: the mutating webhook did not inject it (check the MutatingWebhookConfiguration tenant-dns-injector)`);
  }
  if (decision.reason !== SkipReasons.alreadyInjected) return allow(decision.reason);
  if (tenantLabel(pod) !== ctx.tenant) return refuse(DenyReasons.tenantLabel, `the pod lacks the label ${Keys.podTenant}=${ctx.tenant} the injection sets`);
  return allow('none');
}

function onUpdate(pod: unknown, old: unknown): Verdict {
  const [labelWas, labelNow] = [tenantLabel(old), tenantLabel(pod)];
  if (labelWas !== labelNow) {
    const show = (v: unknown) => (v === undefined ? 'unset' : String(v).slice(0, 63));
    return refuse(DenyReasons.tenantLabelChanged, `label ${Keys.podTenant} cannot change (${show(labelWas)} before, ${show(labelNow)} now)`);
  }
  const before = sidecarOf(old);
  const after = sidecarOf(pod);
  if (before || after) {
    if (!before || !after || before.where !== after.where) {
      return refuse(DenyReasons.sidecarChanged, `the ${SIDECAR_NAME} container cannot be added, removed or moved (${before?.where ?? 'none'} before, ${after?.where ?? 'none'} now)`);
    }
    const diffs = containerDifferences(after.container, before.container);
    if (diffs.length > 0) return refuse(DenyReasons.sidecarChanged, `container ${SIDECAR_NAME} cannot change: ${formatDifferences(diffs, 'before')}`);
    for (const name of Object.values(VOLUME_NAMES)) {
      const find = (p: unknown) => arr(obj(obj(p)?.spec)?.volumes).find((v) => obj(v)?.name === name);
      const [a, b] = [find(pod), find(old)];
      if ((a === undefined) !== (b === undefined) || (a !== undefined && volumeDifferences(a, b).length > 0)) {
        return refuse(DenyReasons.sidecarChanged, `volume ${name} of the ${SIDECAR_NAME} sidecar cannot change`);
      }
    }
  }
  const specOf = (p: unknown) => obj(obj(p)?.spec) ?? {};
  const [now, was] = [specOf(pod), specOf(old)];
  if (!equalPruned(now.dnsPolicy, was.dnsPolicy)) return refuse(DenyReasons.dnsChanged, `dnsPolicy cannot change (${String(was.dnsPolicy ?? 'unset')} before)`);
  const [dnsNow, dnsWas] = [obj(now.dnsConfig) ?? {}, obj(was.dnsConfig) ?? {}];
  const changed = [...new Set([...Object.keys(dnsWas), ...Object.keys(dnsNow)])].filter((k) => !equalPruned(dnsNow[k], dnsWas[k]));
  if (changed.length > 0) return refuse(DenyReasons.dnsChanged, `dnsConfig cannot change (${changed.join(', ')})`);
  // No warning: controllers update such pods often, and nobody asked.
  return allow(before ? 'none' : SkipReasons.notInjected);
}

/** Validates one pod admission (raw JSON). Pure. */
export function validatePodAdmission(pod: unknown, ctx: ValidateContext): Verdict {
  const p = obj(pod);
  if (!p || !Array.isArray(obj(p.spec)?.containers)) return allow(SkipReasons.notAPod);
  if (ctx.config.excludedNamespaces.includes(ctx.namespace)) return allow(SkipReasons.excludedNamespace);
  if (obj(obj(p.metadata)?.annotations)?.[Keys.mirror] !== undefined) return allow(SkipReasons.mirrorPod);
  if (ctx.operation === 'CREATE') return onCreate(pod, ctx);
  if (ctx.operation === 'UPDATE') return onUpdate(pod, ctx.oldObject);
  return allow(SkipReasons.operation);
}

/** The names of the two ConfigMaps the controller renders into every injected namespace: the platform layer's, the tenant layer's. */
export function renderedConfigMapNames(config: Pick<InjectorConfig, 'platformPolicyConfigMap' | 'tenantPolicyConfigMap'>): readonly [string, string] {
  return [config.platformPolicyConfigMap, config.tenantPolicyConfigMap];
}

/** What {@link validateConfigMapAdmission} needs: who writes which ConfigMap, and how. */
export interface ConfigMapWrite {
  readonly namespace: string;
  readonly name: string;
  /** CREATE, UPDATE or DELETE. */
  readonly operation: string;
  /** `request.userInfo.username` as the API server authenticated it. */
  readonly username: string;
  readonly config: Pick<InjectorConfig, 'platformPolicyConfigMap' | 'tenantPolicyConfigMap' | 'controllerUsername' | 'renderedConfigMapDeleters' | 'excludedNamespaces'>;
}

/**
 * Validates a write of a ConfigMap: one of the rendered policy ConfigMaps may
 * be created, updated or deleted only by the controller's user
 * (`controllerUsername`), and deleted also by `renderedConfigMapDeleters`;
 * other ConfigMaps, and namespaces never injected, pass. Pure.
 */
export function validateConfigMapAdmission(w: ConfigMapWrite): Verdict {
  const { config } = w;
  if (!renderedConfigMapNames(config).includes(w.name)) return allow(SkipReasons.notRendered);
  if (config.excludedNamespaces.includes(w.namespace)) return allow(SkipReasons.excludedNamespace);
  if (w.username === config.controllerUsername) return allow('none');
  const deleters = w.operation === 'DELETE' ? config.renderedConfigMapDeleters : [];
  if (deleters.includes(w.username)) return allow('none');
  const who = [`${config.controllerUsername} may create, update or delete it`, ...(config.renderedConfigMapDeleters.length > 0 ? [`${config.renderedConfigMapDeleters.join(', ')} may delete it`] : [])].join('; ');
  return refuse(
    DenyReasons.renderedConfig,
    `ConfigMap ${w.namespace}/${w.name} is rendered by the tenant-dns controller from the DNSPolicy and ClusterDNSPolicy objects (change those instead); ${w.operation} by ${w.username || 'an unnamed user'} refused: only ${who}`,
  );
}
