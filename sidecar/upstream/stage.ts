/**
 * The `forward` stage, last in the pipeline: picks the upstream group for
 * the query's name (cluster zone, a forward zone, or the default group),
 * sends the sidecar's own query for the client's question, and returns the
 * reply as a pipeline body.
 */
import { Flags, HEADER_LENGTH, RCode, RRType } from '../dns/constants.ts';
import { synthesize } from '../dns/reply.ts';
import { stripOpt } from '../dns/records.ts';
import { chainNames } from '../dns/chain.ts';
import type { GroupReceiver, GroupReply } from './group.ts';
import { LOOP_OPTION_CODE, LOOP_TAG_LENGTH, type ParsedQuery } from '../dns/wire.ts';
import { ErrorCodes, SidecarError } from '../errors.ts';
import { DEFAULT_GROUP } from '../route/classify.ts';
import { impossibleServiceName } from '../config/cluster.ts';
import { syntheticSoa } from '../policy/stage.ts';
import type { Answer, Outcome, QueryContext, Stage } from '../pipeline/stage.ts';
import { Deferred } from '../pipeline/deferred.ts';
import { EDNS_UDP_SIZE } from '../dns/constants.ts';

/** The part of an upstream group the forward stage uses (see group.ts). */
export interface ResolvingGroup {
  /** The group's name: default, cluster, or a forward zone's name. */
  readonly name: string;
  /** Resolves with the reply of the first upstream that answered and its scan, or rejects (UPSTREAM_GROUP_FAILED). */
  resolve(query: Buffer, signal: AbortSignal): Promise<GroupReply>;
  /** {@link resolve} in callback form (what the stage uses: no promise of the group's per miss); see group.ts. */
  start(query: Buffer, signal: AbortSignal, to: GroupReceiver): void;
}

/** The groups the forward stage sends to, by a route's group key (upstream/groups.ts). */
export interface GroupSource {
  /** The group for `name`, or undefined when there is none (no cluster DNS configured). */
  get(name: string): ResolvingGroup | undefined;
}

/**
 * The query the sidecar sends upstream for `q`: ID 0 (transports choose
 * their own), RD and CD as the client set them, AD set (RFC 6840 §5.7: the
 * reply then says whether the upstream validated it; the listener passes AD
 * on only to clients that asked), the client's question
 * bytes, and an OPT record asking for 1232-byte UDP replies with DO as the
 * client set it (RFC 6891; the client's own EDNS options are not forwarded).
 * With `loopTag`, the OPT record carries it as option {@link LOOP_OPTION_CODE}
 * so the sidecar recognizes the query if a forwarding loop brings it back.
 */
export function upstreamQuery(wire: Buffer, q: ParsedQuery, loopTag?: Buffer): Buffer {
  const qEnd = q.questionEnd;
  const optData = loopTag ? 4 + LOOP_TAG_LENGTH : 0;
  // From Node's buffer pool (no ArrayBuffer of its own per query), so every byte is written below.
  const out = Buffer.allocUnsafe(qEnd + 11 + optData);
  out.writeUInt16BE(0, 0);
  out.writeUInt16BE((q.flags & (Flags.RD | Flags.CD)) | Flags.AD, 2);
  out.writeUInt16BE(1, 4); // QDCOUNT
  out.writeUInt32BE(0, 6); // ANCOUNT, NSCOUNT
  out.writeUInt16BE(1, 10); // ARCOUNT: the OPT record
  wire.copy(out, HEADER_LENGTH, HEADER_LENGTH, qEnd);
  out[qEnd] = 0; // the root name
  out.writeUInt16BE(RRType.OPT, qEnd + 1);
  out.writeUInt16BE(EDNS_UDP_SIZE, qEnd + 3);
  out.writeUInt16BE(0, qEnd + 5); // extended RCODE, version
  out[qEnd + 7] = q.dnssecOk ? 0x80 : 0;
  out[qEnd + 8] = 0;
  out.writeUInt16BE(optData, qEnd + 9); // RDLENGTH
  if (loopTag) {
    out.writeUInt16BE(LOOP_OPTION_CODE, qEnd + 11);
    out.writeUInt16BE(LOOP_TAG_LENGTH, qEnd + 13);
    loopTag.copy(out, qEnd + 15, 0, LOOP_TAG_LENGTH);
  }
  return out;
}

