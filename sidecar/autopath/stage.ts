/**
 * The `autopath` stage: answers the search walk a pod's stub resolver starts
 * with one answer per query type. A question for `N.S1` (S1 the pod's first
 * search domain, N with fewer dots than ndots) is resolved as the client
 * would go on resolving it: `N.S1`, `N.S2`, …, `N`, each through the rest of
 * the pipeline (policy, split zones, cache, forwarding apply per name). The
 * first name that is not NXDOMAIN is answered as the client would have
 * found it: a CNAME from the asked name to that name, then its records.
 * README.md says why each other ending is answered as it is.
 */
import { CLASS_IN, Flags, HEADER_LENGTH, RCode, RRType } from '../dns/constants.ts';
import { expandRecords, scanReply } from '../dns/records.ts';
import { synthesize } from '../dns/reply.ts';
import { skipName } from '../dns/wire.ts';
import { clientQuestion, questionName } from '../pipeline/context.ts';
import { isPending, type Answer, type Next, type Outcome, type QueryContext, type Stage } from '../pipeline/stage.ts';
import type { Route } from '../route/classify.ts';
import type { AutopathMetrics, AutopathResult } from './metrics.ts';
import { candidates, walkOf, type SearchConfig, type Walk } from './search.ts';

/** What the autopath stage needs. */
export interface AutopathOptions {
  /** The pod's search list and ndots. */
  readonly search: SearchConfig;
  /** Classifies each candidate name, as the listener classifies a client's question. */
  readonly router: { route(qname: string): Route };
  /** Where answers are counted; none in unit tests. */
  readonly metrics?: AutopathMetrics;
}

/** One name of the walk: its wire form (the client's spelling of N) and its sidecar form. */
interface Candidate {
  readonly name: string;
  readonly wire: Buffer;
}

/** The client's question for candidate `c` of type `qtype`, classified afresh. */
function candidateContext(ctx: QueryContext, c: Candidate, qtype: number, router: AutopathOptions['router']): QueryContext {
  return clientQuestion(ctx, c.name, c.wire, qtype, router.route(c.name));
}

/** What the walk learned from one candidate's NOERROR reply. */
interface Found {
  readonly answers: Buffer[];
  readonly authorities: Buffer[];
  /** Whether the answer section holds a record of the asked type (ANY aside, as the stage takes only A and AAAA). */
  readonly hasData: boolean;
  /** The smallest TTL of its records; the negative TTL when it has no data. */
  readonly ttl: number;
}

function readFound(body: Buffer, qtype: number): Found {
  const scan = scanReply(body);
  const an = expandRecords(body, scan.questionEnd, scan.answerCount);
  const hasData = an.records.some((r) => r.readUInt16BE(skipName(r, 0)) === qtype);
  const authorities = hasData ? [] : expandRecords(body, an.end, body.readUInt16BE(8)).records;
  return { answers: an.records, authorities, hasData, ttl: hasData ? scan.minTtl : scan.negativeTtl };
}

/** Seconds a negative answer may be kept (its SOA's), or -1 when it carries none. */
function negativeTtl(body: Buffer): number {
  try {
    return scanReply(body).negativeTtl;
  } catch {
    return -1;
  }
}

/** The CNAME record from the question name (a pointer to it) to `target` (wire form), with `ttl`. */
function cnameRecord(target: Buffer, ttl: number): Buffer {
  const out = Buffer.alloc(12 + target.length);
  out.writeUInt16BE(0xc000 | HEADER_LENGTH, 0);
  out.writeUInt16BE(RRType.CNAME, 2);
  out.writeUInt16BE(CLASS_IN, 4);
  out.writeUInt32BE(ttl, 6);
  out.writeUInt16BE(target.length, 10);
  target.copy(out, 12);
  return out;
}

/** Outcome of an `await`ed next that may throw: the outcome, or undefined when it failed. */
async function attempt(next: Next, ctx: QueryContext): Promise<Outcome | undefined> {
  try {
    return await next(ctx);
  } catch {
    return undefined;
  }
}

/**
 * Creates the autopath stage. It takes client questions of type A or AAAA,
 * class IN, with RD set, whose name starts a search walk ({@link walkOf});
 * every other query passes through untouched.
 */
