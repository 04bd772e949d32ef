/**
 * Whether a pod is subject to injection at all: a pure function of the raw
 * pod and its namespace, re-checking in process what the webhook's selectors
 * already filter (they can be edited, and `tenant-dns inject` has no
 * selectors). The answer is inject (go on: mutate.ts then compares what the
 * pod already carries with the injection), skip, or deny; skips and denials
 * carry a stable reason, used in warnings, messages and metric labels.
 */
import type { InjectorConfig } from './config-schema.ts';
import { arr, obj } from './json.ts';
import { InjectValues, Keys, SIDECAR_NAME } from './names.ts';

/** Why a pod is admitted without the injector adding the sidecar. Stable: metric label values. */
export const SkipReasons = {
  /** Not a Pod (or no spec.containers), or a subresource. */
  notAPod: 'not-a-pod',
  /** The admission operation is not one this webhook checks (mutate: CREATE; validate: CREATE and UPDATE). */
  operation: 'operation',
  /** The namespace is excluded (kube-system, …). */
  excludedNamespace: 'excluded-namespace',
  /** A hostNetwork pod where the config allows them (`hostNetworkPods: allow`). */
  hostNetwork: 'host-network',
  /** A mirror pod of a static pod: the API server cannot change it. */
  mirrorPod: 'mirror-pod',
  /** The opt-out label where the platform allows it. */
  optedOut: 'opted-out',
  /** The pod carries exactly the injection: a second pass changes nothing. */
  alreadyInjected: 'already-injected',
  /** /validate, UPDATE: the pod has no sidecar from before (created before injection, or exempt); it cannot gain one now. */
  notInjected: 'not-injected',
  /** /validate: a ConfigMap that is not one of the two the controller renders (the webhook's matchConditions normally keep them away). */
  notRendered: 'not-rendered',
} as const;

/** One of {@link SkipReasons}. */
export type SkipReason = (typeof SkipReasons)[keyof typeof SkipReasons];

/** Why a pod is refused. Stable: metric label values and the `(reason)` in messages. */
export const DenyReasons = {
  /** A hostNetwork pod where the config denies them (the default). */
  hostNetwork: 'host-network',
  /** The opt-out label where the platform does not allow it. */
  optOutNotAllowed: 'opt-out-not-allowed',
  /** The pod's tenant label names another tenant. */
  tenantLabel: 'tenant-label',
  /** A volume or ephemeral container uses a name the injector needs. */
  nameConflict: 'name-conflict',
  /** A `tenant-dns` container that is not exactly the injector's (or not where the injector puts it). */
  foreignSidecar: 'foreign-sidecar',
  /** The sidecar is exact, but its volumes, the DNS settings or the port sysctl are not what the injector writes. */
  injectionMismatch: 'injection-mismatch',
  /** The pod names its own nameservers. */
  ownNameservers: 'own-nameservers',
  /**
   * With DNS capture: a container of the pod's own could get around it (it runs as the sidecar's uid, which
   * capture leaves alone, or asks for NET_ADMIN/NET_RAW, with which it could remove the rules).
   */
  captureEscape: 'capture-escape',
  /** /validate, CREATE: the pod has no sidecar (the mutating webhook did not run). */
  notInjected: 'not-injected',
  /** /validate, UPDATE: the sidecar container or its volumes changed, or were added or removed. */
  sidecarChanged: 'sidecar-changed',
  /** /validate, UPDATE: dnsPolicy or dnsConfig changed. */
  dnsChanged: 'dns-changed',
  /** /validate, UPDATE: the tenant label changed, appeared or went away. */
  tenantLabelChanged: 'tenant-label-changed',
  /** /validate: a create, update or delete of a rendered policy ConfigMap by anyone but the controller (or, for delete, the namespace controller). */
  renderedConfig: 'rendered-config',
} as const;

/** One of {@link DenyReasons}. */
export type DenyReason = (typeof DenyReasons)[keyof typeof DenyReasons];

