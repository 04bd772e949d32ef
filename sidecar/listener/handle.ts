/**
 * The part of a listener that is the same for UDP and TCP: read the minimum
 * from the wire, build a QueryContext, run the chain, and turn the outcome
 * into the bytes to send.
 */
import { performance } from 'node:perf_hooks';
import { EDECode, RCode } from '../dns/constants.ts';
import { errorReply, finishReply, optRecord, type ExtendedError } from '../dns/reply.ts';
import { clientUdpLimit, LOOP_TAG_LENGTH, readQuery, type ParsedQuery, type Rejected } from '../dns/wire.ts';
import { isPending, type Answer, type Next, type Outcome, type Proto, type QueryContext } from '../pipeline/stage.ts';

/** The Extended DNS Error of a looped query's SERVFAIL. */
const LOOP_EDE = { code: EDECode.OTHER, text: 'forwarding loop: this query came back to the sidecar that sent it' } as const;

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

  /** Gives a slot back. */
  leave(): void {
    this.current--;
  }
}

/** What a listener needs to answer queries. */
export interface HandlerDeps {
  /** The composed pipeline. */
  readonly chain: Next;
  /** The cap on queries in flight across all listeners. */
  readonly gate: InflightGate;
  /** Aborted at shutdown: passed to every query's context. */
  readonly signal: AbortSignal;
  /** Called for messages the wire reader rejected (for metrics). */
  readonly onRejected?: (rcode: number, proto: Proto) => void;
  /**
   * This process's loop tag: a query carrying it is one of the sidecar's own
   * upstream queries come back (a forwarding loop) and is answered SERVFAIL
   * at once instead of being forwarded again.
   */
  readonly loopTag?: Buffer;
  /** Called for every looped query detected. */
  readonly onLoop?: (qname: string, qtype: number) => void;
}

/** Reply bytes, or null when nothing is to be sent. */
export type Reply = Buffer | null;

/**
 * Answers one client message: with the reply bytes, or null when nothing is
 * to be sent (unreadable header, QR set, a `drop` outcome, or UDP over the
 * in-flight cap). Synchronously when the pipeline answered at once (cache
 * hits, policy and split answers, rejections), else with a promise. Never
 * throws or rejects.
 */
export function answer(wire: Buffer, proto: Proto, deps: HandlerDeps): Reply | Promise<Reply> {
  const read = readQuery(wire);
  if (read.rejected) {
    deps.onRejected?.(read.rejected.rcode, proto);
    return rejectionReply(wire, read.rejected);
  }
  const q = read.query;
  if (q.loopTagOffset >= 0 && deps.loopTag && wire.compare(deps.loopTag, 0, LOOP_TAG_LENGTH, q.loopTagOffset, q.loopTagOffset + LOOP_TAG_LENGTH) === 0) {
    deps.onLoop?.(q.qname, q.qtype);
    return servfailReply(wire, q, LOOP_EDE);
  }
  if (!deps.gate.enter()) {
    // UDP: drop, the client retries; TCP: say so at once (RFC 7766 §6.2.4 lets a server refuse work).
    return proto === 'udp' ? null : servfailReply(wire, q);
  }
  const ctx: QueryContext = {
    wire,
    query: q,
    proto,
    signal: deps.signal,
    startedAt: performance.now(),
    internal: false,
  };
  let result: Answer;
  try {
    result = deps.chain(ctx);
  } catch {
    deps.gate.leave();
    return servfailReply(wire, q);
  }
  if (!isPending(result)) {
    deps.gate.leave();
    return finish(ctx, result);
  }
  return result.then(
    (outcome) => {
      deps.gate.leave();
      return finish(ctx, outcome);
    },
    () => {
      deps.gate.leave();
      return servfailReply(wire, q);
    },
  );
}

/** The bytes to send for a query's outcome: its body finished for the client's transport, or null for `drop`. */
function finish(ctx: QueryContext, outcome: Outcome): Reply {
  if (outcome.kind === 'drop') return null;
  const q = ctx.query;
  try {
    return finishReply(outcome.body, q, ctx.proto === 'udp' ? clientUdpLimit(q) : 0, outcome.rcode, outcome.ede);
  } catch {
    // A reply that cannot be built is a SERVFAIL, never a rejection: the listeners do not expect one.
    return servfailReply(ctx.wire, q);
  }
}

/** A SERVFAIL to a readable query, with the client's EDNS echoed and `ede` attached when it has EDNS. */
function servfailReply(wire: Buffer, q: ParsedQuery, ede?: ExtendedError): Buffer {
  return finishReply(errorReply(wire, RCode.SERVFAIL, q.questionEnd), q, 0, RCode.SERVFAIL, ede);
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

/**
 * The reply to a message the sidecar will not work on (a TCP connection over
 * its pipelining cap): SERVFAIL when it is a readable query, else what the
 * wire reader's rejection calls for.
 */
export function refusalReply(wire: Buffer): Buffer | null {
  const read = readQuery(wire);
  return read.rejected ? rejectionReply(wire, read.rejected) : servfailReply(wire, read.query);
}
