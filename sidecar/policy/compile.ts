/**
 * Compiles DNSPolicy documents (the platform's and the tenant's) for one pod
 * into reversed-label tries, so matching a name costs a walk over its labels,
 * not a scan of the rules (DESIGN §4, §5).
 *
 * Glob semantics (case-insensitive, trailing dot ignored):
 * - `example.com` matches that name only;
 * - `*.example.com` matches every name below example.com at any depth, not example.com itself;
 * - a `*` inside a label (`ads-*.example.com`) matches any characters within that one label, none
 *   included; it is matched in time linear in the label and the pattern, never by a regular
 *   expression (glob.ts).
 *
 * Specificity: more literal labels win; with as many, exact > in-label pattern
 * > subtree wildcard; on a tie deny wins, then log, then allow, then the rule
 * declared first. PodSelectors are resolved here against the pod's labels:
 * rules whose selector does not match the pod are left out.
 */
import type { Decision } from '../pipeline/stage.ts';
import type { DNSPolicy, DenyResponseSpec, PodSelector, PolicyRule } from '../config/policy-schema.ts';
import { EMPTY_POLICY, ISOLATION_RULE } from '../config/policy-schema.ts';
import { ipFamily } from '../net/ip.ts';
import { LabelGlob } from './glob.ts';

/** Which policy a rule or zone came from. */
export type Layer = 'platform' | 'tenant';

/** How a denied query is answered, with defaults applied. */
export interface DenyResponse {
  readonly type: 'nxdomain' | 'refused' | 'nodata' | 'sinkhole';
  /** Sinkhole addresses; empty for other types. */
  readonly addresses: readonly string[];
  /** Seconds: TTL of synthesized records and the SOA minimum. */
  readonly ttl: number;
}

/** TTL of deny answers when the policy gives none. */
export const DEFAULT_DENY_TTL = 30;

/** What {@link evaluate} returns; one frozen object per rule and glob, shared between queries. */
export interface Evaluation {
  /** The decision for the pipeline (`rule` is `default`, `platform:default`, a rule name or `platform:<name>`). */
  readonly decision: Decision;
  /** How to answer, for deny decisions. */
  readonly response?: DenyResponse;
  /** The glob that matched as written in the policy; '' for a default action. */
  readonly ruleGlob: string;
  /** Which policy decided; `default` for the tenant's default action. */
  readonly layer: Layer | 'default';
  /** The rule name as written (without the `platform:` prefix); '' for defaults. */
  readonly ruleName: string;
  /**
   * Owner of the SOA in a negative deny answer: the matched glob's base zone
   * (the labels after its last wildcard label: `com` for `*.com`); for
   * defaults, the query name's last label. Filled by {@link evaluate}.
   */
  readonly soaZone: string;
  /**
   * For a deny of service-discovery isolation (policy/isolation.ts): the
   * namespace the name belongs to, which this pod may not discover.
   */
  readonly isolatedNamespace?: string;
}

/** Tenant service-discovery isolation, compiled for one pod (platform layer only). */
export interface CompiledIsolation {
  /** The namespaces whose service and pod names the pod may look up: its tenant's, the shared ones and its own. */
  readonly visible: ReadonlySet<string>;
}

/** A compiled split zone. */
export interface CompiledSplitZone {
  readonly name: string;
  readonly layer: Layer;
  /** CNAME target (normalized), or undefined for static addresses. */
  readonly cname: string | undefined;
  /** IPv4 addresses for A answers. */
  readonly v4: readonly string[];
  /** IPv6 addresses for AAAA answers. */
  readonly v6: readonly string[];
  /** Seconds. */
  readonly ttl: number;
  /**
   * Key of the upstream group that resolves the CNAME target: `default`,
   * `cluster`, or the {@link forwardGroupKey} of a forward zone of the same layer.
   */
  readonly resolveVia: string;
}

/**
 * The key of a forward zone's upstream group: the tenant's zones by name, the
 * platform's as `platform:NAME` (as rule ids are), so a tenant zone of the
 * same name can never take over a platform zone's upstreams.
 */