/** The outcome of {@link decide} and of the whole injection ({@link mutatePod}). */
export type Decision =
  | { readonly outcome: 'inject' }
  | { readonly outcome: 'skip'; readonly reason: SkipReason; readonly detail: string }
  | { readonly outcome: 'deny'; readonly reason: DenyReason; readonly detail: string };

/** What {@link decide} needs besides the pod. */
export interface DecideContext {
  readonly namespace: string;
  /** The tenant the platform decided; undefined: the pod's tenant label is not checked. */
  readonly tenant?: string;
  /** The admission operation; undefined offline. */
  readonly operation?: string;
  /** The namespace carries `tenant-dns.io/allow-opt-out: "true"`. */
  readonly allowOptOut?: boolean;
  readonly config: Pick<InjectorConfig, 'excludedNamespaces' | 'optOut' | 'hostNetworkPods'>;
}

/** The names in a list of containers or volumes. */
export function namesOf(list: unknown): string[] {
  return arr(list).map((c) => obj(c)?.name).filter((n): n is string => typeof n === 'string');
}

/** A skip decision. */
export function skip(reason: SkipReason, detail: string): Decision {
  return { outcome: 'skip', reason, detail };
}

/** A deny decision. */
export function deny(reason: DenyReason, detail: string): Decision {
  return { outcome: 'deny', reason, detail };
}

/** Decides whether `pod` (raw JSON) is subject to injection. Pure. */
export function decide(pod: unknown, ctx: DecideContext): Decision {
  const p = obj(pod);
  const spec = obj(p?.spec);
  if (!p || !spec || !Array.isArray(spec.containers)) return skip(SkipReasons.notAPod, 'object has no spec.containers');
  if (ctx.operation !== undefined && ctx.operation !== 'CREATE') return skip(SkipReasons.operation, `operation ${ctx.operation} is not mutated`);
  if (ctx.config.excludedNamespaces.includes(ctx.namespace)) return skip(SkipReasons.excludedNamespace, `namespace ${ctx.namespace} is excluded`);
  const meta = obj(p.metadata) ?? {};
  const labels = obj(meta.labels) ?? {};
  const annotations = obj(meta.annotations) ?? {};
  if (annotations[Keys.mirror] !== undefined) return skip(SkipReasons.mirrorPod, 'mirror pod of a static pod');
  const claimed = labels[Keys.podTenant];
  if (ctx.tenant !== undefined && claimed !== undefined && claimed !== ctx.tenant) {
    return deny(DenyReasons.tenantLabel, `label ${Keys.podTenant}=${String(claimed).slice(0, 63)} names another tenant; the pod's tenant is ${ctx.tenant}`);
  }
  if (spec.hostNetwork === true) {
    if (ctx.config.hostNetworkPods === 'allow') return skip(SkipReasons.hostNetwork, 'pod uses hostNetwork');
    return deny(DenyReasons.hostNetwork, "hostNetwork pods share the node's 127.0.0.1 and cannot have the sidecar; not allowed here (hostNetworkPods: deny)");
  }
  if (labels[Keys.podInject] === InjectValues.podOptOut) {
    const label = `pod label ${Keys.podInject}=${InjectValues.podOptOut}`;
    if (ctx.config.optOut === 'allow' || ctx.allowOptOut === true) return skip(SkipReasons.optedOut, label);
    return deny(DenyReasons.optOutNotAllowed, `${label}: opting out is not allowed in namespace ${ctx.namespace} (the platform allows it with optOut: allow or the namespace label ${Keys.namespaceAllowOptOut}=${InjectValues.namespaceAllowOptOut})`);
  }
  if (namesOf(spec.ephemeralContainers).includes(SIDECAR_NAME)) return deny(DenyReasons.nameConflict, `an ephemeral container is named ${SIDECAR_NAME}`);
  return { outcome: 'inject' };
}