/** Options of the forward stage. */
export interface ForwardOptions {
  /** The upstream groups by key. */
  readonly groups: GroupSource;
  /** This process's loop tag, sent in every upstream query (see listener/handle.ts). */
  readonly loopTag?: Buffer;
  /**
   * The cluster domain (sidecar form) when `--cluster-spec-names-only` is on: cluster names below
   * `<ns>.svc.<domain>` that the Kubernetes DNS specification cannot produce are answered NXDOMAIN here
   * ({@link impossibleServiceName}); undefined: every cluster name goes to the cluster DNS.
   */
  readonly specNamesOnly?: string;
}

/** The SOA TTL (and negative-caching time) of the NXDOMAIN for a name the Kubernetes DNS specification cannot produce. */
export const SPEC_NXDOMAIN_TTL = 30;

/**
 * Creates the `forward` stage. It sends the query to the group of its route
 * (a route of a stage switched off, deny or split, goes to the default
 * group). A group's failure is thrown on: the composer alone turns it into
 * SERVFAIL, and the cache may serve stale on it. A reply in which every
 * upstream said SERVFAIL is thrown as UPSTREAM_SERVFAIL for the same reasons.
 */
export function forwardStage(options: ForwardOptions): Stage {
  const { groups, loopTag, specNamesOnly } = options;
  return {
    name: 'forward',
    handle(ctx: QueryContext): Answer {
      const q = ctx.query;
      const r = ctx.route;
      if (specNamesOnly !== undefined && r.kind === 'cluster' && r.zone === specNamesOnly && impossibleServiceName(q.qname, specNamesOnly)) {
        const body = synthesize(ctx.wire, q, { rcode: RCode.NXDOMAIN, authorities: [syntheticSoa(specNamesOnly, SPEC_NXDOMAIN_TTL)] });
        return { kind: 'reply', body, rcode: RCode.NXDOMAIN, source: 'local', reason: 'cluster-spec-names-only' };
      }
      const key = r.kind === 'deny' || r.kind === 'split' ? DEFAULT_GROUP : r.group;
      const group = groups.get(key);
      if (group === undefined) {
        // No cluster DNS configured (e.g. outside Kubernetes): the cluster zone does not exist here.
        return {
          kind: 'reply',
          body: synthesize(ctx.wire, q, { rcode: RCode.NXDOMAIN }),
          rcode: RCode.NXDOMAIN,
          source: 'local',
          reason: 'no-cluster-dns',
        };
      }
      const answer = new ForwardReply(ctx, group);
      group.start(upstreamQuery(ctx.wire, q, loopTag), ctx.signal, answer);
      return answer;
    },
  };
}

/**
 * The forward stage's pending answer: receives the group's answer to one forwarded query and settles with the
 * client's outcome (no promise, no resolving functions and no then() per miss: pipeline/deferred.ts).
 */
class ForwardReply extends Deferred<Outcome> implements GroupReceiver {
  readonly #ctx: QueryContext;
  readonly #group: ResolvingGroup;

  constructor(ctx: QueryContext, group: ResolvingGroup) {
    super();
    this.#ctx = ctx;
    this.#group = group;
  }

  onReply(result: GroupReply): void {
    let outcome: Outcome;
    try {
      outcome = replyOutcome(this.#ctx, this.#group, result);
    } catch (err) {
      this.reject(err);
      return;
    }
    this.resolve(outcome);
  }

  onError(err: unknown): void {
    this.reject(err);
  }
}

/** The client's outcome for a group's reply: its OPT record removed, the client's ID and question spelling (0x20) written in. */
function replyOutcome(ctx: QueryContext, group: ResolvingGroup, result: GroupReply): Outcome {
  const q = ctx.query;
  const { body, scan } = stripOpt(result.reply, result.scan);
  if (scan.rcode === RCode.SERVFAIL) {
    // The upstream's Extended DNS Errors (EDE 6 "DNSSEC Bogus" from a validating resolver) go with the error.
    throw new SidecarError(ErrorCodes.UPSTREAM_SERVFAIL, `every upstream of group ${group.name} that answered said SERVFAIL (last: ${result.upstream})`, {
      ...(scan.optStart >= 0 ? { carriedOpt: Buffer.from(body.subarray(scan.optStart)) } : {}),
    });
  }
  body.writeUInt16BE(q.id, 0);
  ctx.wire.copy(body, HEADER_LENGTH, HEADER_LENGTH, q.questionEnd);
  return {
    kind: 'reply',
    body,
    rcode: scan.rcode,
    source: 'upstream',
    reason: group.name,
    upstream: result.upstream,
    scan,
    names: chainNames(body, scan.questionEnd, scan.answerCount, q.qname),
  };
}
