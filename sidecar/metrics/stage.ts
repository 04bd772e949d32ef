/**
 * The `metrics` stage, outermost in the pipeline (STAGE_ORDER): counts each
 * client query, takes the rest of the pipeline's answer (at once or when it
 * settles), then counts the answer by
 * rcode and source, the policy decision, the time taken, and hands the query
 * to the query log. The composer turns errors of inner stages into SERVFAIL
 * outcomes before they reach this stage, so every query is counted once.
 *
 * Per query it does typed-array writes, one map lookup (the rule name) and
 * one `monotonicMs()`; a query answered synchronously (a cache hit)
 * allocates nothing here, one still waiting for an upstream a `then`.
 */
import { monotonicMs } from '../runtime/clock.ts';
import { after } from '../pipeline/deferred.ts';
import { isPending, type Answer, type Next, type Outcome, type QueryContext, type Stage } from '../pipeline/stage.ts';
import type { ListenerMetrics } from '../listener/metrics.ts';
import type { PolicyMetrics } from '../policy/metrics.ts';
import type { QueryMetrics } from './metrics.ts';
import type { QueryLog } from './querylog.ts';

/** The metrics the stage counts into: its own, and the policy's decisions (the policy stage sets `ctx.decision`). */
export interface MetricsStageTargets {
  readonly query: QueryMetrics;
  readonly policy: Pick<PolicyMetrics, 'decision'>;
  /** Messages the listener rejected as malformed. */
  readonly listener: Pick<ListenerMetrics, 'rejectedRequest'>;
}

/** The `metrics` stage, and the observer of the outcomes the listener makes without the pipeline. */
export interface MetricsStage extends Stage {
  /**
   * Counts an outcome the listener made itself, as the stage counts the
   * pipeline's: a malformed message under `rejected_requests_total` (it has
   * no question to count by type), anything else (a drop or SERVFAIL over
   * the in-flight cap, a forwarding loop) as a request and its response.
   */
  observe(ctx: QueryContext, outcome: Outcome): void;
}

/** Creates the `metrics` stage over `metrics`, writing to `queryLog` when given. */
export function createMetricsStage(metrics: MetricsStageTargets, queryLog?: QueryLog): MetricsStage {
  const { query, policy, listener } = metrics;
  const log = queryLog !== undefined && queryLog.mode !== 'none' ? queryLog : undefined;
  /** Counts an answered query; returns the outcome unchanged. */
  const done = (ctx: QueryContext, outcome: Outcome): Outcome => {
    query.inflight--;
    return counted(ctx, outcome);
  };
  const counted = (ctx: QueryContext, outcome: Outcome): Outcome => {
    const seconds = (monotonicMs() - ctx.startedAt) / 1000;
    query.response(outcome.source, outcome.rcode, seconds);
    const d = ctx.decision;
    if (d !== undefined) policy.decision(d.action, d.rule);
    if (log !== undefined) log.observe(ctx, outcome, seconds);
    return outcome;
  };
  const failed = (err: unknown): never => {
    query.inflight--;
    throw err;
  };
  const failedAfter = (_ctx: QueryContext, err: unknown): never => failed(err);
  return {
    name: 'metrics',
    handle(ctx: QueryContext, next: Next): Answer {
      query.request(ctx.proto, ctx.query.qtype);
      query.inflight++;
      let result: Answer;
      try {
        result = next(ctx);
      } catch (err) {
        return failed(err);
      }
      return isPending(result) ? after(result, ctx, done, failedAfter) : done(ctx, result);
    },
    observe(ctx: QueryContext, outcome: Outcome): void {
      if (outcome.source === 'listener' && outcome.reason === 'malformed') {
        listener.rejectedRequest(ctx.proto, outcome.rcode);
        if (log !== undefined) log.observe(ctx, outcome, 0);
        return;
      }
      query.request(ctx.proto, ctx.query.qtype);
      counted(ctx, outcome);
    },
  };
}
