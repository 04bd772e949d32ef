/**
 * Whether a pod gets the sidecar: a pure function of the raw pod and its
 * namespace, re-checking in process what the webhook's selectors already
 * filter (they can be edited, and `tenant-dns inject` has no selectors).
 * Every "no" carries a stable reason, used in warnings and metric labels.
 */
import type { InjectorConfig } from './config-schema.ts';
import { arr, obj } from './json.ts';
import { InjectValues, Keys, SIDECAR_NAME, VOLUME_NAMES } from './names.ts';

/** Why a pod was not injected. Stable: metric label values. */
export const SkipReasons = {
  /** Not a Pod (or no spec.containers). */
  notAPod: 'not-a-pod',
  /** The admission operation is not CREATE. */
  operation: 'operation',
  /** The namespace is excluded (kube-system, …). */
  excludedNamespace: 'excluded-namespace',
  /** The pod uses the node's network namespace; it cannot have its own 127.0.0.1:53. */
  hostNetwork: 'host-network',
  /** A mirror pod of a static pod: the API server cannot change it. */
  mirrorPod: 'mirror-pod',
  /** The pod carries the opt-out label (`tenant-dns.io/inject: "false"`). */
  optedOut: 'opted-out',
  /** The pod already has the sidecar container. */
  alreadyInjected: 'already-injected',
  /** A container or volume already uses a name the injector needs. */
  nameConflict: 'name-conflict',
} as const;

/** One of {@link SkipReasons}. */
export type SkipReason = (typeof SkipReasons)[keyof typeof SkipReasons];

/** The outcome of {@link decide}. */
export type Decision = { readonly inject: true } | { readonly inject: false; readonly reason: SkipReason; readonly detail: string };

/** What {@link decide} needs besides the pod. */
export interface DecideContext {
  readonly namespace: string;
  /** The admission operation; undefined offline. */
  readonly operation?: string;
  readonly config: Pick<InjectorConfig, 'excludedNamespaces'>;
}

function names(list: unknown): string[] {
  return arr(list).map((c) => obj(c)?.name).filter((n): n is string => typeof n === 'string');
}

/** Decides whether `pod` (raw JSON) gets the sidecar. Pure. */
export function decide(pod: unknown, ctx: DecideContext): Decision {
  const skip = (reason: SkipReason, detail: string): Decision => ({ inject: false, reason, detail });
  const p = obj(pod);
  const spec = obj(p?.spec);
  if (!p || !spec || !Array.isArray(spec.containers)) return skip(SkipReasons.notAPod, 'object has no spec.containers');
  if (ctx.operation !== undefined && ctx.operation !== 'CREATE') return skip(SkipReasons.operation, `operation ${ctx.operation} is not mutated`);
  if (ctx.config.excludedNamespaces.includes(ctx.namespace)) return skip(SkipReasons.excludedNamespace, `namespace ${ctx.namespace} is excluded`);
  const meta = obj(p.metadata) ?? {};
  const labels = obj(meta.labels) ?? {};
  const annotations = obj(meta.annotations) ?? {};
  if (spec.hostNetwork === true) return skip(SkipReasons.hostNetwork, 'pod uses hostNetwork');
  if (annotations[Keys.mirror] !== undefined) return skip(SkipReasons.mirrorPod, 'mirror pod of a static pod');
  if (labels[Keys.podInject] === InjectValues.podOptOut) return skip(SkipReasons.optedOut, `pod label ${Keys.podInject}=${InjectValues.podOptOut}`);
  // The container, not the status annotation, marks an injected pod: a pod
  // could set the annotation on itself, and it is rewritten on injection.
  const containers = [...names(spec.containers), ...names(spec.initContainers)];
  if (containers.includes(SIDECAR_NAME)) {
    return skip(SkipReasons.alreadyInjected, `pod already has the ${SIDECAR_NAME} sidecar`);
  }
  const ephemeral = names(spec.ephemeralContainers);
  if (ephemeral.includes(SIDECAR_NAME)) return skip(SkipReasons.nameConflict, `an ephemeral container is named ${SIDECAR_NAME}`);
  const volumes = names(spec.volumes);
  const clash = Object.values(VOLUME_NAMES).find((v) => volumes.includes(v));
  if (clash) return skip(SkipReasons.nameConflict, `pod already has a volume named ${clash}`);
  return { inject: true };
}