export function forwardGroupKey(layer: Layer, name: string): string {
  return layer === 'platform' ? `platform:${name}` : name;
}

/** A compiled forward zone. */
export interface CompiledForwardZone {
  readonly name: string;
  readonly layer: Layer;
  /** Its group's key in the group owner ({@link forwardGroupKey}). */
  readonly group: string;
  /** Zones as normalized names. */
  readonly zones: readonly string[];
  readonly upstreams: readonly string[];
}

/** A split zone match. */
export interface SplitMatch {
  readonly zone: CompiledSplitZone;
  /** The glob that matched. */
  readonly glob: string;
  /** The glob's base zone, owner of the SOA in NODATA answers. */
  readonly soaZone: string;
}

/** A forward zone match. */
export interface ForwardMatch {
  readonly zone: CompiledForwardZone;
  /** The zone (of `zone.zones`) the name lies in. */
  readonly matched: string;
}

/** Kinds of glob, by specificity at equal literal count. */
const KIND_SUBTREE = 0;
const KIND_PATTERN = 1;
const KIND_EXACT = 2;

interface Entry<T> {
  readonly value: T;
  readonly literal: number;
  readonly kind: number;
  /** Tie-break after literal and kind: higher wins (deny > log > allow for rules). */
  readonly priority: number;
  /** Declaration order: lower wins the last tie. */
  readonly order: number;
}

interface TrieNode<T> {
  children: Map<string, TrieNode<T>> | undefined;
  /** In-label patterns at this level, each with the node below it. */
  patterns: { glob: LabelGlob; node: TrieNode<T> }[] | undefined;
  /** Entries of globs ending exactly at this node. */
  exact: Entry<T>[] | undefined;
  /** Entries of `*.<this node>`: names strictly below. */
  below: Entry<T>[] | undefined;
}

function newNode<T>(): TrieNode<T> {
  return { children: undefined, patterns: undefined, exact: undefined, below: undefined };
}

function better<T>(a: Entry<T>, b: Entry<T> | undefined): boolean {
  if (b === undefined) return true;
  if (a.literal !== b.literal) return a.literal > b.literal;
  if (a.kind !== b.kind) return a.kind > b.kind;
  if (a.priority !== b.priority) return a.priority > b.priority;
  return a.order < b.order;
}

/** Labels of a name or glob in the sidecar's form (lower case, no trailing dot). */
export function normalizeGlob(glob: string): string {
  const g = glob.trim().toLowerCase();
  return g.endsWith('.') ? g.slice(0, -1) : g;
}

/**
 * A reversed-label trie of name globs. Lookup cost grows with the name's
 * labels, not the glob count. Answers are remembered one level up, per
 * question and policy version (route/classify.ts, Router).
 */
export class NameTrie<T> {
  private readonly root: TrieNode<T> = newNode();
  private count = 0;

  /** Number of globs inserted. */
  get size(): number {
    return this.count;
  }

  /** Adds `glob` (already validated) with `value`. */
  add(glob: string, value: T, priority = 0): void {
    const labels = normalizeGlob(glob).split('.');
    const subtree = labels[0] === '*';
    const path = subtree ? labels.slice(1) : labels;
    let literal = 0;
    let pattern = false;
    let node = this.root;
    for (let i = path.length - 1; i >= 0; i--) {
      const label = path[i]!;
      if (label.includes('*')) {
        pattern = true;
        node.patterns ??= [];
        let p = node.patterns.find((x) => x.glob.source === label);
        if (!p) {
          p = { glob: new LabelGlob(label), node: newNode() };
          node.patterns.push(p);
        }
        node = p.node;
      } else {
        literal++;
        node.children ??= new Map();
        let child = node.children.get(label);
        if (!child) {
          child = newNode();
          node.children.set(label, child);
        }
        node = child;
      }
    }
    const entry: Entry<T> = { value, literal, kind: subtree ? KIND_SUBTREE : pattern ? KIND_PATTERN : KIND_EXACT, priority, order: this.count++ };
    if (subtree) (node.below ??= []).push(entry);
    else (node.exact ??= []).push(entry);
  }

