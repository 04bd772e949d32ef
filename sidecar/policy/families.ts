/**
 * The `families` stage: the policy's `spec.ipFamilies`. In an IPv4-only
 * cluster every AAAA question is wasted upstream (half of what a dual-stack
 * stub resolver sends); with `ipFamilies: [IPv4]` the sidecar answers it in
 * the pod. The answer must agree with the name's A answer, or stub resolvers
 * break: NXDOMAIN when the name does not exist (its A is NXDOMAIN, asked
 * through the rest of the pipeline, usually a cache hit or the client's own
 * A query in flight), else NODATA with an SOA — never NXDOMAIN for a name
 * that exists (RFC 8020; some runtimes treat it as "no such host" for every
 * type). `[IPv6]` does the same for A.
 */
import { CLASS_IN, RCode, RRType } from '../dns/constants.ts';
import { synthesize } from '../dns/reply.ts';
import { personalize } from '../cache/stage.ts';
import { clientQuestion, questionName } from '../pipeline/context.ts';
import { isPending, type Answer, type Next, type Outcome, type QueryContext, type Stage } from '../pipeline/stage.ts';
import type { CompiledPolicy, PolicyHolder } from './compile.ts';
import { syntheticSoa } from './stage.ts';

/** The TTL, in seconds, of the SOA in a NODATA answered for a family the policy leaves out. */
export const FAMILY_NODATA_TTL = 60;

/** The query type the policy answers locally (A or AAAA), or 0 when it serves both families. */
export function localFamily(policy: CompiledPolicy): number {
  const families = policy.platform.spec.ipFamilies ?? policy.tenant.spec.ipFamilies;
  if (families === undefined || families.length !== 1) return 0;
  return families[0] === 'IPv4' ? RRType.AAAA : RRType.A;
}

/** The zone whose SOA goes with the NODATA: the cluster or forward zone of the route, else the root. */
function soaZone(ctx: QueryContext): string {
  const r = ctx.route;
  return r.kind === 'cluster' || r.kind === 'forward' ? r.zone : '';
}

/** The answer for a question of a family the policy leaves out, after the other family's answer `other`. */
function answer(ctx: QueryContext, other: Outcome | undefined): Outcome {
  if (other?.kind === 'reply' && other.rcode === RCode.NXDOMAIN) {
    // The name does not exist: the same NXDOMAIN (its SOA), the client's question written in.
    personalize(other.body, ctx);
    return { kind: 'reply', body: other.body, rcode: RCode.NXDOMAIN, source: other.source, reason: 'ip-families' };
  }
  const body = synthesize(ctx.wire, ctx.query, { rcode: RCode.NOERROR, authorities: [syntheticSoa(soaZone(ctx), FAMILY_NODATA_TTL)] });
  return { kind: 'reply', body, rcode: RCode.NOERROR, source: 'local', reason: 'ip-families' };
}

/**
 * Creates the families stage: class IN questions of the type the policy
 * serving now leaves out ({@link localFamily}) are answered here, after the
 * other type of the same name went through the rest of the pipeline (a
 * failure there still answers NODATA: this type is not served either way);
 * everything else passes through.
 */
export function createFamiliesStage(holder: PolicyHolder): Stage {
  return {
    name: 'families',
    handle(ctx: QueryContext, next: Next): Answer {
      const q = ctx.query;
      if ((q.qtype !== RRType.A && q.qtype !== RRType.AAAA) || q.qclass !== CLASS_IN || q.qtype !== localFamily(holder.current)) return next(ctx);
      const other = clientQuestion(ctx, q.qname, questionName(ctx), q.qtype === RRType.A ? RRType.AAAA : RRType.A, ctx.route);
      let pending: Answer;
      try {
        pending = next(other);
      } catch {
        return answer(ctx, undefined);
      }
      if (!isPending(pending)) return answer(ctx, pending);
      return pending.then(
        (o) => answer(ctx, o),
        () => answer(ctx, undefined),
      );
    },
  };
}
