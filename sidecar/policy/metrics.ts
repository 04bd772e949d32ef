/**
 * The policy's metrics: decisions by action and deciding rule (counted by
 * the `metrics` stage from each query's `ctx.decision`, once the query is
 * answered), and policy reloads. The rules of a compiled policy
 * (`CompiledPolicy.ruleIds`) get their decision series at 0 when it starts
 * serving.
 */
import type { Registry } from 'prom-client';
import { Gauge, SlotCounter, scrapeGauge } from '../metrics/registry.ts';
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
  readonly #reloadSlots: Readonly<Record<ReloadOutcome, number>>;
  readonly #reloadOk: Gauge;
  #lastReloadSuccess: (() => number) | undefined;

  constructor(registry: Registry) {
    this.decisions = new SlotCounter(registry, 'tenant_dns_policy_decisions_total', 'Policy decisions for client queries, by action (allow, deny, log) and deciding rule name (default: the default action; platform:NAME: a platform rule).', ['action', 'rule']);
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

  /** Counts a policy decision. Hot path: one map lookup by rule name. */
  decision(action: Decision['action'], rule: string): void {
    this.decisions.add(this.#decisionSlot(action, rule));
  }

  /**
   * Creates the decision series of the policy's rules at 0, so that the
   * first decision of a rule is seen as an increase by rate() and increase()
   * (a counter that appears with a value hides its first increments).
   */
  declareRules(rules: Iterable<RuleId>): void {
    for (const { action, rule } of rules) this.#decisionSlot(action, rule);
  }

  /** Counts a policy reload attempt. */
  reload(result: ReloadOutcome): void {
    this.reloads.add(this.#reloadSlots[result]);
    this.#reloadOk.set(result === 'success' ? 1 : 0);
  }

  /** The slot of (`action`, `rule`), created on first use. */
  #decisionSlot(action: Decision['action'], rule: string): number {
    let slots = this.#decisionSlots.get(rule);
    if (slots === undefined) this.#decisionSlots.set(rule, (slots = new Int32Array(ACTIONS.length).fill(-1)));
    const a = ACTION_SLOT[action];
    let slot = slots[a]!;
    if (slot < 0) slot = slots[a] = this.decisions.slot({ action, rule });
    return slot;
  }
}