  /** Adds a zone: the name itself and everything below it. */
  addZone(zone: string, value: T): void {
    const z = normalizeGlob(zone);
    this.add(z, value);
    this.add(z === '' ? '*' : `*.${z}`, value);
  }

  /** The most specific value matching `name` (sidecar form), or undefined. */
  lookup(name: string): T | undefined {
    return this.count === 0 ? undefined : this.lookupLabels(nameLabels(name));
  }

  /** {@link lookup} of a name already split by {@link nameLabels}: a caller asking several tries splits it once. */
  lookupLabels(labels: readonly string[]): T | undefined {
    if (this.count === 0) return undefined;
    return walk(this.root, labels, 0, undefined)?.value;
  }
}

/** The labels of a name in sidecar form, the root ('') having none. */
export function nameLabels(name: string): readonly string[] {
  return name === '' ? [] : name.split('.');
}

/**
 * Walks the trie along `labels` (from the last, the TLD) and returns the best
 * entry found: subtree entries on the way, exact entries at the end. In-label
 * patterns branch, so the cost is the name's labels times the patterns that
 * match at each level, never the rule count; each pattern tried costs
 * O(label + pattern) (glob.ts).
 */
function walk<T>(node: TrieNode<T>, labels: readonly string[], depth: number, best: Entry<T> | undefined): Entry<T> | undefined {
  for (;;) {
    if (node.below !== undefined && depth < labels.length) {
      for (const e of node.below) if (better(e, best)) best = e;
    }
    if (depth === labels.length) {
      if (node.exact !== undefined) for (const e of node.exact) if (better(e, best)) best = e;
      return best;
    }
    const label = labels[labels.length - 1 - depth]!;
    if (node.patterns !== undefined) {
      for (const p of node.patterns) if (p.glob.matches(label)) best = walk(p.node, labels, depth + 1, best);
    }
    const child = node.children?.get(label);
    if (child === undefined) return best;
    node = child;
    depth++;
  }
}

/** The base zone of a glob: the labels after its last wildcard label. */
export function globBaseZone(glob: string): string {
  const labels = normalizeGlob(glob).split('.');
  let i = labels.length;
  while (i > 0 && !labels[i - 1]!.includes('*')) i--;
  return labels.slice(i).join('.');
}

