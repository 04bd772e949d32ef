/**
 * The one failure path (DESIGN §3): what happens to an error that ends a
 * query. Stages throw SidecarErrors; the composer (compose.ts) and the
 * listener hand every such error here once, where it is counted and logged
 * at most once per interval per code, and turned into SERVFAIL with its
 * Extended DNS Error (compose.ts `servfail`).
 */
import { describeError, errorCode, type ErrorCode } from '../errors.ts';
import { throttledLogger, type Level, type Logger } from '../log.ts';
import { servfail, type ErrorSink } from './compose.ts';
import type { Outcome, QueryContext } from './stage.ts';

/** Milliseconds between two log lines of the same error code; the lines between are counted. */
export const ERROR_LOG_INTERVAL_MS = 10_000;

/** What {@link failurePath} takes. */
export interface FailureOptions {
  readonly log: Logger;
  /** Counts each error by code (a metric); called for every error, unthrottled. */
  readonly count?: (code: ErrorCode) => void;
  /** Milliseconds between log lines per code; default {@link ERROR_LOG_INTERVAL_MS}. */
  readonly intervalMs?: number;
  /** Clock in milliseconds (tests inject one); default Date.now. */
  readonly now?: () => number;
}

/** The failure path: the composer's error sink and the listener's `fail`. */
export interface FailurePath {
  /** Counts and logs `err` (throttled per code). */
  readonly report: ErrorSink;
  /** {@link report}, then the SERVFAIL outcome for `ctx`. */
  readonly fail: (err: unknown, ctx: QueryContext, where: string) => Outcome;
}

/** Upstream failures are the network's doing: a warning. Anything else is the sidecar's: an error. */
function levelOf(code: ErrorCode): Level {
  return code.startsWith('UPSTREAM_') ? 'warn' : 'error';
}

/** Creates the failure path of one sidecar. */
export function failurePath(options: FailureOptions): FailurePath {
  const log = throttledLogger(options.log, options.intervalMs ?? ERROR_LOG_INTERVAL_MS, options.now);
  const report: ErrorSink = (err, ctx, where) => {
    const code = errorCode(err);
    options.count?.(code);
    log(code, levelOf(code), 'query failed', { code, stage: where, qtype: ctx.query.qtype, error: describeError(err) });
  };
  return {
    report,
    fail: (err, ctx, where) => {
      report(err, ctx, where);
      return servfail(ctx, err);
    },
  };
}
