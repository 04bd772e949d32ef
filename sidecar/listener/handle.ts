/**
 * The part of a listener that is the same for UDP and TCP: read the minimum
 * from the wire, build a QueryContext, run the chain, and turn the outcome
 * into the bytes to send.
 */
import { monotonicMs } from '../runtime/clock.ts';
import { Flags, RCode } from '../dns/constants.ts';
import { errorReply, finishReply, optRecord } from '../dns/reply.ts';
import { ErrorCodes, SidecarError } from '../errors.ts';
import { clientUdpLimit, LOOP_TAG_LENGTH, readQuery, type ParsedQuery, type Rejected } from '../dns/wire.ts';
import { after } from '../pipeline/deferred.ts';
import { dropOutcome, isPending, type Answer, type Next, type Outcome, type Proto, type QueryContext } from '../pipeline/stage.ts';
import { internalRoute, type Route } from '../route/classify.ts';


/** Counts queries the sidecar is working on, against a cap. */
export class InflightGate {
  /** Queries being answered now. */
  current = 0;
  /** Most queries in flight at once; at the cap, new ones are refused. */
  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Takes a slot; false when the cap is reached. */
  enter(): boolean {
    if (this.current >= this.limit) return false;
    this.current++;
    return true;
  }

  /** Gives a slot back; wakes {@link idle} waiters when the last one is given back. */
  leave(): void {
    this.current--;
    if (this.current === 0 && this.#idle !== undefined) {
      this.#idle.resolve();
      this.#idle = undefined;
    }
  }

  #idle: PromiseWithResolvers<void> | undefined;

  /** Resolves when no query is in flight (at once when none is). */
  idle(): Promise<void> {
    if (this.current === 0) return Promise.resolve();
    this.#idle ??= Promise.withResolvers<void>();
    return this.#idle.promise;
  }
}

/** What a listener needs to answer queries. */
export interface HandlerDeps {
  /** The composed pipeline. */
  readonly chain: Next;
  /** Classifies each question once, when its context is made (route/classify.ts). */
  readonly router: { route(qname: string): Route };
  /** The cap on queries in flight across all listeners. */
  readonly gate: InflightGate;
  /** Aborted at shutdown: passed to every query's context. */
  readonly signal: AbortSignal;
  /**
   * The one failure path (pipeline/compose.ts): counts and logs `err` at most
   * once per interval per code and returns the SERVFAIL outcome for `ctx`.
   */
  readonly fail: (err: unknown, ctx: QueryContext, where: string) => Outcome;
  /**
   * Sees every outcome the listener makes itself, without the pipeline (a
   * malformed message, a drop over the in-flight cap, a forwarding loop), so
   * metrics and the query log count them like any other answer.
   */
  readonly observe?: (ctx: QueryContext, outcome: Outcome) => void;
  /**
   * This process's loop tag: a query carrying it is one of the sidecar's own
   * upstream queries come back (a forwarding loop) and is answered SERVFAIL
   * at once instead of being forwarded again.
   */
  readonly loopTag?: Buffer;
  /**
   * The replies are an authoritative server's (`tenant-dns gateway`): RA is
   * cleared in every reply, the listener's own included (RFC 1035 §4.1.1:
   * recursion is not available). Default false: the sidecar recurses.
   */
  readonly noRecursion?: boolean;
}

/** Reply bytes, or null when nothing is to be sent. */
export type Reply = Buffer | null;

/** The route of messages that never reach the pipeline: no policy decided them. */
const LISTENER_ROUTE: Route = internalRoute('default');

/** A context for a message the listener answers itself; `query` stands in when the message had none readable. */
function listenerContext(wire: Buffer, query: ParsedQuery, proto: Proto, deps: HandlerDeps): QueryContext {
  return { wire, query, proto, signal: deps.signal, startedAt: monotonicMs(), route: LISTENER_ROUTE, internal: false };
}

/** The parsed form a malformed message is observed under: its ID, no name, type 0. */
function unreadable(wire: Buffer, rejected: Rejected): ParsedQuery {
  return {
    id: wire.length >= 2 ? wire.readUInt16BE(0) : 0,
    flags: wire.length >= 4 ? wire.readUInt16BE(2) : 0,
    qname: '',
    qtype: 0,
    qclass: 0,
    questionEnd: rejected.questionEnd,
    edns: false,
    ednsUdpSize: 0,
    dnssecOk: false,
    loopTagOffset: -1,
  };
}

/**
 * Answers one client message: with the reply bytes, or null when nothing is
 * to be sent (unreadable header, QR set, or UDP over the in-flight cap).
 * Synchronously when the pipeline answered at once (cache hits, policy and
 * split answers, rejections), else with a promise. Never throws or rejects.
 * Every message ends in an outcome the observer sees: the pipeline's, or the
 * listener's own (source `listener`). `overConnectionCap`: the message came
 * on a TCP connection past its pipelining cap, and is refused like one over
 * the in-flight cap.
 */
export function answer(wire: Buffer, proto: Proto, deps: HandlerDeps, overConnectionCap = false): Reply | PromiseLike<Reply> {
  const reply = answerQuery(wire, proto, deps, overConnectionCap);
  if (!deps.noRecursion) return reply;
  return isPending(reply) ? reply.then(withoutRa) : withoutRa(reply);
}

/** `reply` with RA cleared (in place). */
function withoutRa(reply: Reply): Reply {
  if (reply !== null && reply.length > 3) reply[3]! &= ~Flags.RA;
  return reply;
}

