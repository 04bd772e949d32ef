/**
 * Composes stages into one handler. The composer is the only place a
 * leftover error becomes SERVFAIL; it counts and logs it once.
 */
import { RCode } from '../dns/constants.ts';
import { errorReply } from '../dns/reply.ts';
import { errorCode } from '../errors.ts';
import { STAGE_ORDER, type StageName } from './order.ts';
import { isPending, type Answer, type Next, type Outcome, type QueryContext, type Stage } from './stage.ts';

/** Called once for every error a stage let escape. */
export type ErrorSink = (err: unknown, ctx: QueryContext, stage: string) => void;

/**
 * Chains `stages` in the order of {@link STAGE_ORDER} (stages missing from
 * the map are switched off). The innermost `next` throws: the last stage
 * must answer. An error escaping a stage becomes a SERVFAIL outcome with the
 * error's code as its reason, reported to `onError`.
 */
export function compose(stages: Partial<Record<StageName, Stage>>, onError: ErrorSink): Next {
  const ordered: Stage[] = [];
  for (const name of STAGE_ORDER) {
    const stage = stages[name];
    if (stage) ordered.push(stage);
  }
  for (const name of Object.keys(stages)) {
    if (!(STAGE_ORDER as readonly string[]).includes(name)) throw new Error(`unknown stage "${name}": add it to STAGE_ORDER`);
  }
  const end: Next = () => {
    throw new Error('no stage answered the query');
  };
  const fail = (err: unknown, ctx: QueryContext, where: string): Outcome => {
    onError(err, ctx, where);
    return servfail(ctx, errorCode(err));
  };
  // A synchronous answer passes straight through: no closure, no promise.
  const guard = (next: Next, where: string): Next => (ctx) => {
    let result: Answer;
    try {
      result = next(ctx);
    } catch (err) {
      return fail(err, ctx, where);
    }
    return isPending(result) ? result.catch((err: unknown) => fail(err, ctx, where)) : result;
  };
  // Errors are caught in two places only: just inside the outermost stage (so
  // it, usually metrics, sees the SERVFAIL like any other outcome) and around
  // the whole chain (for errors of the outermost stage itself).
  let chain: Next = end;
  for (let i = ordered.length - 1; i >= 0; i--) {
    const stage = ordered[i]!;
    const inner = i === 0 && ordered.length > 1 ? guard(chain, ordered[1]!.name) : chain;
    chain = (ctx) => stage.handle(ctx, inner);
  }
  return guard(chain, ordered[0]?.name ?? 'pipeline');
}

/** A SERVFAIL outcome for `ctx`, source local. */
export function servfail(ctx: QueryContext, reason: string): Outcome {
  return {
    kind: 'reply',
    body: errorReply(ctx.wire, RCode.SERVFAIL, ctx.query.questionEnd),
    rcode: RCode.SERVFAIL,
    source: 'local',
    reason,
  };
}
