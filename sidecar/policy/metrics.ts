/**
 * The policy's metrics: decisions by action and deciding rule (counted by
 * the `metrics` stage from each query's `ctx.decision`, once the query is
 * answered), and policy reloads. The rules of a compiled policy
 * (`CompiledPolicy.ruleIds`) get their decision series at 0 when it starts
 * serving, and the series of rules it no longer has are removed then: the
 * `rule` label holds the rules of the policy serving now, bounded by the
 * policy's cap on rules (POLICY_CAPS).
 */
import type { Registry } from 'prom-client';
import { Gauge, SlotCounter, scrapeGauge, type MetricsDetail } from '../metrics/registry.ts';
import type { Decision } from '../pipeline/stage.ts';
import type { RuleId } from './compile.ts';

/** `action` label values of policy decisions. */
export const ACTIONS = ['allow', 'deny', 'log'] as const;
const ACTION_SLOT: Readonly<Record<Decision['action'], number>> = { allow: 0, deny: 1, log: 2 };

/** The result label of a policy reload. */
export type ReloadOutcome = 'success' | 'failure';

/** The policy's metrics, declared in `registry`. */
export class PolicyMetrics {
  readonly decisions: SlotCounter;
  readonly reloads: SlotCounter;

  /** rule → slot per action (-1: not created yet). */
  readonly #decisionSlots = new Map<string, Int32Array>();
  /**
   * The rules of the policy serving now, each with a bit per action it
   * decides (1 << ACTION_SLOT); undefined until {@link declareRules}: until
   * then every (action, rule) gets its series on first use.
   */
  #declared: ReadonlyMap<string, number> | undefined;
  readonly #reloadSlots: Readonly<Record<ReloadOutcome, number>>;
  readonly #reloadOk: Gauge;
  #lastReloadSuccess: (() => number) | undefined;
  /** At the `basic` level: the slot of each action (no `rule` label); undefined at `full`. */
  readonly #actionSlots: Int32Array | undefined;

  /** `detail`: `full` (default) labels decisions by rule too; `basic` by action only. */
  constructor(registry: Registry, detail: MetricsDetail = 'full') {
    if (detail === 'full') {
      this.decisions = new SlotCounter(registry, 'tenant_dns_policy_decisions_total', 'Policy decisions for client queries, by action (allow, deny, log) and deciding rule name (default: the default action; platform:NAME: a platform rule; tenant-isolation: the platform service-discovery isolation).', ['action', 'rule']);
    } else {
      this.decisions = new SlotCounter(registry, 'tenant_dns_policy_decisions_total', 'Policy decisions for client queries, by action (allow, deny, log; by deciding rule with --metrics-detail full).', ['action']);
      this.#actionSlots = Int32Array.from(ACTIONS.map((action) => this.decisions.slot({ action })));
    }
    this.reloads = new SlotCounter(registry, 'tenant_dns_policy_reloads_total', 'Policy reload attempts (file change or SIGHUP), by result (success, failure).', ['result']);
    this.#reloadSlots = { success: this.reloads.slot({ result: 'success' }), failure: this.reloads.slot({ result: 'failure' }) };
    this.#reloadOk = new Gauge({
      name: 'tenant_dns_policy_last_reload_successful',
      help: 'Whether the last policy reload attempt succeeded (1) or failed and the previous policy still serves (0).',
      registers: [registry],
    });
    this.#reloadOk.set(1);
    scrapeGauge(registry, 'tenant_dns_policy_last_reload_success_timestamp_seconds', 'Unix time in seconds when the policy serving now was loaded.', () => (this.#lastReloadSuccess?.() ?? 0) / 1000);
  }

  /** Sets where the timestamp gauge reads when the policy serving now was loaded, ms since the epoch (`PolicyManager#lastGoodAt`). */
  bindLastReloadSuccess(read: () => number): void {
    this.#lastReloadSuccess = read;
  }

  /**
   * Counts a policy decision. Hot path: one map lookup by rule name. A
   * decision by a rule the serving policy no longer has (a query decided
   * before a reload removed it, answered after) is not counted: its series
   * went with the reload.
   */
  decision(action: Decision['action'], rule: string): void {
    if (this.#actionSlots !== undefined) {
      this.decisions.add(this.#actionSlots[ACTION_SLOT[action]]!);
      return;
    }
    const slot = this.#decisionSlot(action, rule);
    if (slot >= 0) this.decisions.add(slot);
  }

  /**
   * Makes the decision series those of `rules`, the (action, rule) pairs of
   * the policy that starts serving: each is created at 0, so that the first
   * decision of a rule is seen as an increase by rate() and increase() (a
   * counter that appears with a value hides its first increments), and the
   * series of every other (action, rule) are removed: a rule the policy no
   * longer has, or no longer has with that action. Nothing at the `basic`
   * level (its series, one per action, always exist).
   */
  declareRules(rules: Iterable<RuleId>): void {
    if (this.#actionSlots !== undefined) return;
    const declared = new Map<string, number>();
    for (const { action, rule } of rules) declared.set(rule, (declared.get(rule) ?? 0) | (1 << ACTION_SLOT[action]));
    this.#declared = declared;
    for (const [rule, slots] of this.#decisionSlots) {
      slots.forEach((slot, a) => {
        if (slot < 0 || this.#isDeclared(a, rule)) return;
        this.decisions.remove(slot);
        slots[a] = -1;
      });
      if (slots.every((slot) => slot < 0)) this.#decisionSlots.delete(rule);
    }
    for (const [rule, mask] of declared) {
      for (let a = 0; a < ACTIONS.length; a++) if ((mask & (1 << a)) !== 0) this.#decisionSlot(ACTIONS[a]!, rule);
    }
  }

  /** Counts a policy reload attempt. */
  reload(result: ReloadOutcome): void {
    this.reloads.add(this.#reloadSlots[result]);
    this.#reloadOk.set(result === 'success' ? 1 : 0);
  }

  /** The slot of (`action`, `rule`), created on first use; -1 when the serving policy does not decide so. */
  #decisionSlot(action: Decision['action'], rule: string): number {
    const a = ACTION_SLOT[action];
    const slots = this.#decisionSlots.get(rule);
    const slot = slots === undefined ? -1 : slots[a]!;
    if (slot >= 0) return slot;
    if (!this.#isDeclared(a, rule)) return -1;
    const created = this.decisions.slot({ action, rule });
    if (slots === undefined) this.#decisionSlots.set(rule, Int32Array.from({ length: ACTIONS.length }, (_, i) => (i === a ? created : -1)));
    else slots[a] = created;
    return created;
  }

  /** Whether (`action`, `rule`) may have a series: declared by the serving policy, or nothing declared yet. */
  #isDeclared(a: number, rule: string): boolean {
    return this.#declared === undefined || ((this.#declared.get(rule) ?? 0) & (1 << a)) !== 0;
  }
}