/** {@link answer} before `noRecursion` applies. */
function answerQuery(wire: Buffer, proto: Proto, deps: HandlerDeps, overConnectionCap: boolean): Reply | PromiseLike<Reply> {
  const read = readQuery(wire);
  if (read.rejected) {
    const r = read.rejected;
    const body = rejectionReply(wire, r);
    const seen: Outcome = body === null ? dropOutcome('listener', 'malformed') : { kind: 'reply', body, rcode: r.rcode, source: 'listener', reason: 'malformed' };
    deps.observe?.(listenerContext(wire, unreadable(wire, r), proto, deps), seen);
    return body;
  }
  const q = read.query;
  if (q.loopTagOffset >= 0 && deps.loopTag && wire.compare(deps.loopTag, 0, LOOP_TAG_LENGTH, q.loopTagOffset, q.loopTagOffset + LOOP_TAG_LENGTH) === 0) {
    const ctx = listenerContext(wire, q, proto, deps);
    const outcome = deps.fail(
      new SidecarError(ErrorCodes.FORWARDING_LOOP, `forwarding loop: a query for ${q.qname} type ${q.qtype} that the sidecar sent upstream came back to it; answering SERVFAIL (check the upstreams and the cluster DNS: one of them forwards to this sidecar)`),
      ctx,
      'listener',
    );
    return finishObserved(ctx, { ...outcome, source: 'listener' }, deps);
  }
  if (overConnectionCap || !deps.gate.enter()) {
    // UDP: drop, the client retries; TCP: say so at once (RFC 7766 §6.2.4 lets a server refuse work).
    const ctx = listenerContext(wire, q, proto, deps);
    const reason = overConnectionCap ? 'pipelining-cap' : 'overload';
    if (proto === 'udp') {
      deps.observe?.(ctx, dropOutcome('listener', reason));
      return null;
    }
    return finishObserved(ctx, { kind: 'reply', body: errorReply(wire, RCode.SERVFAIL, q.questionEnd), rcode: RCode.SERVFAIL, source: 'listener', reason }, deps);
  }
  const route = deps.router.route(q.qname);
  const ctx: QueryContext = {
    wire,
    query: q,
    proto,
    signal: deps.signal,
    startedAt: monotonicMs(),
    route,
    decision: route.evaluation.decision,
    internal: false,
  };
  let result: Answer;
  try {
    result = deps.chain(ctx);
  } catch (err) {
    // The composer turns every error into an outcome; this is the guard for a bug in that guard.
    deps.gate.leave();
    return finishObserved(ctx, deps.fail(err, ctx, 'pipeline'), deps);
  }
  if (!isPending(result)) {
    deps.gate.leave();
    return finish(ctx, result);
  }
  const then = continuationsOf(deps);
  return after(result, ctx, then.finished, then.failed);
}

/** What a pending answer continues with: its reply, or the failure path's. */
interface Continuations {
  finished(ctx: QueryContext, outcome: Outcome): Reply;
  failed(ctx: QueryContext, err: unknown): Reply;
}

/** The continuations of each listener's dependencies, made once (not a closure per forwarded query). */
const continuations = new WeakMap<HandlerDeps, Continuations>();

function continuationsOf(deps: HandlerDeps): Continuations {
  let c = continuations.get(deps);
  if (c === undefined) {
    c = {
      finished(ctx, outcome) {
        deps.gate.leave();
        return finish(ctx, outcome);
      },
      failed(ctx, err) {
        deps.gate.leave();
        return finishObserved(ctx, deps.fail(err, ctx, 'pipeline'), deps);
      },
    };
    continuations.set(deps, c);
  }
  return c;
}

/** {@link finish} for an outcome the pipeline's observer did not see. */
function finishObserved(ctx: QueryContext, outcome: Outcome, deps: HandlerDeps): Reply {
  deps.observe?.(ctx, outcome);
  return finish(ctx, outcome);
}

/** The bytes to send for a query's outcome: its body finished for the client's transport, or null for `drop`. */
function finish(ctx: QueryContext, outcome: Outcome): Reply {
  if (outcome.kind === 'drop') return null;
  const q = ctx.query;
  // AD only to a client that asked with AD or DO (RFC 6840 §5.7, RFC 4035 §3.2.3); the body is the receiver's.
  if (!q.dnssecOk && (q.flags & Flags.AD) === 0 && outcome.body.length > 3) outcome.body[3]! &= ~Flags.AD;
  try {
    return finishReply(outcome.body, q, ctx.proto === 'udp' ? clientUdpLimit(q) : 0, outcome.rcode, outcome.ede);
  } catch {
    // A reply that cannot be built is a SERVFAIL, never a rejection: the listeners do not expect one.
    return servfailReply(ctx.wire, q);
  }
}

/** A SERVFAIL to a readable query, with the client's EDNS echoed. */
function servfailReply(wire: Buffer, q: ParsedQuery): Buffer {
  return finishReply(errorReply(wire, RCode.SERVFAIL, q.questionEnd), q, 0, RCode.SERVFAIL);
}

/**
 * The reply to a message the wire reader rejected: null for "send nothing",
 * else the error reply, with an OPT record when the message had one
 * (RFC 6891 §7; BADVERS always has one, its extended rcode bits need it).
 */
function rejectionReply(wire: Buffer, rejected: Rejected): Buffer | null {
  if (rejected.rcode < 0) return null;
  const body = errorReply(wire, rejected.rcode, rejected.questionEnd);
  if (!rejected.edns) return body;
  const opt = optRecord(rejected.rcode, rejected.dnssecOk);
  const out = Buffer.concat([body, opt]);
  out.writeUInt16BE(1, 10);
  return out;
}