export function createAutopathStage(options: AutopathOptions): Stage {
  const { search, router, metrics } = options;
  const counted = (result: AutopathResult, outcome: Outcome, saved = 0): Outcome => {
    metrics?.answered(result, saved);
    return outcome;
  };

  /** The walk after the asked name was NXDOMAIN (`first`, whose body is the answer unless a candidate is found). */
  async function walkOn(ctx: QueryContext, next: Next, walk: Walk, first: Outcome): Promise<Outcome> {
    const q = ctx.query;
    let ttl = negativeTtl(first.body);
    const list = candidates(search, walk);
    for (let i = 0; i < list.length; i++) {
      const c = list[i]!;
      const cctx = candidateContext(ctx, c, q.qtype, router);
      // AAAA: A first, so a name that does not exist reaches the upstream once, not once per type.
      const probe = q.qtype === RRType.AAAA ? await attempt(next, candidateContext(ctx, c, RRType.A, router)) : undefined;
      const out = await attempt(next, cctx);
      // An error, a drop, REFUSED, SERVFAIL: the libcs differ (glibc walks on past SERVFAIL, musl stops);
      // the client walks on by itself and meets it.
      if (out === undefined || out.kind !== 'reply' || (out.rcode !== RCode.NOERROR && out.rcode !== RCode.NXDOMAIN)) return counted('passthrough', first);
      if (out.rcode === RCode.NXDOMAIN) {
        const t = negativeTtl(out.body);
        if (t >= 0) ttl = ttl < 0 ? t : Math.min(ttl, t);
        continue;
      }
      let found: Found;
      try {
        found = readFound(out.body, q.qtype);
      } catch {
        return counted('passthrough', first);
      }
      if (!found.hasData) {
        // NODATA for this type: the client stops here only when the other address family has data
        // (glibc walks on past NODATA for both, musl stops): else the client walks on by itself.
        const otherType = q.qtype === RRType.A ? RRType.AAAA : RRType.A;
        const other = probe ?? (await attempt(next, candidateContext(ctx, c, otherType, router)));
        let otherHasData = false;
        if (other?.kind === 'reply' && other.rcode === RCode.NOERROR) {
          try {
            otherHasData = readFound(other.body, otherType).hasData;
          } catch {
            // unreadable: no data
          }
        }
        if (!otherHasData) return counted('passthrough', first);
      }
      if (found.ttl >= 0) ttl = ttl < 0 ? found.ttl : Math.min(ttl, found.ttl);
      const body = synthesize(ctx.wire, q, {
        rcode: RCode.NOERROR,
        answers: [cnameRecord(c.wire, Math.max(ttl, 0)), ...found.answers],
        authorities: found.authorities,
      });
      if (cctx.decision !== undefined) ctx.decision = cctx.decision;
      const outcome: Outcome = {
        kind: 'reply',
        body,
        rcode: RCode.NOERROR,
        source: out.source,
        reason: `autopath:${out.reason}`,
        ...(out.ede ? { ede: out.ede } : {}),
        ...(out.upstream ? { upstream: out.upstream } : {}),
        ...(out.stale ? { stale: true } : {}),
      };
      return counted(out.source === 'policy' ? 'denied' : 'found', outcome, i + 1);
    }
    return counted('nxdomain', first);
  }

  return {
    name: 'autopath',
    handle(ctx: QueryContext, next: Next): Answer {
      const q = ctx.query;
      if (ctx.internal || (q.qtype !== RRType.A && q.qtype !== RRType.AAAA) || q.qclass !== CLASS_IN || (q.flags & Flags.RD) === 0) return next(ctx);
      const walk = walkOf(search, ctx.wire, q);
      if (walk === undefined) return next(ctx);
      if (q.qtype === RRType.AAAA) {
        // The A question for the same name first (the client's own A query in flight is joined, not
        // repeated): when the name does not exist, the cache answers this AAAA from that NXDOMAIN.
        const asked = { name: q.qname, wire: questionName(ctx) };
        return attempt(next, candidateContext(ctx, asked, RRType.A, router))
          .then(() => next(ctx))
          .then((o) => (o.kind === 'reply' && o.rcode === RCode.NXDOMAIN ? walkOn(ctx, next, walk, o) : counted('first', o)));
      }
      const first = next(ctx);
      if (isPending(first)) return first.then((o) => (o.kind === 'reply' && o.rcode === RCode.NXDOMAIN ? walkOn(ctx, next, walk, o) : counted('first', o)));
      return first.kind === 'reply' && first.rcode === RCode.NXDOMAIN ? walkOn(ctx, next, walk, first) : counted('first', first);
    },
  };
}
