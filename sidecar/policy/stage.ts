/**
 * The `policy` stage: answers denied queries (DESIGN §5) with the deny
 * response of the deciding rule.
 */
import type { SynthRecord } from '../dns/reply.ts';
import { synthesize, errorReply } from '../dns/reply.ts';
import { CLASS_IN, EDECode, RCode, RRType } from '../dns/constants.ts';
import { after } from '../pipeline/deferred.ts';
import { isPending, type Answer, type Outcome, type QueryContext, type Next, type Stage } from '../pipeline/stage.ts';
import type { Route } from '../route/classify.ts';
import type { DenyResponse } from './compile.ts';
import { ipFamily } from '../net/ip.ts';

/** The SOA the sidecar puts in the authority section of negative answers it synthesizes. */
export function syntheticSoa(zone: string, ttl: number): SynthRecord {
  return {
    name: zone === '' ? '.' : zone,
    type: 'SOA',
    class: 'IN',
    ttl,
    data: {
      mname: 'ns.tenant-dns.invalid',
      rname: 'hostmaster.tenant-dns.invalid',
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86_400,
      // RFC 2308 §5: negative answers are cached for min(SOA TTL, minimum).
      minimum: ttl,
    },
  } as SynthRecord;
}

/** Address records of the query type from `addresses` (A from IPv4, AAAA from IPv6; ANY gets both). */
export function addressRecords(name: string, qtype: number, addresses: readonly string[], ttl: number): SynthRecord[] {
  const out: SynthRecord[] = [];
  for (const a of addresses) {
    const family = ipFamily(a);
    if (family === 4 && (qtype === RRType.A || qtype === RRType.ANY)) out.push({ name, type: 'A', class: 'IN', ttl, data: a });
    else if (family === 6 && (qtype === RRType.AAAA || qtype === RRType.ANY)) out.push({ name, type: 'AAAA', class: 'IN', ttl, data: a });
  }
  return out;
}

/**
 * The answer to a denied query, per the rule's response: nxdomain (NXDOMAIN
 * + SOA), refused (REFUSED), nodata (NOERROR + SOA), sinkhole (the addresses
 * of the query type, else NODATA + SOA). Each carries EDE 15 "Blocked"
 * (RFC 8914 §4.16) naming the rule; source `policy`, reason the rule. A
 * query of a class other than IN is answered REFUSED whatever the response.
 */
export function denyOutcome(ctx: QueryContext, rule: string, response: DenyResponse, soaZone: string): Outcome {
  const q = ctx.query;
  const ede = { code: EDECode.BLOCKED, text: `blocked by tenant-dns policy rule ${rule}` };
  const soa = [syntheticSoa(soaZone, response.ttl)];
  let rcode: number = RCode.NXDOMAIN;
  let body: Buffer;
  // The synthesized records are class IN: a query of another class is refused (still denied, still named).
  switch (q.qclass === CLASS_IN ? response.type : 'refused') {
    case 'refused':
      rcode = RCode.REFUSED;
      body = errorReply(ctx.wire, rcode, q.questionEnd);
      break;
    case 'nodata':
      rcode = RCode.NOERROR;
      body = synthesize(ctx.wire, q, { rcode, authorities: soa });
      break;
    case 'sinkhole': {
      rcode = RCode.NOERROR;
      const answers = addressRecords(q.qname, q.qtype, response.addresses, response.ttl);
      body = synthesize(ctx.wire, q, answers.length > 0 ? { rcode, answers } : { rcode, authorities: soa });
      break;
    }
    default:
      body = synthesize(ctx.wire, q, { rcode, authorities: soa });
  }
  return { kind: 'reply', body, rcode, source: 'policy', reason: rule, ede };
}

/** What the policy stage classifies the names of an answer with (route/classify.ts, Router). */
export interface NameRouter {
  route(qname: string): Route;
}

/**
 * The outcome for `ctx` once every name `outcome` leads to is checked: the
 * deny answer of the first name the policy denies (its rule named in EDE 15,
 * and `ctx.decision` set to that rule's, so the metrics and the query log
 * count it there), else `outcome` itself.
 */
function checkedAnswer(ctx: QueryContext, outcome: Outcome, router: NameRouter): Outcome {
  const names = outcome.names;
  if (names === undefined) return outcome;
  for (const name of names) {
    const route = router.route(name);
    if (route.kind !== 'deny') continue;
    const ev = route.evaluation;
    ctx.decision = ev.decision;
    return denyOutcome(ctx, ev.decision.rule, ev.response!, ev.soaZone);
  }
  return outcome;
}

/**
 * Creates the policy stage: answers the queries whose route is a deny
 * (route/classify.ts decided it when the query arrived, under the policy
 * serving then: a reload takes effect from the next query, and no query sees
 * half a policy), and checks every name an answer leads to (a CNAME or DNAME
 * chain, a split zone's target) with `router`, as response policy zones do:
 * a denied name anywhere in the chain denies the answer. The sidecar's own
 * queries never pass here; their names reach it in the answer they are part of.
 */
export function createPolicyStage(router: NameRouter): Stage {
  const check = (ctx: QueryContext, outcome: Outcome): Outcome => checkedAnswer(ctx, outcome, router);
  return {
    name: 'policy',
    handle(ctx: QueryContext, next: Next): Answer {
      const route = ctx.route;
      if (route.kind === 'deny') {
        const ev = route.evaluation;
        return denyOutcome(ctx, ev.decision.rule, ev.response!, ev.soaZone);
      }
      const answer = next(ctx);
      return isPending(answer) ? after(answer, ctx, check) : checkedAnswer(ctx, answer, router);
    },
  };
}
