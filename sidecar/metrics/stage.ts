/**
 * The `metrics` stage, outermost in the pipeline (STAGE_ORDER): counts each
 * client query, awaits the rest of the pipeline, then counts the answer by
 * rcode and source, the policy decision, the time taken, and hands the query
 * to the query log. The composer turns errors of inner stages into SERVFAIL
 * outcomes before they reach this stage, so every query is counted once.
 *
 * Per query it does typed-array writes, one map lookup (the rule name) and
 * one `performance.now()`; nothing is allocated but the async function's promise.
 */
import { performance } from 'node:perf_hooks';
import type { Next, Outcome, QueryContext, Stage } from '../pipeline/stage.ts';
import type { QueryLog } from './querylog.ts';
import type { SidecarMetrics } from './registry.ts';

/** Creates the `metrics` stage over `metrics`, writing to `queryLog` when given. */
export function createMetricsStage(metrics: SidecarMetrics, queryLog?: QueryLog): Stage {
  const log = queryLog !== undefined && queryLog.mode !== 'none' ? queryLog : undefined;
  return {
    name: 'metrics',
    async handle(ctx: QueryContext, next: Next): Promise<Outcome> {
      metrics.request(ctx.proto, ctx.query.qtype);
      metrics.inflight++;
      let outcome: Outcome;
      try {
        outcome = await next(ctx);
      } finally {
        metrics.inflight--;
      }
      const seconds = (performance.now() - ctx.startedAt) / 1000;
      metrics.response(outcome.source, outcome.rcode, seconds);
      const d = ctx.decision;
      if (d !== undefined) metrics.decision(d.action, d.rule);
      if (log !== undefined) log.observe(ctx, outcome, seconds);
      return outcome;
    },
  };
}