/** Whether a pod with `labels` matches `selector` (Kubernetes label selector semantics; empty matches all). */
export function selectorMatches(selector: PodSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (!Object.hasOwn(labels, k) || labels[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
        if (!has || !values.includes(labels[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** A rule match stored in the trie: the evaluation minus the per-query SOA zone for defaults. */
type RuleHit = Evaluation;

/** An (action, rule id) pair a policy can decide, the rule named as {@link Decision} names it. */
export interface RuleId {
  readonly action: Decision['action'];
  readonly rule: string;
}

/** The compiled policy for one pod: immutable, swapped whole on reload. */
export interface CompiledPolicy {
  readonly platformRules: NameTrie<RuleHit>;
  readonly tenantRules: NameTrie<RuleHit>;
  /** The platform's default when it is deny (final); undefined when allow. */
  readonly platformDefault: RuleHit | undefined;
  /** The tenant's default action. */
  readonly tenantDefault: RuleHit;
  readonly splitZones: NameTrie<SplitMatch>;
  readonly forwardZones: NameTrie<ForwardMatch>;
  /** Every forward zone, for building upstream groups. */
  readonly forwardZoneList: readonly CompiledForwardZone[];
  /** Every split zone. */
  readonly splitZoneList: readonly CompiledSplitZone[];
  /** The documents compiled, for /config and explain. */
  readonly tenant: DNSPolicy;
  readonly platform: DNSPolicy;
  /** The pod labels rule selectors were resolved against. */
  readonly podLabels: Readonly<Record<string, string>>;
  /** Service-discovery isolation, when the platform's policy sets `isolation: tenant`; else undefined. */
  readonly isolation: CompiledIsolation | undefined;
  /**
   * The (action, rule id) pairs of both documents: the tenant's rules by
   * name, then `default`, the platform's as `platform:NAME`, then
   * `platform:default` when it is deny, then `tenant-isolation` (deny) when
   * isolation is on. Rules whose podSelector leaves them
   * out for this pod are listed too, so every pod of a tenant declares the
   * same decision series.
   */
  readonly ruleIds: readonly RuleId[];
}

/** What {@link compilePolicy} takes. */
export interface CompileInput {
  /** The tenant's policy; the empty policy (default allow) when absent. */
  readonly tenant?: DNSPolicy;
  /** The platform's policy, evaluated first; none when absent. */
  readonly platform?: DNSPolicy;
  /** The pod's labels; {} when absent (selectors with matchLabels then leave their rules out). */
  readonly podLabels?: Readonly<Record<string, string>>;
  /** The pod's namespace, visible under service-discovery isolation; none when absent or ''. */
  readonly namespace?: string;
}

function denyResponse(spec: DenyResponseSpec | undefined, fallback: DenyResponseSpec | undefined): DenyResponse {
  const r = spec ?? fallback;
  return Object.freeze({
    type: r?.type ?? 'nxdomain',
    addresses: Object.freeze([...(r?.type === 'sinkhole' ? (r.addresses ?? []) : [])]),
    ttl: r?.ttl ?? DEFAULT_DENY_TTL,
  });
}

const ACTION_PRIORITY = { allow: 0, log: 1, deny: 2 } as const;

function ruleHit(rule: PolicyRule, glob: string, layer: Layer, defaultResponse: DenyResponseSpec | undefined): RuleHit {
  const id = layer === 'platform' ? `platform:${rule.name}` : rule.name;
  const log = rule.action === 'log' || (rule.log ?? rule.action === 'deny');
  return Object.freeze({
    decision: Object.freeze({ action: rule.action, rule: id, log }),
    response: rule.action === 'deny' ? denyResponse(rule.response, defaultResponse) : undefined,
    ruleGlob: glob,
    layer,
    ruleName: rule.name,
    soaZone: globBaseZone(glob),
  });
}

function defaultHit(p: DNSPolicy, layer: Layer): RuleHit {
  const action = p.spec.defaultAction;
  return Object.freeze({
    decision: Object.freeze({ action, rule: layer === 'platform' ? 'platform:default' : 'default', log: action === 'deny' }),
    response: action === 'deny' ? denyResponse(p.spec.defaultResponse, undefined) : undefined,
    ruleGlob: '',
    layer: layer === 'platform' ? 'platform' : 'default',
    ruleName: '',
    soaZone: '',
  });
}

function addRules(trie: NameTrie<RuleHit>, p: DNSPolicy, layer: Layer, labels: Readonly<Record<string, string>>): void {
  for (const rule of p.spec.rules) {
    if (!selectorMatches(rule.podSelector, labels)) continue;
    for (const glob of rule.names) trie.add(glob, ruleHit(rule, glob, layer, p.spec.defaultResponse), ACTION_PRIORITY[rule.action]);
  }
}

function ruleIds(tenant: DNSPolicy, platform: DNSPolicy, isolation: CompiledIsolation | undefined): readonly RuleId[] {
  const ids: RuleId[] = [];
  const add = (action: Decision['action'], rule: string) => ids.push(Object.freeze({ action, rule }));
  for (const rule of tenant.spec.rules) add(rule.action, rule.name);
  add(tenant.spec.defaultAction, 'default');
  for (const rule of platform.spec.rules) add(rule.action, `platform:${rule.name}`);
  if (platform.spec.defaultAction === 'deny') add('deny', 'platform:default');
  if (isolation !== undefined) add('deny', ISOLATION_RULE);
  return Object.freeze(ids);
}

/** The platform's service-discovery isolation for a pod in `namespace`, or undefined when it is off. */
function compileIsolation(platform: DNSPolicy, namespace: string | undefined): CompiledIsolation | undefined {
  const sd = platform.spec.serviceDiscovery;
  if (sd === undefined || sd.isolation !== 'tenant') return undefined;
  const visible = new Set([...sd.namespaces, ...sd.sharedNamespaces]);
  if (namespace) visible.add(namespace);
  return Object.freeze({ visible });
}

/** Compiles the platform's and the tenant's policies for a pod with `podLabels`. */
export function compilePolicy(input: CompileInput = {}): CompiledPolicy {
  const tenant = input.tenant ?? EMPTY_POLICY;
  const platform = input.platform ?? EMPTY_POLICY;
  const podLabels = Object.freeze({ ...(input.podLabels ?? {}) });
  // The tenant's document never isolates: only the platform may (the loader refuses it in a tenant's file).
  const isolation = compileIsolation(platform, input.namespace);
  const platformRules = new NameTrie<RuleHit>();
  const tenantRules = new NameTrie<RuleHit>();
  addRules(platformRules, platform, 'platform', podLabels);
  addRules(tenantRules, tenant, 'tenant', podLabels);

  const splitZones = new NameTrie<SplitMatch>();
  const forwardZones = new NameTrie<ForwardMatch>();
  const splitZoneList: CompiledSplitZone[] = [];
  const forwardZoneList: CompiledForwardZone[] = [];
  // Platform zones first: on equal specificity the one declared first wins.
  const platformZones: string[] = [];
  for (const [p, layer] of [[platform, 'platform'], [tenant, 'tenant']] as const) {
    for (const f of p.spec.forwardZones) {
      // A tenant zone equal to or below a platform zone is left out: the platform's forwarding cannot be
      // shadowed (validation refuses such a tenant file; this holds when a platform change makes one).
      const zones = f.zones.map(normalizeGlob).filter((z) => layer === 'platform' || !platformZones.some((pz) => z === pz || z.endsWith(`.${pz}`)));
      if (layer === 'platform') platformZones.push(...zones);
      const zone: CompiledForwardZone = Object.freeze({
        name: f.name,
        layer,
        group: forwardGroupKey(layer, f.name),
        zones: Object.freeze(zones),
        upstreams: Object.freeze([...f.upstreams]),
      });
      forwardZoneList.push(zone);
      for (const z of zone.zones) forwardZones.addZone(z, Object.freeze({ zone, matched: z }));
    }
    for (const s of p.spec.splitZones) {
      const addrs = s.addresses ?? [];
      const zone: CompiledSplitZone = Object.freeze({
        name: s.name,
        layer,
        cname: s.cname === undefined ? undefined : normalizeGlob(s.cname),
        v4: Object.freeze(addrs.filter((a) => ipFamily(a) === 4)),
        v6: Object.freeze(addrs.filter((a) => ipFamily(a) === 6)),
        ttl: s.ttl,
        resolveVia: s.resolveVia === 'default' || s.resolveVia === 'cluster' ? s.resolveVia : forwardGroupKey(layer, s.resolveVia),
      });
      splitZoneList.push(zone);
      for (const g of s.names) splitZones.add(g, Object.freeze({ zone, glob: g, soaZone: globBaseZone(g) }));
    }
  }
  return Object.freeze({
    platformRules,
    tenantRules,
    platformDefault: platform.spec.defaultAction === 'deny' ? defaultHit(platform, 'platform') : undefined,
    tenantDefault: defaultHit(tenant, 'tenant'),
    splitZones,
    forwardZones,
    forwardZoneList: Object.freeze(forwardZoneList),
    splitZoneList: Object.freeze(splitZoneList),
    tenant,
    platform,
    podLabels,
    isolation,
    ruleIds: ruleIds(tenant, platform, isolation),
  });
}

/** Holds the current compiled policy; the manager swaps `current` whole on reload, stages read it per query. */
export interface PolicyHolder {
  readonly current: CompiledPolicy;
}
