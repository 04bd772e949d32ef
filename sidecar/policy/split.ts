/**
 * The `split` stage: answers names in the policy's split zones locally,
 * either with static addresses or with a CNAME to a target host (the
 * PrivateLink case) followed by the target's records, resolved through an
 * upstream group. A split zone never answers NXDOMAIN for a type it has no
 * data for: that is NODATA (NOERROR + SOA), DESIGN §5.
 */
import type { SynthRecord } from '../dns/reply.ts';
import { errorReply, synthesize } from '../dns/reply.ts';
import { RCode, RRType } from '../dns/constants.ts';
import { expandRecords, scanReply } from '../dns/records.ts';
import type { Answer, Outcome, QueryContext, Next, Stage } from '../pipeline/stage.ts';
import type { PolicyHolder, SplitMatch } from './compile.ts';
import { findSplitZone } from './evaluate.ts';
import { addressRecords, syntheticSoa } from './stage.ts';

/**
 * Resolves `name`/`qtype` through the upstream group `group` (`default`,
 * `cluster`, or a forward zone name) and returns the reply body (a complete
 * DNS message). Rejects on failure; must honour `signal`.
 */
export type ResolveFn = (name: string, qtype: number, group: string, signal: AbortSignal) => Promise<Buffer>;

/** What {@link createSplitStage} takes. */
export interface SplitStageOptions {
  /** Where the current compiled policy lives (swapped on reload). */
  readonly holder: PolicyHolder;
  /** Resolves CNAME targets. */
  readonly resolve: ResolveFn;
}

function reply(ctx: QueryContext, m: SplitMatch, rcode: number, answers: (SynthRecord | Buffer)[], authorities?: (SynthRecord | Buffer)[]): Outcome {
  const body = synthesize(ctx.wire, ctx.query, { rcode, answers, ...(authorities ? { authorities } : {}) });
  return { kind: 'reply', body, rcode, source: 'local', reason: m.zone.name };
}

async function answerCname(ctx: QueryContext, m: SplitMatch, resolve: ResolveFn): Promise<Outcome> {
  const q = ctx.query;
  const target = m.zone.cname!;
  const cname: SynthRecord = { name: q.qname, type: 'CNAME', class: 'IN', ttl: m.zone.ttl, data: target };
  if (q.qtype === RRType.CNAME) return reply(ctx, m, RCode.NOERROR, [cname]);
  let rcode: number;
  let answers: (SynthRecord | Buffer)[];
  let authorities: Buffer[] | undefined;
  try {
    const body = await resolve(target, q.qtype, m.zone.resolveVia, ctx.signal);
    // The target's records are moved over as wire bytes (pointers expanded): re-encoding them through
    // dns-packet would change names holding bytes that are not UTF-8 text, or dots inside a label.
    const scan = scanReply(body);
    const an = expandRecords(body, scan.questionEnd, scan.answerCount);
    rcode = scan.rcode & 0x0f;
    answers = [cname, ...an.records];
    if (an.records.length === 0) authorities = expandRecords(body, an.end, body.readUInt16BE(8)).records;
  } catch {
    return { kind: 'reply', body: errorReply(ctx.wire, RCode.SERVFAIL, q.questionEnd), rcode: RCode.SERVFAIL, source: 'local', reason: m.zone.name };
  }
  return reply(ctx, m, rcode, answers, authorities);
}

/**
 * Creates the split stage. Names outside every split zone go to `next`, and
 * so do internal queries (the sidecar's own, e.g. a CNAME chase routed
 * through the pipeline): a target inside a split zone then goes upstream
 * instead of looping.
 */
export function createSplitStage(opts: SplitStageOptions): Stage {
  const { holder, resolve } = opts;
  return {
    name: 'split',
    handle(ctx: QueryContext, next: Next): Answer {
      const m = findSplitZone(holder.current, ctx.query.qname);
      if (m === undefined || ctx.internal) return next(ctx);
      if (m.zone.cname !== undefined) return answerCname(ctx, m, resolve);
      const answers = addressRecords(ctx.query.qname, ctx.query.qtype, [...m.zone.v4, ...m.zone.v6], m.zone.ttl);
      if (answers.length > 0) return reply(ctx, m, RCode.NOERROR, answers);
      return reply(ctx, m, RCode.NOERROR, [], [syntheticSoa(m.soaZone, m.zone.ttl)]);
    },
  };
}
