/**
 * Composes stages into one handler. The composer is the only place a
 * leftover error becomes SERVFAIL; it counts and logs it once.
 */
import { EDECode, RCode } from '../dns/constants.ts';
import { errorReply, type ExtendedError } from '../dns/reply.ts';
import { ErrorCodes, SidecarError, errorCode, type ErrorCode } from '../errors.ts';
import { STAGE_ORDER, type StageName } from './order.ts';
import { after } from './deferred.ts';
import { isPending, type Answer, type Next, type Outcome, type QueryContext, type Stage } from './stage.ts';

/** Called once for every error a stage let escape. */
export type ErrorSink = (err: unknown, ctx: QueryContext, stage: string) => void;

/** The stages of `stages` in the order of {@link STAGE_ORDER}; throws on a name not in it. */
function ordered(stages: Partial<Record<StageName, Stage>>): Stage[] {
  for (const name of Object.keys(stages)) {
    if (!(STAGE_ORDER as readonly string[]).includes(name)) throw new Error(`unknown stage "${name}": add it to STAGE_ORDER`);
  }
  const out: Stage[] = [];
  for (const name of STAGE_ORDER) {
    const stage = stages[name];
    if (stage) out.push(stage);
  }
  return out;
}

const end: Next = () => {
  throw new Error('no stage answered the query');
};

/** Links `list` into one handler; errors pass through (`guardAt` wraps the `next` given to stage 0). */
function link(list: readonly Stage[], guardAt?: (next: Next, where: string) => Next): Next {
  let chain: Next = end;
  for (let i = list.length - 1; i >= 0; i--) {
    const stage = list[i]!;
    const inner = guardAt !== undefined && i === 0 && list.length > 1 ? guardAt(chain, list[1]!.name) : chain;
    chain = (ctx) => stage.handle(ctx, inner);
  }
  return chain;
}

/**
 * Chains `stages` in the order of {@link STAGE_ORDER} without turning errors
 * into answers: for a stage that runs part of the pipeline for itself (the
 * split stage's CNAME chase), whose errors must reach the composer of the
 * client's query like any other.
 */
export function chain(stages: Partial<Record<StageName, Stage>>): Next {
  return link(ordered(stages));
}

/**
 * Chains `stages` in the order of {@link STAGE_ORDER} (stages missing from
 * the map are switched off). The innermost `next` throws: the last stage
 * must answer. An error escaping a stage becomes a SERVFAIL outcome carrying
 * the error's Extended DNS Error ({@link servfail}), reported to `onError`
 * once (which counts and logs it).
 */
export function compose(stages: Partial<Record<StageName, Stage>>, onError: ErrorSink): Next {
  const list = ordered(stages);
  const fail = (err: unknown, ctx: QueryContext, where: string): Outcome => {
    onError(err, ctx, where);
    return servfail(ctx, err);
  };
  // A synchronous answer passes straight through: no closure, no promise.
  const guard = (next: Next, where: string): Next => {
    const failed = (ctx: QueryContext, err: unknown): Outcome => fail(err, ctx, where);
    return (ctx) => {
      let result: Answer;
      try {
        result = next(ctx);
      } catch (err) {
        return fail(err, ctx, where);
      }
      return isPending(result) ? after(result, ctx, undefined, failed) : result;
    };
  };
  // Errors are caught in two places only: just inside the outermost stage (so
  // it, usually metrics, sees the SERVFAIL like any other outcome) and around
  // the whole chain (for errors of the outermost stage itself).
  return guard(link(list, guard), list[0]?.name ?? 'pipeline');
}

/** The Extended DNS Error of a SERVFAIL by error code, when the error names none itself. */
const EDE_BY_CODE: Partial<Record<ErrorCode, ExtendedError>> = {
  [ErrorCodes.UPSTREAM_GROUP_FAILED]: { code: EDECode.NETWORK_ERROR, text: 'no upstream answered' },
  [ErrorCodes.UPSTREAM_TIMEOUT]: { code: EDECode.NETWORK_ERROR, text: 'no upstream answered' },
  [ErrorCodes.UPSTREAM_CONNECT]: { code: EDECode.NETWORK_ERROR, text: 'no upstream answered' },
  [ErrorCodes.FORWARDING_LOOP]: { code: EDECode.OTHER, text: 'forwarding loop: this query came back to the sidecar that sent it' },
};

/**
 * The SERVFAIL outcome for a query that ended in `err`: the error's
 * Extended DNS Error (or its code's) and the upstream's own EDEs when it
 * carries them, reason the error code, source `upstream` for upstream
 * failures and `local` otherwise.
 */
export function servfail(ctx: QueryContext, err: unknown): Outcome {
  const code = errorCode(err);
  const known = err instanceof SidecarError ? err : undefined;
  const ede = known?.ede ?? EDE_BY_CODE[code];
  let body = errorReply(ctx.wire, RCode.SERVFAIL, ctx.query.questionEnd);
  if (known?.carriedOpt !== undefined) {
    // The upstream's EDE options ride as the body's last record; the listener merges them into the client's OPT.
    body = Buffer.concat([body, known.carriedOpt]);
    body.writeUInt16BE(body.readUInt16BE(10) + 1, 10);
  }
  return {
    kind: 'reply',
    body,
    rcode: RCode.SERVFAIL,
    source: code.startsWith('UPSTREAM_') ? 'upstream' : 'local',
    reason: code,
    ...(ede ? { ede } : {}),
  };
}
