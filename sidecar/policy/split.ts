/**
 * The `split` stage: answers names in the policy's split zones locally,
 * either with static addresses or with a CNAME to a target host (the
 * PrivateLink case) followed by the target's records, resolved through an
 * upstream group. A split zone never answers NXDOMAIN for a type it has no
 * data for: that is NODATA (NOERROR + SOA), DESIGN §5.
 */
import { monotonicMs } from '../runtime/clock.ts';
import type { SynthRecord } from '../dns/reply.ts';
import { errorReply, synthesize } from '../dns/reply.ts';
import { skipName } from '../dns/wire.ts';
import { chainNames } from '../dns/chain.ts';
import { buildQuery } from '../dns/query.ts';
import { CLASS_IN, RCode, RRType } from '../dns/constants.ts';
import { expandRecords, scanReply } from '../dns/records.ts';
import type { Answer, Outcome, QueryContext, Next, Stage } from '../pipeline/stage.ts';
import { internalRoute } from '../route/classify.ts';
import type { SplitMatch } from './compile.ts';
import { addressRecords, syntheticSoa } from './stage.ts';

/**
 * Resolves `name`/`qtype` through the upstream group `group` (`default`,
 * `cluster`, or a forward zone name) and returns the reply body (a complete
 * DNS message). Rejects on failure (a SidecarError the composer answers);
 * must honour `signal`.
 */
export type ResolveFn = (name: string, qtype: number, group: string, signal: AbortSignal) => Promise<Buffer>;

/**
 * The {@link ResolveFn} of a pipeline: CNAME targets go through `inner` (the
 * cache and forward stages, errors passed through) as internal queries
 * routed to the zone's `resolveVia` group.
 */
export function innerResolver(inner: Next): ResolveFn {
  return async (name, qtype, group, signal) => {
    const { wire, query } = buildQuery(name, qtype);
    const out = await inner({ wire, query, proto: 'udp', signal, startedAt: monotonicMs(), internal: true, route: internalRoute(group) });
    return out.body;
  };
}

function reply(
  ctx: QueryContext,
  m: SplitMatch,
  rcode: number,
  answers: (SynthRecord | Buffer)[],
  authorities?: (SynthRecord | Buffer)[],
  names?: readonly string[],
): Outcome {
  const body = synthesize(ctx.wire, ctx.query, { rcode, answers, ...(authorities ? { authorities } : {}) });
  return { kind: 'reply', body, rcode, source: 'local', reason: m.zone.name, ...(names ? { names } : {}) };
}

/** The names a CNAME answer leads to: the zone's target and whatever the target's own answer names. */
function cnameNames(target: string, more: readonly string[] | undefined): readonly string[] {
  return more === undefined ? [target] : [target, ...more.filter((n) => n !== target)];
}

/** The CNAME answer of a split CNAME zone, with the target's records resolved through `resolve`. */
async function answerCname(ctx: QueryContext, m: SplitMatch, resolve: ResolveFn): Promise<Outcome> {
  const q = ctx.query;
  const target = m.zone.cname!;
  // A failure of the target's resolution is thrown on: the composer answers SERVFAIL with its EDE.
  const body = await resolve(target, q.qtype, m.zone.resolveVia, ctx.signal);
  // The target's records are moved over as wire bytes (pointers expanded): re-encoding them through
  // dns-packet would change names holding bytes that are not UTF-8 text, or dots inside a label.
  const scan = scanReply(body);
  const an = expandRecords(body, scan.questionEnd, scan.answerCount);
  // No record of the type at the end of the chain (NODATA, NXDOMAIN): the target zone's SOA goes along, so the
  // client can cache the negative answer (RFC 2308 §2.2).
  const answered = an.records.some((r) => {
    const t = recordType(r);
    return t === q.qtype || (q.qtype === RRType.ANY && t !== RRType.CNAME);
  });
  const authorities = answered ? undefined : expandRecords(body, an.end, body.readUInt16BE(8)).records;
  const names = cnameNames(target, chainNames(body, scan.questionEnd, scan.answerCount, target));
  return reply(ctx, m, scan.rcode & 0x0f, [cnameRecord(ctx, m), ...an.records], authorities, names);
}

/** The TYPE of one expanded record (its owner name is uncompressed). */
function recordType(record: Buffer): number {
  return record.readUInt16BE(skipName(record, 0));
}

function cnameRecord(ctx: QueryContext, m: SplitMatch): SynthRecord {
  return { name: ctx.query.qname, type: 'CNAME', class: 'IN', ttl: m.zone.ttl, data: m.zone.cname! };
}

/**
 * The answer of a split zone that needs no upstream, or undefined when the
 * CNAME target must be resolved: static addresses of the query's type (else
 * NODATA with the zone's SOA), or the CNAME alone when the CNAME itself is
 * asked for. Shared with `policy explain`, which renders it.
 */
export function localSplitOutcome(ctx: QueryContext, m: SplitMatch): Outcome | undefined {
  // Split zones hold class IN data: another class is refused rather than answered with IN records.
  if (ctx.query.qclass !== CLASS_IN) {
    return { kind: 'reply', body: errorReply(ctx.wire, RCode.REFUSED, ctx.query.questionEnd), rcode: RCode.REFUSED, source: 'local', reason: m.zone.name };
  }
  if (m.zone.cname !== undefined) {
    return ctx.query.qtype === RRType.CNAME ? reply(ctx, m, RCode.NOERROR, [cnameRecord(ctx, m)], undefined, cnameNames(m.zone.cname, undefined)) : undefined;
  }
  const answers = addressRecords(ctx.query.qname, ctx.query.qtype, [...m.zone.v4, ...m.zone.v6], m.zone.ttl);
  if (answers.length > 0) return reply(ctx, m, RCode.NOERROR, answers);
  return reply(ctx, m, RCode.NOERROR, [], [syntheticSoa(m.soaZone, m.zone.ttl)]);
}

/**
 * Creates the split stage: answers the queries whose route is a split zone.
 * The sidecar's own queries (a CNAME chase) have upstream routes, so a
 * target inside a split zone goes upstream instead of looping.
 */
export function createSplitStage(resolve: ResolveFn): Stage {
  return {
    name: 'split',
    handle(ctx: QueryContext, next: Next): Answer {
      const route = ctx.route;
      if (route.kind !== 'split') return next(ctx);
      return localSplitOutcome(ctx, route.split) ?? answerCname(ctx, route.split, resolve);
    },
  };
}
