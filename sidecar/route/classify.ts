/**
 * The one classification of a question (DESIGN §3): which policy layer
 * decides the name and where it is answered. Pure: no I/O, no clock. The
 * pipeline routes on it and `policy explain` renders it, so the two cannot
 * disagree.
 *
 * Precedence, first match wins:
 * 0. the platform's service-discovery isolation (policy/isolation.ts): a name of a namespace
 *    the pod may not discover is denied by rule `tenant-isolation`, whatever any rule says;
 * 1. the policy (platform layer first, see policy/evaluate.ts): a deny is the answer;
 * 2. a split zone: answered locally (static addresses, or a CNAME to a target resolved upstream);
 * 3. the cluster domain: the cluster group (kube-dns), whatever forward zone a policy has below it
 *    (the validation refuses one);
 * 4. a forward zone: that zone's group (a corporate reverse zone such as `10.in-addr.arpa` is more
 *    specific than the cluster's reverse zones, and wins over them);
 * 5. the cluster reverse zones: the cluster group;
 * 6. everything else: the default group.
 */
import { isReverseZone } from '../config/cluster.ts';
import { findZone } from '../dns/wire.ts';
import { nameLabels, type CompiledPolicy, type Evaluation, type ForwardMatch, type PolicyHolder, type SplitMatch } from '../policy/compile.ts';
import { evaluate } from '../policy/evaluate.ts';
import { isolationDeny } from '../policy/isolation.ts';

/** The name of the group of the cluster zone. */
export const CLUSTER_GROUP = 'cluster';
/** The name of the default group. */
export const DEFAULT_GROUP = 'default';

/** A denied name: the policy answers it. */
export interface DenyRoute {
  readonly kind: 'deny';
  /** The deciding rule, its response and the SOA zone of negative answers. */
  readonly evaluation: Evaluation;
}

/** A name in a split zone: answered locally. */
export interface SplitRoute {
  readonly kind: 'split';
  readonly evaluation: Evaluation;
  readonly split: SplitMatch;
}

/** A name answered by an upstream group. */
export interface UpstreamRoute {
  /** cluster: the cluster zone; forward: a forward zone of the policy; default: everything else. */
  readonly kind: 'cluster' | 'forward' | 'default';
  readonly evaluation: Evaluation;
  /** The group's key in the group owner (upstream/groups.ts): `cluster`, `default` or the forward zone's (`platform:NAME` for the platform's). */
  readonly group: string;
  /** The zone the name lies in (cluster or forward zone); '' for the default group. */
  readonly zone: string;
  /** The forward zone, for `forward` routes. */
  readonly forward?: ForwardMatch;
}

/** Where one question goes. One frozen object per name and policy version, shared between queries. */
export type Route = DenyRoute | SplitRoute | UpstreamRoute;

/** Classifies `qname` (sidecar form: lower case, no trailing dot) under `policy` and the cluster zones. */
export function classify(policy: CompiledPolicy, clusterZones: readonly string[], qname: string): Route {
  const cluster = findZone(qname, clusterZones);
  const inDomain = cluster !== undefined && !isReverseZone(cluster);
  const isolated = inDomain && policy.isolation !== undefined ? isolationDeny(policy.isolation, cluster, qname) : undefined;
  if (isolated !== undefined) return Object.freeze({ kind: 'deny', evaluation: isolated });
  // Split once for the four tries.
  const labels = nameLabels(qname);
  const evaluation = evaluate(policy, qname, labels);
  if (evaluation.decision.action === 'deny') return Object.freeze({ kind: 'deny', evaluation });
  const split = policy.splitZones.lookupLabels(labels);
  if (split !== undefined) return Object.freeze({ kind: 'split', evaluation, split });
  if (inDomain) return Object.freeze({ kind: 'cluster', evaluation, group: CLUSTER_GROUP, zone: cluster });
  const forward = policy.forwardZones.lookupLabels(labels);
  if (forward !== undefined) return Object.freeze({ kind: 'forward', evaluation, group: forward.zone.group, zone: forward.matched, forward });
  if (cluster !== undefined) return Object.freeze({ kind: 'cluster', evaluation, group: CLUSTER_GROUP, zone: cluster });
  return Object.freeze({ kind: 'default', evaluation, group: DEFAULT_GROUP, zone: '' });
}

/** The evaluation of the sidecar's own queries: they are not client queries and no rule decides them. */
const INTERNAL: Evaluation = Object.freeze({
  decision: Object.freeze({ action: 'allow', rule: 'internal', log: false }),
  ruleGlob: '',
  layer: 'default',
  ruleName: '',
  soaZone: '',
});

/**
 * The route of one of the sidecar's own queries (a split-zone CNAME target)
 * sent through the group `group` (`default`, `cluster` or a forward zone's
 * name) whatever its name would be routed to.
 */
export function internalRoute(group: string): UpstreamRoute {
  const kind = group === DEFAULT_GROUP ? 'default' : group === CLUSTER_GROUP ? 'cluster' : 'forward';
  return Object.freeze({ kind, evaluation: INTERNAL, group, zone: '' });
}

/** Most names a {@link Router} remembers the route of; it forgets them all when full. */
export const ROUTE_MEMO_NAMES = 2048;

/**
 * Classifies client questions under the current policy, remembering the
 * route of the last names asked (a pod asks for the same few names again
 * and again: one Map lookup instead of four trie walks,
 * test/bench/policy-trie.bench.ts). The memory belongs to one policy
 * version: when the holder's policy is replaced (a reload), it starts over.
 */
export class Router {
  readonly #holder: PolicyHolder;
  readonly #clusterZones: readonly string[];
  readonly #memoNames: number;
  #policy: CompiledPolicy | undefined;
  #memo = new Map<string, Route>();

  /**
   * @param holder where the current compiled policy lives (swapped whole on reload)
   * @param clusterZones the cluster domain and reverse zones, sidecar form
   * @param memoNames how many names to remember (0: none, every question is classified anew)
   */
  constructor(holder: PolicyHolder, clusterZones: readonly string[], memoNames = ROUTE_MEMO_NAMES) {
    this.#holder = holder;
    this.#clusterZones = Object.freeze([...clusterZones]);
    this.#memoNames = memoNames;
  }

  /** The cluster zones this router sends to the cluster group. */
  get clusterZones(): readonly string[] {
    return this.#clusterZones;
  }

  /** The route of `qname` under the policy serving now. */
  route(qname: string): Route {
    const policy = this.#holder.current;
    if (policy !== this.#policy) {
      this.#policy = policy;
      this.#memo = new Map();
    }
    const known = this.#memo.get(qname);
    if (known !== undefined) return known;
    const route = classify(policy, this.#clusterZones, qname);
    if (this.#memoNames > 0) {
      // A new Map rather than clear(): a long-lived Map would grow its table again in the old generation (runtime/tables.ts).
      if (this.#memo.size >= this.#memoNames) this.#memo = new Map();
      this.#memo.set(qname, route);
    }
    return route;
  }
}
